//! PostgreSQL plumbing: pools sized from configuration, TLS per sslmode (rustls), schema migrations.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use ledgix_core::error::StoreError;
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
    /// Encrypt and verify the certificate chain and host name against the web PKI roots.
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

pub fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A PostgreSQL error with the server's message (tokio-postgres' Display says only "db error").
pub fn pg_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => {
            StoreError::Unavailable(format!("postgres {}: {}", db.code().code(), db.message()))
        }
        None => StoreError::Unavailable(e.to_string()),
    }
}

pub fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// Build a pool for `config` with at most `max_size` connections.
pub fn pool(
    mut config: tokio_postgres::Config,
    tls: TlsMode,
    max_size: usize,
) -> Result<Pool, StoreError> {
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls {
        TlsMode::Disable => {
            config.ssl_mode(SslMode::Disable);
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        }
        TlsMode::Require => {
            config.ssl_mode(SslMode::Require);
            let client = rustls_config(Arc::new(EncryptOnly(provider())))?;
            Manager::from_config(
                config,
                tokio_postgres_rustls::MakeRustlsConnect::new(client),
                manager_config,
            )
        }
        TlsMode::VerifyFull => {
            config.ssl_mode(SslMode::Require);
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
                .with_safe_default_protocol_versions()
                .map_err(unavailable)?
                .with_root_certificates(roots)
                .with_no_client_auth();
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
        .map_err(unavailable)
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn rustls_config(verifier: Arc<EncryptOnly>) -> Result<rustls::ClientConfig, StoreError> {
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(unavailable)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    )
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
CREATE TABLE IF NOT EXISTS admin_idempotency (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
"#;

/// One tenant database: policies, clearances, the ledger and its tree, idempotent responses.
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
"#;
