//! `ControlPlane` on SQLite: tenants, hashed API keys and the administration answers (scope `admin`).

use async_trait::async_trait;
use ledgix_core::error::StoreError;
use ledgix_core::model::{ApiKeyRecord, IdempotencyRecord, Tenant};
use ledgix_core::ports::ControlPlane;
use ledgix_core::roles::Role;
use rusqlite::OptionalExtension;

use super::writer::{Done, Op};
use super::SqliteStore;

const KEY_COLUMNS: &str = "key_id, tenant_id, key_hash, created_at, revoked_at, roles, name";

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        key_id: r.get(0)?,
        tenant_id: r.get(1)?,
        key_hash: r.get(2)?,
        created_at: r.get(3)?,
        revoked: r.get::<_, Option<String>>(4)?.is_some(),
        roles: Role::parse_stored(r.get::<_, Option<String>>(5)?.as_deref()),
        name: r.get(6)?,
    })
}

#[async_trait]
impl ControlPlane for SqliteStore {
    async fn create_tenant(
        &self,
        tenant: &Tenant,
        first_key: &ApiKeyRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        self.writer
            .write(Op::CreateTenant {
                tenant: tenant.clone(),
                key: first_key.clone(),
                idempotency: idempotency.cloned(),
            })
            .await
            .map(|_| ())
    }

    async fn tenant(&self, tenant_id: &str) -> Result<Option<Tenant>, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn, _codec| {
            conn.prepare_cached(
                "SELECT tenant_id, name, created_at FROM tenants WHERE tenant_id = ?1",
            )
            .map_err(StoreError::unavailable)?
            .query_row([tenant_id], |r| {
                Ok(Tenant {
                    tenant_id: r.get(0)?,
                    name: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })
            .optional()
            .map_err(StoreError::unavailable)
        })
        .await
    }

    async fn add_api_key(
        &self,
        key: &ApiKeyRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        self.writer
            .write(Op::AddKey {
                key: key.clone(),
                idempotency: idempotency.cloned(),
            })
            .await
            .map(|_| ())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let key_hash = key_hash.to_string();
        self.read(move |conn, _codec| {
            conn.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1"
            ))
            .map_err(StoreError::unavailable)?
            .query_row([key_hash], key_from_row)
            .optional()
            .map_err(StoreError::unavailable)
        })
        .await
    }

    async fn api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn, _codec| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at DESC, key_id"
                ))
                .map_err(StoreError::unavailable)?;
            let rows = stmt
                .query_map([tenant_id], key_from_row)
                .map_err(StoreError::unavailable)?;
            rows.map(|r| r.map_err(StoreError::unavailable)).collect()
        })
        .await
    }

    async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError> {
        match self
            .writer
            .write(Op::RevokeKey {
                key_id: key_id.to_string(),
            })
            .await?
        {
            Done::Changed(changed) => Ok(changed),
            Done::Seqs(_) => Ok(false),
        }
    }

    async fn idempotency(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.query_one(
            "idempotency",
            "SELECT body FROM idempotency WHERE scope = ?1 AND key = ?2",
            (scope.to_string(), key.to_string()),
        )
        .await
    }

    async fn tenant_ids(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn, _codec| {
            let mut stmt = conn
                .prepare_cached("SELECT tenant_id FROM tenants ORDER BY tenant_id")
                .map_err(StoreError::unavailable)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(StoreError::unavailable)?;
            rows.map(|r| r.map_err(StoreError::unavailable)).collect()
        })
        .await
    }
}
