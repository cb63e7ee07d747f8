//! Per-tenant PostgreSQL databases. Credentials live in Secrets Manager at `TENANT_SECRET_PREFIX/<tenant>`
//! as JSON `{host, port, dbname, username, password}`; they are fetched on first use and re-read after
//! VAULT_TENANT_SECRET_CACHE_TTL_SECONDS, and one pool is kept per tenant.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use ledgix_core::error::StoreError;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::pg::{self, pg_error, PgTls, TENANT_SCHEMA};
use crate::scram;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDbSecret {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub username: String,
    pub password: String,
}

pub struct TenantDirectory {
    secrets: aws_sdk_secretsmanager::Client,
    prefix: String,
    ttl: Duration,
    /// TLS of the tenant pools (VAULT_TENANT_DB_SSLMODE, VAULT_DB_CA_BUNDLE).
    tls: PgTls,
    max_connections: usize,
    /// Connection used to create tenant databases and roles (the control-plane cluster's owner).
    admin: tokio_postgres::Config,
    /// TLS of that connection: the control plane's (VAULT_CONTROL_PLANE_DB_SSLMODE, VAULT_DB_CA_BUNDLE).
    admin_tls: PgTls,
    pools: Mutex<HashMap<String, Cached>>,
    /// Tests only: provision a database for a tenant id seen for the first time.
    auto_provision: bool,
}

struct Cached {
    pool: Pool,
    secret: TenantDbSecret,
    fetched: Instant,
}

fn sanitize(tenant_id: &str) -> String {
    tenant_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl TenantDirectory {
    /// `admin` and `admin_tls`: the control plane's connection settings, used to provision tenant databases.
    pub fn new(
        secrets: aws_sdk_secretsmanager::Client,
        prefix: &str,
        ttl: Duration,
        tls: impl Into<PgTls>,
        max_connections: usize,
        admin: tokio_postgres::Config,
        admin_tls: impl Into<PgTls>,
    ) -> Self {
        TenantDirectory {
            secrets,
            prefix: prefix.trim_end_matches('/').to_string(),
            ttl,
            tls: tls.into(),
            max_connections,
            admin,
            admin_tls: admin_tls.into(),
            pools: Mutex::new(HashMap::new()),
            auto_provision: false,
        }
    }

    /// For the port contract suite, which writes to arbitrary tenant ids: create their databases on demand.
    /// Never used by the vault itself, where only `ControlPlane::create_tenant` provisions.
    pub fn with_auto_provision(mut self) -> Self {
        self.auto_provision = true;
        self
    }

    pub fn secret_name(&self, tenant_id: &str) -> String {
        format!("{}/{tenant_id}", self.prefix)
    }

    async fn fetch_secret(&self, tenant_id: &str) -> Result<TenantDbSecret, StoreError> {
        let name = self.secret_name(tenant_id);
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(&name)
            .send()
            .await
            .map_err(|e| {
                let e = e.into_service_error();
                if e.is_resource_not_found_exception() {
                    StoreError::Unavailable(format!(
                        "tenant {tenant_id}: secret {name} does not exist"
                    ))
                } else {
                    StoreError::Unavailable(format!(
                        "tenant {tenant_id}: cannot read secret {name}: {e}"
                    ))
                }
            })?;
        let text = out
            .secret_string()
            .ok_or_else(|| StoreError::Unavailable(format!("secret {name} has no string value")))?;
        serde_json::from_str(text).map_err(|_| {
            StoreError::Unavailable(format!("secret {name} is not a tenant database bundle"))
        })
    }

    /// The pool for a tenant's database, creating (and migrating) it on first use.
    pub async fn pool(&self, tenant_id: &str) -> Result<Pool, StoreError> {
        let mut pools = self.pools.lock().await;
        if let Some(cached) = pools.get_mut(tenant_id) {
            if cached.fetched.elapsed() < self.ttl {
                return Ok(cached.pool.clone());
            }
            let secret = self.fetch_secret(tenant_id).await?;
            cached.fetched = Instant::now();
            if secret == cached.secret {
                return Ok(cached.pool.clone());
            }
        }
        let secret = match self.fetch_secret(tenant_id).await {
            // Still under the lock, so concurrent first uses provision once.
            Err(_) if self.auto_provision => {
                self.provision_database(tenant_id).await?;
                self.fetch_secret(tenant_id).await?
            }
            other => other?,
        };
        let mut config = tokio_postgres::Config::new();
        config
            .host(&secret.host)
            .port(secret.port)
            .dbname(&secret.dbname)
            .user(&secret.username)
            .password(secret.password.as_bytes())
            .connect_timeout(Duration::from_secs(5));
        let pool = pg::pool(config, &self.tls, self.max_connections)?;
        migrate(&pool).await?;
        pools.insert(
            tenant_id.to_string(),
            Cached {
                pool: pool.clone(),
                secret,
                fetched: Instant::now(),
            },
        );
        Ok(pool)
    }

    /// Create the tenant's database and role and store their credentials; returns the secret reference.
    /// Idempotent: an existing role, database or secret is reused.
    pub async fn provision(&self, tenant_id: &str) -> Result<String, StoreError> {
        let arn = self.provision_database(tenant_id).await?;
        self.pools.lock().await.remove(tenant_id);
        Ok(arn)
    }

    async fn provision_database(&self, tenant_id: &str) -> Result<String, StoreError> {
        let name = format!("ledgix_t_{}", sanitize(tenant_id));
        let password = {
            use rand_password::generate;
            generate()
        };
        // The control plane's TLS: with verify-full the server's chain and name are checked before the
        // role's credentials are set over this connection.
        let client = pg::connect(&self.admin, &self.admin_tls).await?;
        let role_exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
            .await
            .map_err(pg_error)?
            .is_some();
        // The server is sent only a SCRAM-SHA-256 verifier (stored as is), never the password: statement
        // logs and pg_stat_statements see nothing that logs in. Role and database names are sanitised to
        // [a-z0-9_] and the verifier is base64 and `$:`; DDL takes no bind parameters, so they are literals.
        let verifier = scram::verifier(&password)
            .map_err(|e| StoreError::Unavailable(format!("tenant role password: {e}")))?;
        let verb = if role_exists { "ALTER" } else { "CREATE" };
        client
            .batch_execute(&format!(
                "{verb} ROLE \"{name}\" LOGIN PASSWORD '{verifier}'"
            ))
            .await
            .map_err(pg_error)?;
        let db_exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(pg_error)?
            .is_some();
        if !db_exists {
            client
                .batch_execute(&format!("CREATE DATABASE \"{name}\" OWNER \"{name}\""))
                .await
                .map_err(pg_error)?;
        }
        // Only the tenant's own role may connect to its database (PUBLIC may by default, so every other
        // tenant's role could). Re-applied on every provisioning, so databases made before this hold it too.
        client
            .batch_execute(&format!(
                "REVOKE CONNECT ON DATABASE \"{name}\" FROM PUBLIC; \
                 GRANT CONNECT ON DATABASE \"{name}\" TO \"{name}\""
            ))
            .await
            .map_err(pg_error)?;
        drop(client);
        let host = match self.admin.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "localhost".to_string(),
        };
        let port = self.admin.get_ports().first().copied().unwrap_or(5432);
        let secret = TenantDbSecret {
            host,
            port,
            dbname: name.clone(),
            username: name,
            password,
        };
        let body = serde_json::to_string(&secret).map_err(StoreError::corrupt)?;
        let secret_name = self.secret_name(tenant_id);
        let created = self
            .secrets
            .create_secret()
            .name(&secret_name)
            .secret_string(&body)
            .send()
            .await;
        let arn = match created {
            Ok(out) => out.arn().unwrap_or(&secret_name).to_string(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                let out = self
                    .secrets
                    .put_secret_value()
                    .secret_id(&secret_name)
                    .secret_string(&body)
                    .send()
                    .await
                    .map_err(|e| {
                        StoreError::unavailable(format!(
                            "cannot update secret {secret_name}: {}",
                            aws_sdk_s3::error::DisplayErrorContext(&e)
                        ))
                    })?;
                out.arn().unwrap_or(&secret_name).to_string()
            }
            Err(e) => {
                return Err(StoreError::unavailable(format!(
                    "cannot create secret {secret_name}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )))
            }
        };
        Ok(arn)
    }
}

async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(StoreError::unavailable)?;
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock(7364002)", &[])
        .await
        .map_err(pg_error)?;
    tx.batch_execute(TENANT_SCHEMA).await.map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)
}

mod rand_password {
    /// 48 random hex characters (192 bits).
    pub fn generate() -> String {
        use std::fmt::Write;
        let mut bytes = [0u8; 24];
        getrandom_fill(&mut bytes);
        let mut out = String::with_capacity(48);
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    fn getrandom_fill(buf: &mut [u8]) {
        use rand::RngCore;
        rand::rngs::OsRng.fill_bytes(buf);
    }
}
