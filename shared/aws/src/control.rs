//! Control-plane PostgreSQL: tenants, hashed API keys, memberships, `clients.tenant_secret_ref`.
//! Creating a tenant provisions its own database and role, and stores their credentials in Secrets Manager
//! at `TENANT_SECRET_PREFIX/<tenant_id>`; the control plane keeps only the reference.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use ledgix_core::error::{Conflict, StoreError};
use ledgix_core::model::{ApiKeyRecord, IdempotencyRecord, Tenant};
use ledgix_core::ports::{ControlPlane, ADMIN_SCOPE};
use ledgix_core::roles::Role;

use crate::pg::{pg_error, unique_or, CONTROL_PLANE_SCHEMA};
use crate::tenants::TenantDirectory;

const KEY_COLUMNS: &str = "key_id, tenant_id, key_hash, created_at, revoked_at, roles, name";

fn key_from_row(r: &tokio_postgres::Row) -> ApiKeyRecord {
    ApiKeyRecord {
        key_id: r.get(0),
        tenant_id: r.get(1),
        key_hash: r.get(2),
        created_at: r.get(3),
        revoked: r.get::<_, Option<String>>(4).is_some(),
        roles: Role::parse_stored(r.get::<_, Option<String>>(5).as_deref()),
        name: r.get(6),
    }
}

/// Row key of an answer: administration answers keep their bare key (as stored before scopes existed); other
/// scopes are prefixed, so the same Idempotency-Key in two scopes never collides.
fn answer_key(scope: &str, key: &str) -> String {
    if scope == ADMIN_SCOPE {
        key.to_string()
    } else {
        format!("{scope}\n{key}")
    }
}

pub struct PgControlPlane {
    pool: Pool,
    tenants: Arc<TenantDirectory>,
}

impl PgControlPlane {
    /// Connect and migrate the control-plane schema (serialised with an advisory lock).
    pub async fn connect(pool: Pool, tenants: Arc<TenantDirectory>) -> Result<Self, StoreError> {
        let mut client = pool.get().await.map_err(StoreError::unavailable)?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute("SELECT pg_advisory_xact_lock(7364001)", &[])
            .await
            .map_err(pg_error)?;
        tx.batch_execute(CONTROL_PLANE_SCHEMA)
            .await
            .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(PgControlPlane { pool, tenants })
    }

    async fn insert_key(
        tx: &tokio_postgres::Transaction<'_>,
        key: &ApiKeyRecord,
    ) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO api_keys (key_id, tenant_id, key_hash, created_at, roles, name) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&key.key_id, &key.tenant_id, &key.key_hash, &key.created_at, &Role::to_stored(&key.roles), &key.name],
        )
        .await
        .map_err(|e| unique_or(e, Conflict::Duplicate))?;
        Ok(())
    }

    async fn claim_idempotency(
        tx: &tokio_postgres::Transaction<'_>,
        record: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        if let Some(record) = record {
            let body = serde_json::to_string(record).map_err(StoreError::corrupt)?;
            tx.execute(
                "INSERT INTO admin_idempotency (key, body) VALUES ($1, $2)",
                &[&answer_key(&record.scope, &record.key), &body],
            )
            .await
            .map_err(|e| unique_or(e, Conflict::IdempotencyKey))?;
        }
        Ok(())
    }
}

#[async_trait]
impl ControlPlane for PgControlPlane {
    async fn create_tenant(
        &self,
        tenant: &Tenant,
        first_key: &ApiKeyRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        if let Some(record) = idempotency {
            if ControlPlane::idempotency(self, &record.scope, &record.key)
                .await?
                .is_some()
            {
                return Err(StoreError::Conflict(Conflict::IdempotencyKey));
            }
        }
        // Provision first: a half-created tenant without rows is invisible and retried safely.
        let secret_ref = self.tenants.provision(&tenant.tenant_id).await?;
        let mut client = self.pool.get().await.map_err(StoreError::unavailable)?;
        let tx = client.transaction().await.map_err(pg_error)?;
        Self::claim_idempotency(&tx, idempotency).await?;
        tx.execute(
            "INSERT INTO tenants (tenant_id, name, created_at) VALUES ($1, $2, $3)",
            &[&tenant.tenant_id, &tenant.name, &tenant.created_at],
        )
        .await
        .map_err(|e| unique_or(e, Conflict::Duplicate))?;
        tx.execute(
            "INSERT INTO clients (tenant_id, tenant_secret_ref) VALUES ($1, $2)",
            &[&tenant.tenant_id, &secret_ref],
        )
        .await
        .map_err(pg_error)?;
        Self::insert_key(&tx, first_key).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn tenant(&self, tenant_id: &str) -> Result<Option<Tenant>, StoreError> {
        let client = self.pool.get().await.map_err(StoreError::unavailable)?;
        let row = client
            .query_opt(
                "SELECT tenant_id, name, created_at FROM tenants WHERE tenant_id = $1",
                &[&tenant_id],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| Tenant {
            tenant_id: r.get(0),
            name: r.get(1),
            created_at: r.get(2),
        }))
    }

    async fn add_api_key(
        &self,
        key: &ApiKeyRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(StoreError::unavailable)?;
        let tx = client.transaction().await.map_err(pg_error)?;
        Self::claim_idempotency(&tx, idempotency).await?;
        Self::insert_key(&tx, key).await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let client = self.pool.get().await.map_err(StoreError::unavailable)?;
        let row = client
            .query_opt(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"),
                &[&key_hash],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.as_ref().map(key_from_row))
    }

    async fn api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let client = self.pool.get().await.map_err(StoreError::unavailable)?;
        let rows = client
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, key_id"),
                &[&tenant_id],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError> {
        let client = self.pool.get().await.map_err(StoreError::unavailable)?;
        let changed = client
            .execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE key_id = $1",
                &[&key_id, &ledgix_core::model::now_rfc3339()],
            )
            .await
            .map_err(pg_error)?;
        Ok(changed > 0)
    }

    async fn idempotency(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let client = self.pool.get().await.map_err(StoreError::unavailable)?;
        let row = client
            .query_opt(
                "SELECT body FROM admin_idempotency WHERE key = $1",
                &[&answer_key(scope, key)],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| serde_json::from_str(&r.get::<_, String>(0)).map_err(StoreError::corrupt))
            .transpose()
    }

    async fn tenant_ids(&self) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await.map_err(StoreError::unavailable)?;
        let rows = client
            .query("SELECT tenant_id FROM tenants ORDER BY tenant_id", &[])
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
