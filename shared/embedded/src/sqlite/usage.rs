//! `UsageMeter` on SQLite: one counter row per tenant, UTC day and metric, added to by the writer without the
//! request waiting for it.

use async_trait::async_trait;
use ledgix_core::error::StoreError;
use ledgix_core::ports::UsageMeter;
use rusqlite::params;

use super::writer::Op;
use super::SqliteStore;

#[async_trait]
impl UsageMeter for SqliteStore {
    async fn record(
        &self,
        tenant_id: &str,
        day: &str,
        metric: &str,
        count: u64,
    ) -> Result<(), StoreError> {
        let op = Op::CountUsage {
            tenant_id: tenant_id.into(),
            day: day.into(),
            metric: metric.into(),
            count,
        };
        // Not awaited: the writer folds a group's counts into one upsert per counter (`Writer::send`).
        self.writer.send(op)
    }

    async fn usage(&self, tenant_id: &str, day: &str) -> Result<Vec<(String, u64)>, StoreError> {
        // Every count recorded before this read is durable, and so visible, once the barrier is.
        self.writer.write(Op::Barrier).await?;
        let (tenant_id, day) = (tenant_id.to_string(), day.to_string());
        self.read(move |conn, _codec| {
            let mut stmt = conn
                .prepare_cached("SELECT metric, count FROM usage WHERE tenant_id = ?1 AND day = ?2 ORDER BY metric")
                .map_err(StoreError::unavailable)?;
            let rows = stmt
                .query_map(params![tenant_id, day], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })
                .map_err(StoreError::unavailable)?;
            rows.map(|r| r.map_err(StoreError::unavailable)).collect()
        })
        .await
    }
}
