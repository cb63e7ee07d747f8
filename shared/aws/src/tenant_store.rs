//! `TenantStore` on the tenant's own PostgreSQL database, with hot copies in DynamoDB.
//!
//! Everything a decision writes — clearance, ledger event, idempotent answer — commits in one PostgreSQL
//! transaction, so a decision and its ledger entry exist together or not at all, and a retry can never add a
//! second one. DynamoDB holds what is read hot: token burns (and their idempotent answers), which live only
//! there; and, copied after each commit, clearance statuses (what `GET /clearance-status` polls) and idempotent
//! answers (what every keyed request looks up first). A copy is never newer than the database and never served
//! while it may be older (see `dynamo.rs`); a lost copy only sends a read to the database, and a replay that
//! finds no copy is refused by the transaction's unique key, which restores the copy.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ledgix_core::at_rest::PayloadCipher;
use ledgix_core::checkpoint::{Checkpoint, EXPORT_DONE};
use ledgix_core::error::{Conflict, StoreError};
use ledgix_core::ledger::LedgerEvent;
use ledgix_core::merkle::{Hash, Position};
use ledgix_core::model::{
    ClearanceRecord, ClearanceStatus, ClearanceView, IdempotencyRecord, PolicyVersion,
    ReviewSettings,
};
use ledgix_core::ports::{Seal, TenantStore, TreeState, Write};
use ledgix_core::service::is_consume_scope;
use tokio_postgres::Transaction;

use crate::dynamo::{HotStatus, HotTable};
use crate::pg::{corrupt, is_unique_violation, pg_error, unavailable};
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
            .map_err(unavailable)
    }

    /// The JSON `body` of at most one row of `table`.
    async fn one<T: serde::de::DeserializeOwned>(
        &self,
        tenant_id: &str,
        table: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<T>, StoreError> {
        let row = self
            .client(tenant_id)
            .await?
            .query_opt(sql, params)
            .await
            .map_err(pg_error)?;
        match row {
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
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<T>, StoreError> {
        let rows = self
            .client(tenant_id)
            .await?
            .query(sql, params)
            .await
            .map_err(pg_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
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

    async fn ledger_event(&self, row: &tokio_postgres::Row) -> Result<LedgerEvent, StoreError> {
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
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        let rows = self
            .client(tenant_id)
            .await?
            .query(sql, params)
            .await
            .map_err(pg_error)?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            events.push(self.ledger_event(row).await?);
        }
        Ok(events)
    }
}

fn unique_or(e: tokio_postgres::Error, conflict: Conflict) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(conflict)
    } else {
        unavailable(e)
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt)
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(corrupt)
}

async fn apply(
    tx: &Transaction<'_>,
    cipher: &PayloadCipher,
    write: &Write,
) -> Result<Option<i64>, StoreError> {
    let sealed = |table: &'static str, body: String| cipher.seal(table, body);
    match write {
        Write::InsertClearance(r) => {
            tx.execute(
                "INSERT INTO clearances (request_id, status, created_at, body) VALUES ($1, $2, $3, $4)",
                &[&r.request_id, &r.status.as_str(), &r.created_at, &sealed("clearances", json(r)?).await?],
            )
            .await
            .map_err(|e| unique_or(e, Conflict::ClearanceState))?;
        }
        Write::UpdateClearance { record, expected } => {
            let changed = tx
                .execute(
                    "UPDATE clearances SET status = $2, body = $3 WHERE request_id = $1 AND status = $4",
                    &[&record.request_id, &record.status.as_str(), &sealed("clearances", json(record)?).await?, &expected.as_str()],
                )
                .await
                .map_err(pg_error)?;
            if changed == 0 {
                return Err(StoreError::Conflict(Conflict::ClearanceState));
            }
        }
        Write::AppendEvent(event) => {
            // The head row lock orders appends: seqs commit in order, so the sealer never skips one.
            let seq: i64 = tx
                .query_one(
                    "UPDATE ledger_head SET last_seq = last_seq + 1 RETURNING last_seq",
                    &[],
                )
                .await
                .map_err(pg_error)?
                .get(0);
            let mut event = event.clone();
            event.seq = seq;
            tx.execute(
                "INSERT INTO ledger (seq, request_id, event_uuid, event_hash, leaf_hash, body) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&seq, &event.request_id, &event.event_uuid, &event.event_hash, &event.leaf_hash, &sealed("ledger", json(&event)?).await?],
            )
            .await
            .map_err(|e| unique_or(e, Conflict::Duplicate))?;
            return Ok(Some(seq));
        }
        Write::PutPolicy(p) => {
            tx.execute(
                "INSERT INTO policies (version_id, policy_id, version, body) VALUES ($1, $2, $3, $4)",
                &[&p.version_id, &p.policy_id, &p.version, &sealed("policies", json(p)?).await?],
            )
            .await
            .map_err(|e| unique_or(e, Conflict::Duplicate))?;
        }
        Write::PutReviewSettings(settings) => {
            tx.execute(
                "INSERT INTO review_settings (id, body) VALUES (TRUE, $1) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                &[&json(settings)?],
            )
            .await
            .map_err(pg_error)?;
        }
        Write::PutIdempotency(record) => {
            tx.execute(
                "INSERT INTO idempotency (key, body) VALUES ($1, $2)",
                &[&record.key, &sealed("idempotency", json(record)?).await?],
            )
            .await
            .map_err(|e| unique_or(e, Conflict::IdempotencyKey))?;
        }
        Write::BurnJti { .. } => {
            return Err(corrupt(
                "token burns are written to DynamoDB, not the tenant database",
            ))
        }
        Write::Seal(seal) => apply_seal(tx, seal).await?,
        Write::MarkExported {
            checkpoint_id,
            export_uri,
            export_version_id,
            exported_at,
        } => {
            let row = tx
                .query_opt(
                    "SELECT body FROM checkpoints WHERE checkpoint_id = $1 FOR UPDATE",
                    &[checkpoint_id],
                )
                .await
                .map_err(pg_error)?
                .ok_or(StoreError::Conflict(Conflict::Duplicate))?;
            let mut checkpoint: Checkpoint = parse(&row.get::<_, String>(0))?;
            checkpoint.export_uri = export_uri.clone();
            checkpoint.export_version_id = export_version_id.clone();
            checkpoint.export_status = EXPORT_DONE.into();
            checkpoint.exported_at = Some(exported_at.clone());
            tx.execute(
                "UPDATE checkpoints SET exported = TRUE, body = $2 WHERE checkpoint_id = $1",
                &[checkpoint_id, &json(&checkpoint)?],
            )
            .await
            .map_err(pg_error)?;
        }
    }
    Ok(None)
}

async fn apply_seal(tx: &Transaction<'_>, seal: &Seal) -> Result<(), StoreError> {
    let size: i64 = tx
        .query_one("SELECT tree_size FROM ledger_head FOR UPDATE", &[])
        .await
        .map_err(pg_error)?
        .get(0);
    if size as u64 != seal.expected_tree_size {
        return Err(StoreError::Conflict(Conflict::TreeMoved));
    }
    let checkpoint_id = seal.checkpoint.checkpoint_id;
    let seqs: Vec<i64> = seal.leaves.iter().map(|(seq, _)| *seq).collect();
    let indexes: Vec<i64> = seal.leaves.iter().map(|(_, index)| *index as i64).collect();
    let changed = tx
        .execute(
            "UPDATE ledger SET leaf_index = u.leaf_index, checkpoint_id = $3
             FROM UNNEST($1::bigint[], $2::bigint[]) AS u(seq, leaf_index)
             WHERE ledger.seq = u.seq AND ledger.leaf_index IS NULL",
            &[&seqs, &indexes, &checkpoint_id],
        )
        .await
        .map_err(pg_error)?;
    if changed as usize != seal.leaves.len() {
        return Err(StoreError::Conflict(Conflict::TreeMoved));
    }
    let levels: Vec<i16> = seal.nodes.iter().map(|(p, _)| i16::from(p.level)).collect();
    let idxs: Vec<i64> = seal.nodes.iter().map(|(p, _)| p.index as i64).collect();
    let hashes: Vec<Vec<u8>> = seal.nodes.iter().map(|(_, h)| h.to_vec()).collect();
    tx.execute(
        "INSERT INTO tree_nodes (level, idx, hash) SELECT * FROM UNNEST($1::smallint[], $2::bigint[], $3::bytea[])",
        &[&levels, &idxs, &hashes],
    )
    .await
    .map_err(|e| unique_or(e, Conflict::TreeMoved))?;
    tx.execute(
        "INSERT INTO checkpoints (checkpoint_id, tree_size, body) VALUES ($1, $2, $3)",
        &[
            &checkpoint_id,
            &seal.checkpoint.tree_size,
            &json(&seal.checkpoint)?,
        ],
    )
    .await
    .map_err(|e| unique_or(e, Conflict::TreeMoved))?;
    tx.execute(
        "UPDATE ledger_head SET tree_size = $1",
        &[&seal.checkpoint.tree_size],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
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

impl PgTenantStore {
    async fn commit_database(
        &self,
        tenant_id: &str,
        writes: &[Write],
    ) -> Result<Vec<i64>, StoreError> {
        let mut client = self.client(tenant_id).await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let mut seqs = Vec::new();
        for write in writes {
            if let Some(seq) = apply(&tx, &self.cipher, write).await? {
                seqs.push(seq);
            }
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(seqs)
    }

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
                    if let Err(e) = self.copy_answer(record).await {
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

    async fn copy_answer(&self, record: &IdempotencyRecord) -> Result<(), StoreError> {
        let body = self.cipher.seal("idempotency", json(record)?).await?;
        self.hot
            .put_idempotency(&record.scope, &record.key, body)
            .await
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
                        .client(tenant_id)
                        .await?
                        .query_opt(
                            "SELECT body FROM idempotency WHERE key = $1",
                            &[&record.key],
                        )
                        .await
                        .map_err(pg_error)?;
                    if let Some(row) = row {
                        self.hot
                            .put_idempotency(&record.scope, &record.key, row.get(0))
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
        if let Some(Write::BurnJti { jti, expires_at }) =
            writes.iter().find(|w| matches!(w, Write::BurnJti { .. }))
        {
            let idempotency = writes.iter().find_map(|w| match w {
                Write::PutIdempotency(r) => Some(r),
                _ => None,
            });
            if writes.len() > 1 + usize::from(idempotency.is_some()) {
                return Err(corrupt(
                    "a token burn commits only with its idempotent answer",
                ));
            }
            let answer = match idempotency {
                Some(record) => Some((
                    record,
                    self.cipher.seal("idempotency", json(record)?).await?,
                )),
                None => None,
            };
            self.hot
                .burn_jti(tenant_id, jti, *expires_at, answer)
                .await?;
            return Ok(vec![]);
        }
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
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        match self.hot.idempotency_body(scope, key).await {
            Ok(Some(body)) => return Ok(Some(self.open("idempotency", body).await?)),
            // Consume answers live only in DynamoDB; other answers are refused by the database on replay.
            Ok(None) => return Ok(None),
            Err(e) if is_consume_scope(scope) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "idempotency copy unreadable; reading the tenant database")
            }
        }
        self.one(
            scope,
            "idempotency",
            "SELECT body FROM idempotency WHERE key = $1",
            &[&key],
        )
        .await
    }

    async fn tree_state(&self, tenant_id: &str) -> Result<TreeState, StoreError> {
        let latest: Option<Checkpoint> = self
            .one(
                tenant_id,
                "checkpoints",
                "SELECT body FROM checkpoints ORDER BY checkpoint_id DESC LIMIT 1",
                &[],
            )
            .await?;
        Ok(TreeState {
            tree_size: latest.as_ref().map_or(0, |c| c.tree_size as u64),
            latest,
        })
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
        let rows = self.client(tenant_id).await?
            .query(
                "SELECT t.level, t.idx, t.hash FROM tree_nodes t
                 JOIN UNNEST($1::smallint[], $2::bigint[]) AS u(level, idx) ON t.level = u.level AND t.idx = u.idx",
                &[&levels, &idxs],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|r| {
                let position = Position {
                    level: r.get::<_, i16>(0) as u8,
                    index: r.get::<_, i64>(1) as u64,
                };
                let hash: Hash = r
                    .get::<_, Vec<u8>>(2)
                    .try_into()
                    .map_err(|_| corrupt("tree hash is not 32 bytes"))?;
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
        let rows = self.client(tenant_id).await?
            .query(
                "SELECT event_hash FROM ledger WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index",
                &[&(start as i64), &(end as i64)],
            )
            .await
            .map_err(pg_error)?;
        let hashes: Vec<Hash> = rows
            .iter()
            .map(|r| {
                ledgix_core::merkle::parse_hash(&r.get::<_, String>(0))
                    .ok_or_else(|| corrupt("event hash is not hex"))
            })
            .collect::<Result<_, _>>()?;
        if hashes.len() as u64 != end - start {
            return Err(corrupt(format!(
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

    async fn latest_event_for_request(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<LedgerEvent>, StoreError> {
        let row = self.client(tenant_id).await?
            .query_opt(
                "SELECT body, leaf_index, checkpoint_id FROM ledger WHERE request_id = $1 ORDER BY seq DESC LIMIT 1",
                &[&request_id],
            )
            .await
            .map_err(pg_error)?;
        match row {
            Some(row) => Ok(Some(self.ledger_event(&row).await?)),
            None => Ok(None),
        }
    }
}
