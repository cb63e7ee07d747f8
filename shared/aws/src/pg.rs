//! PostgreSQL plumbing: pools sized from configuration, TLS per sslmode (rustls), schema migrations.

use std::path::Path;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use ledgix_core::error::{Conflict, StoreError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode;

/// libpq's sslmode values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// Encrypt; do not verify the server certificate (libpq `prefer` / `require`).
    Require,
    /// Encrypt and verify the certificate chain and host name against the trust anchors: the CA bundle
    /// (VAULT_DB_CA_BUNDLE) when set, else the web PKI roots. libpq's `verify-ca` is held to this too.
    VerifyFull,
}

impl TlsMode {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "disable" => Ok(TlsMode::Disable),
            "allow" | "prefer" | "require" => Ok(TlsMode::Require),
            "verify-ca" | "verify-full" => Ok(TlsMode::VerifyFull),
            other => Err(format!(
                "sslmode {other:?} must be disable, prefer, require, verify-ca or verify-full"
            )),
        }
    }
}

/// A PostgreSQL error with the server's message (tokio-postgres' Display says only "db error").
pub fn pg_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => {
            StoreError::Unavailable(format!("postgres {}: {}", db.code().code(), db.message()))
        }
        None => StoreError::unavailable(e),
    }
}

/// The one mapping of a failed insert: a unique-key violation is the write's `conflict`, anything else leaves
/// the store unavailable.
pub fn unique_or(e: tokio_postgres::Error, conflict: Conflict) -> StoreError {
    if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        StoreError::Conflict(conflict)
    } else {
        StoreError::unavailable(e)
    }
}

/// TLS for PostgreSQL connections: the sslmode and, for `verify-full`, the trust anchors. One value serves
/// every connection of a kind (the control plane's pool, tenant provisioning, the tenant pools).
#[derive(Debug, Clone)]
pub struct PgTls {
    mode: TlsMode,
    /// Trust anchors for `verify-full`: the CA bundle (VAULT_DB_CA_BUNDLE) when given, else the web PKI roots.
    roots: Arc<rustls::RootCertStore>,
}

impl From<TlsMode> for PgTls {
    /// `mode` with the web PKI roots as trust anchors.
    fn from(mode: TlsMode) -> Self {
        PgTls {
            mode,
            roots: Arc::new(web_pki_roots()),
        }
    }
}

impl From<&PgTls> for PgTls {
    fn from(tls: &PgTls) -> Self {
        tls.clone()
    }
}

impl PgTls {
    /// `mode`, verifying against the certificates of the PEM file `ca_bundle` alone when given (on AWS the
    /// RDS global bundle), else against the web PKI roots. A missing or certificate-less file is an error.
    pub fn new(mode: TlsMode, ca_bundle: Option<&Path>) -> Result<Self, String> {
        let Some(path) = ca_bundle else {
            return Ok(mode.into());
        };
        Ok(PgTls {
            mode,
            roots: Arc::new(read_ca_bundle(path)?),
        })
    }

    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    /// The rustls configuration of this mode; `None` for `disable`.
    fn client_config(&self) -> Result<Option<rustls::ClientConfig>, StoreError> {
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(StoreError::unavailable)?;
        Ok(match self.mode {
            TlsMode::Disable => None,
            TlsMode::Require => Some(
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider())))
                    .with_no_client_auth(),
            ),
            // rustls' WebPKI verifier: the chain must end at one of `roots` and the certificate must name the
            // host the connection was made to.
            TlsMode::VerifyFull => Some(
                builder
                    .with_root_certificates(self.roots.clone())
                    .with_no_client_auth(),
            ),
        })
    }

    /// The server-certificate verifier of `verify-full` (tests check what it accepts).
    pub fn verifier(&self) -> Result<Arc<dyn ServerCertVerifier>, String> {
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            self.roots.clone(),
            Arc::new(provider()),
        )
        .build()
        .map(|v| v as Arc<dyn ServerCertVerifier>)
        .map_err(|e| e.to_string())
    }
}

fn web_pki_roots() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The certificates of a PEM file as trust anchors.
pub fn read_ca_bundle(path: &Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read CA bundle {shown}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA bundle {shown} is not PEM: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("CA bundle {shown} holds no usable certificate"));
    }
    Ok(roots)
}

/// Build a pool for `config` with at most `max_size` connections.
pub fn pool(
    mut config: tokio_postgres::Config,
    tls: impl Into<PgTls>,
    max_size: usize,
) -> Result<Pool, StoreError> {
    let tls = tls.into();
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls.client_config()? {
        None => {
            config.ssl_mode(SslMode::Disable);
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        }
        Some(client) => {
            config.ssl_mode(SslMode::Require);
            Manager::from_config(
                config,
                tokio_postgres_rustls::MakeRustlsConnect::new(client),
                manager_config,
            )
        }
    };
    Pool::builder(manager)
        .max_size(max_size.max(1))
        .build()
        .map_err(StoreError::unavailable)
}

/// One connection for `config` under `tls` (the same TLS as the pools); its driver runs on a task that ends
/// with the client.
pub async fn connect(
    config: &tokio_postgres::Config,
    tls: &PgTls,
) -> Result<tokio_postgres::Client, StoreError> {
    let mut config = config.clone();
    match tls.client_config()? {
        None => {
            config.ssl_mode(SslMode::Disable);
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(pg_error)?;
            tokio::spawn(connection);
            Ok(client)
        }
        Some(client_config) => {
            config.ssl_mode(SslMode::Require);
            let (client, connection) = config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(client_config))
                .await
                .map_err(pg_error)?;
            tokio::spawn(connection);
            Ok(client)
        }
    }
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// libpq `require`: the channel is encrypted but the certificate is not checked. Signatures are still
/// verified so the handshake itself is sound.
#[derive(Debug)]
struct EncryptOnly(rustls::crypto::CryptoProvider);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Control-plane schema: tenants, hashed API keys, memberships, and where each tenant's secret lives.
pub const CONTROL_PLANE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS clients (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(tenant_id),
    tenant_secret_ref TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS memberships (
    tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
    principal TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (tenant_id, principal)
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
    key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
-- Keys made before roles existed have roles NULL and keep every role.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS roles TEXT;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS name TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys (tenant_id, created_at);
-- Answers of administration requests (`key`) and of a tenant's own key management (`<scope>\n<key>`).
CREATE TABLE IF NOT EXISTS admin_idempotency (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
"#;

/// One tenant database: policies, clearances, the ledger and its tree, idempotent responses, the notification
/// outbox. Applied (idempotently) whenever a process first opens the tenant's pool, so a database made before a
/// table existed gets it then.
pub const TENANT_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS policies (
    version_id TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (policy_id, version)
);
CREATE TABLE IF NOT EXISTS review_settings (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS clearances (
    request_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS clearances_by_status ON clearances (status, created_at);
CREATE TABLE IF NOT EXISTS ledger_head (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    last_seq BIGINT NOT NULL,
    tree_size BIGINT NOT NULL
);
INSERT INTO ledger_head (id, last_seq, tree_size) VALUES (TRUE, 0, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS ledger (
    seq BIGINT PRIMARY KEY,
    request_id TEXT NOT NULL,
    event_uuid TEXT NOT NULL UNIQUE,
    event_hash TEXT NOT NULL,
    leaf_hash TEXT NOT NULL,
    leaf_index BIGINT UNIQUE,
    checkpoint_id BIGINT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_by_request ON ledger (request_id, seq);
CREATE INDEX IF NOT EXISTS ledger_unsequenced ON ledger (seq) WHERE leaf_index IS NULL;
CREATE TABLE IF NOT EXISTS tree_nodes (
    level SMALLINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    checkpoint_id BIGINT PRIMARY KEY,
    tree_size BIGINT NOT NULL,
    exported BOOLEAN NOT NULL DEFAULT FALSE,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
-- A long policy's chunks for the judge's retrieval: text sealed in body, the embedding a plain array ranked
-- by the worker (no pgvector here; with pgvector this column would become vector(n) and rank in SQL).
CREATE TABLE IF NOT EXISTS policy_chunks (
    version_id TEXT NOT NULL,
    embedding_model TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    body TEXT NOT NULL,
    embedding REAL[] NOT NULL,
    PRIMARY KEY (version_id, embedding_model, chunk_index)
);
-- Notifications a decision queued (the outbox), committed with it and deleted once dispatched to the
-- notifier. The body is the whole delivery, sealed: it holds the tool call's arguments. Delivery ids sort by
-- creation (compared bytewise: COLLATE "C").
CREATE TABLE IF NOT EXISTS outbox (
    delivery_id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
"#;
