//! `TenantStore` on the tenant's own PostgreSQL database, with hot copies in DynamoDB.
//!
//! Everything a decision writes — clearance, ledger event, idempotent answer, the notifications it causes (the
//! outbox) — commits in one PostgreSQL transaction, so a decision and its ledger entry exist together or not at
//! all, and a retry can never add a second one. DynamoDB holds what is read hot: token burns (and their
//! idempotent answers), which live only there; and, copied after each commit, clearance statuses (what
//! `GET /clearance-status` polls) and idempotent answers (what every keyed request looks up first). A copy is
//! never newer than the database and never served while it may be older (see `dynamo.rs`); a lost copy only
//! sends a read to the database, and a replay that finds no copy is refused by the transaction's unique key,
//! which restores the copy. `writes` holds the database side of a commit.

mod writes;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ledgix_core::at_rest::PayloadCipher;
use ledgix_core::checkpoint::Checkpoint;
use ledgix_core::error::{Conflict, StoreError};
use ledgix_core::ledger::LedgerEvent;
use ledgix_core::merkle::{Hash, Position};
use ledgix_core::model::{
    ClearanceRecord, ClearanceStatus, ClearanceView, IdempotencyRecord, PolicyVersion,
    ReviewSettings,
};
use ledgix_core::notify::Delivery;
use ledgix_core::ports::{PolicyChunk, TenantStore, TreeState, Write};

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::dynamo::{HotStatus, HotTable};
use crate::pg::pg_error;
use crate::tenants::TenantDirectory;

pub struct PgTenantStore {
    tenants: Arc<TenantDirectory>,
    hot: HotTable,
    /// Clearances, ledger events, policies and idempotent answers are encrypted at rest with it.
    cipher: PayloadCipher,
}

impl PgTenantStore {
    pub fn new(tenants: Arc<TenantDirectory>, hot: HotTable, cipher: PayloadCipher) -> Self {
        PgTenantStore {
            tenants,
            hot,
            cipher,
        }
    }

    async fn client(&self, tenant_id: &str) -> Result<deadpool_postgres::Object, StoreError> {
        self.tenants
            .pool(tenant_id)
            .await?
            .get()
            .await
            .map_err(StoreError::unavailable)
    }

    /// At most one row of the tenant's database.
    async fn row(
        &self,
        tenant_id: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let client = self.client(tenant_id).await?;
        client.query_opt(sql, params).await.map_err(pg_error)
    }

    /// Every row `sql` selects from the tenant's database.
    async fn rows(
        &self,
        tenant_id: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client(tenant_id).await?;
        client.query(sql, params).await.map_err(pg_error)
    }

    /// The JSON `body` of at most one row of `table`.
    async fn one<T: serde::de::DeserializeOwned>(
        &self,
        tenant_id: &str,
        table: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<T>, StoreError> {
        match self.row(tenant_id, sql, params).await? {
            Some(row) => Ok(Some(self.open(table, row.get(0)).await?)),
            None => Ok(None),
        }
    }

    /// The JSON `body` of every row of `table`.
    async fn all<T: serde::de::DeserializeOwned>(
        &self,
        tenant_id: &str,
        table: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for row in self.rows(tenant_id, sql, params).await? {
            out.push(self.open(table, row.get(0)).await?);
        }
        Ok(out)
    }

    async fn open<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        body: String,
    ) -> Result<T, StoreError> {
        parse(&self.cipher.open(table, body).await?)
    }

    async fn ledger_event(&self, row: &Row) -> Result<LedgerEvent, StoreError> {
        let mut event: LedgerEvent = self.open("ledger", row.get(0)).await?;
        event.leaf_index = row.get(1);
        event.checkpoint_id = row.get(2);
        Ok(event)
    }

    /// Ledger rows (`body, leaf_index, checkpoint_id`) as events.
    async fn events(
        &self,
        tenant_id: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        let mut events = Vec::new();
        for row in &self.rows(tenant_id, sql, params).await? {
            events.push(self.ledger_event(row).await?);
        }
        Ok(events)
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::corrupt)
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(StoreError::corrupt)
}

/// The clearance a write commits, and whether it marked the status copy first (updates do; inserts need not,
/// as there is no older copy to be mistaken for the new one).
fn clearance_write(write: &Write) -> Option<(&ClearanceRecord, bool)> {
    match write {
        Write::InsertClearance(record) => Some((record, false)),
        Write::UpdateClearance { record, .. } => Some((record, true)),
        _ => None,
    }
}

/// AAD label of status copies: a sealed view cannot be swapped for another kind of record.
const STATUS_LABEL: &str = "clearance_status";
/// AAD label (table) of outbox entries.
const OUTBOX_LABEL: &str = "outbox";

impl PgTenantStore {
    async fn sealed_view(&self, record: &ClearanceRecord) -> Result<String, StoreError> {
        self.cipher
            .seal(STATUS_LABEL, json(&ClearanceView::from(record))?)
            .await
    }

    /// Copy what a successful commit wrote. A failed copy is logged, not raised: the commit stands, and the
    /// copy's absence (or the update's mark) sends readers to the database.
    async fn copy_committed(&self, tenant_id: &str, writes: &[Write]) {
        let statuses = async {
            for write in writes {
                let Some((record, settles_mark)) = clearance_write(write) else {
                    continue;
                };
                if let Err(e) = self.copy_status(tenant_id, record, settles_mark).await {
                    tracing::warn!(request_id = %record.request_id, error = %e, "clearance status not copied to DynamoDB; reads go to the tenant database");
                }
            }
        };
        let answers = async {
            for write in writes {
                if let Write::PutIdempotency(record) = write {
                    if let Err(e) = self.copy_answer(tenant_id, record).await {
                        tracing::warn!(error = %e, "idempotent answer not copied to DynamoDB; a replay is refused by the tenant database instead");
                    }
                }
            }
        };
        tokio::join!(statuses, answers);
    }

    async fn copy_status(
        &self,
        tenant_id: &str,
        record: &ClearanceRecord,
        settles_mark: bool,
    ) -> Result<(), StoreError> {
        let body = self.sealed_view(record).await?;
        self.hot
            .put_status(
                tenant_id,
                &record.request_id,
                body,
                record.status.rank(),
                settles_mark,
            )
            .await
    }

    async fn copy_answer(
        &self,
        tenant_id: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError> {
        let body = self.cipher.seal("idempotency", json(record)?).await?;
        self.hot.put_idempotency(tenant_id, &record.key, body).await
    }

    /// After a refused (rolled-back) commit: take back this commit's marks with the database's status, and
    /// copy the answer that holds the key, so the caller's next `idempotency` read finds it.
    async fn restore_after_conflict(
        &self,
        tenant_id: &str,
        writes: &[Write],
        conflict: Conflict,
    ) -> Result<(), StoreError> {
        for write in writes {
            let Some((record, marked)) = clearance_write(write) else {
                continue;
            };
            if let Err(e) = self
                .copy_status_from_database(tenant_id, &record.request_id, marked)
                .await
            {
                tracing::warn!(request_id = %record.request_id, error = %e, "clearance status copy not restored; reads go to the tenant database");
            }
        }
        if conflict == Conflict::IdempotencyKey {
            for write in writes {
                if let Write::PutIdempotency(record) = write {
                    let row = self
                        .row(
                            tenant_id,
                            "SELECT body FROM idempotency WHERE key = $1",
                            &[&record.key],
                        )
                        .await?;
                    if let Some(row) = row {
                        self.hot
                            .put_idempotency(tenant_id, &record.key, row.get(0))
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Copy the database's status of a request: over the item and settling a mark, or only into a missing item.
    async fn copy_status_from_database(
        &self,
        tenant_id: &str,
        request_id: &str,
        settles_mark: bool,
    ) -> Result<Option<ClearanceRecord>, StoreError> {
        let record = self.clearance(tenant_id, request_id).await?;
        match &record {
            Some(record) if settles_mark => self.copy_status(tenant_id, record, true).await?,
            Some(record) => {
                let body = self.sealed_view(record).await?;
                self.hot
                    .restore_status(tenant_id, request_id, body, record.status.rank())
                    .await?
            }
            None if settles_mark => self.hot.settle_mark(tenant_id, request_id).await?,
            None => {}
        }
        Ok(record)
    }
}

#[async_trait]
impl TenantStore for PgTenantStore {
    async fn commit(&self, tenant_id: &str, writes: Vec<Write>) -> Result<Vec<i64>, StoreError> {
        // Mark before committing; if DynamoDB refuses, nothing is written (fail closed).
        for (record, marks) in writes.iter().filter_map(clearance_write) {
            if marks {
                self.hot
                    .mark_status_changing(tenant_id, &record.request_id)
                    .await?;
            }
        }
        match self.commit_database(tenant_id, &writes).await {
            Ok(seqs) => {
                self.copy_committed(tenant_id, &writes).await;
                Ok(seqs)
            }
            Err(StoreError::Conflict(conflict)) => {
                self.restore_after_conflict(tenant_id, &writes, conflict)
                    .await?;
                Err(StoreError::Conflict(conflict))
            }
            // The commit's outcome is unknown: marks stay, so readers keep going to the database.
            Err(e) => Err(e),
        }
    }

    async fn clearance_status(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<ClearanceView>, StoreError> {
        let copy = match self.hot.status(tenant_id, request_id).await {
            Ok(copy) => copy,
            Err(e) => {
                tracing::warn!(error = %e, "clearance status copy unreadable; reading the tenant database");
                HotStatus::Changing
            }
        };
        let record = match copy {
            HotStatus::Current(body) => return Ok(Some(self.open(STATUS_LABEL, body).await?)),
            HotStatus::Changing => self.clearance(tenant_id, request_id).await?,
            HotStatus::Absent => match self
                .copy_status_from_database(tenant_id, request_id, false)
                .await
            {
                Ok(record) => record,
                Err(e) => {
                    tracing::warn!(error = %e, "clearance status copy not restored");
                    self.clearance(tenant_id, request_id).await?
                }
            },
        };
        Ok(record.as_ref().map(ClearanceView::from))
    }

    async fn clearance(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<ClearanceRecord>, StoreError> {
        self.one(
            tenant_id,
            "clearances",
            "SELECT body FROM clearances WHERE request_id = $1",
            &[&request_id],
        )
        .await
    }

    async fn clearances_with_status(
        &self,
        tenant_id: &str,
        status: ClearanceStatus,
        limit: usize,
    ) -> Result<Vec<ClearanceRecord>, StoreError> {
        self.all(
            tenant_id,
            "clearances",
            "SELECT body FROM clearances WHERE status = $1 ORDER BY created_at LIMIT $2",
            &[&status.as_str(), &(limit as i64)],
        )
        .await
    }

    async fn policies(&self, tenant_id: &str) -> Result<Vec<PolicyVersion>, StoreError> {
        self.all(
            tenant_id,
            "policies",
            "SELECT DISTINCT ON (policy_id) body FROM policies ORDER BY policy_id, version DESC",
            &[],
        )
        .await
    }

    async fn policy_version(
        &self,
        tenant_id: &str,
        version_id: &str,
    ) -> Result<Option<PolicyVersion>, StoreError> {
        self.one(
            tenant_id,
            "policies",
            "SELECT body FROM policies WHERE version_id = $1",
            &[&version_id],
        )
        .await
    }

    async fn review_settings(&self, tenant_id: &str) -> Result<ReviewSettings, StoreError> {
        Ok(self
            .one(
                tenant_id,
                "review_settings",
                "SELECT body FROM review_settings",
                &[],
            )
            .await?
            .unwrap_or_default())
    }

    async fn policy_chunks(
        &self,
        tenant_id: &str,
        policy_version_id: &str,
        embedding_model: &str,
    ) -> Result<Vec<PolicyChunk>, StoreError> {
        let rows = self
            .rows(
                tenant_id,
                "SELECT chunk_index, body, embedding FROM policy_chunks
                 WHERE version_id = $1 AND embedding_model = $2 ORDER BY chunk_index",
                &[&policy_version_id, &embedding_model],
            )
            .await?;
        let mut chunks = Vec::with_capacity(rows.len());
        for row in rows {
            let index: i32 = row.try_get(0).map_err(StoreError::corrupt)?;
            let body: serde_json::Value = self
                .open(
                    "policy_chunks",
                    row.try_get(1).map_err(StoreError::corrupt)?,
                )
                .await?;
            chunks.push(PolicyChunk {
                index: u32::try_from(index).map_err(StoreError::corrupt)?,
                text: body["text"].as_str().unwrap_or_default().to_string(),
                embedding: row.try_get(2).map_err(StoreError::corrupt)?,
            });
        }
        Ok(chunks)
    }

    async fn ledger_tail(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        self.events(tenant_id, "SELECT body, leaf_index, checkpoint_id FROM (SELECT * FROM ledger ORDER BY seq DESC LIMIT $1) t ORDER BY seq",
                &[&(limit as i64)],).await
    }

    async fn idempotency(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        match self.hot.idempotency_body(tenant_id, key).await {
            Ok(Some(body)) => return Ok(Some(self.open("idempotency", body).await?)),
            // No copy: a replay is refused by the database's unique key, which restores the copy.
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "idempotency copy unreadable; reading the tenant database")
            }
        }
        self.one(
            tenant_id,
            "idempotency",
            "SELECT body FROM idempotency WHERE key = $1",
            &[&key],
        )
        .await
    }

    /// Token burns and their answers live only in DynamoDB: one conditional transaction, no tenant database.
    async fn burn_jti(
        &self,
        tenant_id: &str,
        jti: &str,
        expires_at: i64,
        answer: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let answer = match answer {
            Some(record) => Some((
                record.key.as_str(),
                self.cipher.seal("idempotency", json(record)?).await?,
            )),
            None => None,
        };
        self.hot.burn_jti(tenant_id, jti, expires_at, answer).await
    }

    async fn consume_answer(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        match self.hot.consume_answer_body(tenant_id, key).await? {
            Some(body) => Ok(Some(self.open("idempotency", body).await?)),
            None => Ok(None),
        }
    }

    async fn tree_state(&self, tenant_id: &str) -> Result<TreeState, StoreError> {
        self.one(
            tenant_id,
            "checkpoints",
            "SELECT body FROM checkpoints ORDER BY checkpoint_id DESC LIMIT 1",
            &[],
        )
        .await
        .map(TreeState::signed_by)
    }

    async fn unsequenced_leaves(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let limit = limit as i64;
        let rows = self
            .rows(
                tenant_id,
                "SELECT seq, leaf_hash FROM ledger WHERE leaf_index IS NULL ORDER BY seq LIMIT $1",
                &[&limit],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0).map_err(StoreError::corrupt)?,
                    row.try_get(1).map_err(StoreError::corrupt)?,
                ))
            })
            .collect()
    }

    async fn unsequenced_events(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        self.events(tenant_id, "SELECT body, leaf_index, checkpoint_id FROM ledger WHERE leaf_index IS NULL ORDER BY seq LIMIT $1",
                &[&(limit as i64)],).await
    }

    async fn tree_hashes(
        &self,
        tenant_id: &str,
        positions: &[Position],
    ) -> Result<HashMap<Position, Hash>, StoreError> {
        let levels: Vec<i16> = positions.iter().map(|p| i16::from(p.level)).collect();
        let idxs: Vec<i64> = positions.iter().map(|p| p.index as i64).collect();
        let rows = self
            .rows(
                tenant_id,
                "SELECT t.level, t.idx, t.hash FROM tree_nodes t
                 JOIN UNNEST($1::smallint[], $2::bigint[]) AS u(level, idx) ON t.level = u.level AND t.idx = u.idx",
                &[&levels, &idxs],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let position = Position {
                    level: r.get::<_, i16>(0) as u8,
                    index: r.get::<_, i64>(1) as u64,
                };
                let hash: Hash = r
                    .get::<_, Vec<u8>>(2)
                    .try_into()
                    .map_err(|_| StoreError::corrupt("tree hash is not 32 bytes"))?;
                Ok((position, hash))
            })
            .collect()
    }

    async fn entries(
        &self,
        tenant_id: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let rows = self
            .rows(
                tenant_id,
                "SELECT event_hash FROM ledger WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index",
                &[&(start as i64), &(end as i64)],
            )
            .await?;
        let hashes: Vec<Hash> = rows
            .iter()
            .map(|r| {
                ledgix_core::merkle::parse_hash(&r.get::<_, String>(0))
                    .ok_or_else(|| StoreError::corrupt("event hash is not hex"))
            })
            .collect::<Result<_, _>>()?;
        if hashes.len() as u64 != end - start {
            return Err(StoreError::corrupt(format!(
                "leaves {start}..{end} are not all sequenced"
            )));
        }
        Ok(hashes)
    }

    async fn checkpoints(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        self.all(tenant_id, "checkpoints",
"SELECT body FROM (SELECT * FROM checkpoints ORDER BY checkpoint_id DESC LIMIT $1) c ORDER BY checkpoint_id",
                &[&(limit as i64)],).await
    }

    async fn checkpoint(
        &self,
        tenant_id: &str,
        checkpoint_id: i64,
    ) -> Result<Option<Checkpoint>, StoreError> {
        self.one(
            tenant_id,
            "checkpoints",
            "SELECT body FROM checkpoints WHERE checkpoint_id = $1",
            &[&checkpoint_id],
        )
        .await
    }

    async fn unexported_checkpoints(&self, tenant_id: &str) -> Result<Vec<Checkpoint>, StoreError> {
        self.all(
            tenant_id,
            "checkpoints",
            "SELECT body FROM checkpoints WHERE NOT exported ORDER BY checkpoint_id",
            &[],
        )
        .await
    }

    async fn outbox(&self, tenant_id: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.all(
            tenant_id,
            OUTBOX_LABEL,
            "SELECT body FROM outbox ORDER BY delivery_id COLLATE \"C\" LIMIT $1",
            &[&i64::try_from(limit).unwrap_or(i64::MAX)],
        )
        .await
    }

    async fn latest_event_for_request(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<LedgerEvent>, StoreError> {
        let row = self
            .row(
                tenant_id,
                "SELECT body, leaf_index, checkpoint_id FROM ledger WHERE request_id = $1 ORDER BY seq DESC LIMIT 1",
                &[&request_id],
            )
            .await?;
        match row {
            Some(row) => Ok(Some(self.ledger_event(&row).await?)),
            None => Ok(None),
        }
    }
}
