//! `TenantStore` on SQLite: every tenant in the one file, each row keyed by its tenant id.

use std::collections::HashMap;

use async_trait::async_trait;
use ledgix_core::checkpoint::Checkpoint;
use ledgix_core::error::StoreError;
use ledgix_core::ledger::LedgerEvent;
use ledgix_core::merkle::{Hash, Position};
use ledgix_core::model::{
    ClearanceRecord, ClearanceStatus, IdempotencyRecord, PolicyVersion, ReviewSettings,
};
use ledgix_core::notify::Delivery;
use ledgix_core::ports::{ControlPlane, PolicyChunk, TenantStore, TreeState, Write};
use rusqlite::{params, OptionalExtension};

use super::clearance_row;
use super::ledger_row::{select_events, tree_size};
use super::writer::{Done, Op};
use super::{consume_answer_scope, parse, vector, SqliteStore};

#[async_trait]
impl TenantStore for SqliteStore {
    async fn commit(&self, tenant_id: &str, writes: Vec<Write>) -> Result<Vec<i64>, StoreError> {
        match self
            .writer
            .write(Op::Tenant {
                tenant_id: tenant_id.to_string(),
                writes,
            })
            .await?
        {
            Done::Seqs(seqs) => Ok(seqs),
            Done::Changed(_) => Ok(vec![]),
        }
    }

    async fn clearance(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<ClearanceRecord>, StoreError> {
        let key = (tenant_id.to_string(), request_id.to_string());
        self.read(move |conn, codec| {
            Ok(clearance_row::records(
                conn,
                codec,
                "SELECT tenant_id, body FROM clearances WHERE tenant_id = ?1 AND request_id = ?2",
                key,
            )?
            .pop())
        })
        .await
    }

    async fn clearances_with_status(
        &self,
        tenant_id: &str,
        status: ClearanceStatus,
        limit: usize,
    ) -> Result<Vec<ClearanceRecord>, StoreError> {
        let key = (tenant_id.to_string(), status.as_str(), limit as i64);
        // Only unfinished clearances are indexed by status (schema): the vault lists no others.
        let sql = match status {
            ClearanceStatus::Processing | ClearanceStatus::PendingReview => {
                "SELECT tenant_id, body FROM clearances WHERE tenant_id = ?1 AND status = ?2
                   AND status IN ('processing', 'pending_review') ORDER BY created_at LIMIT ?3"
            }
            ClearanceStatus::Approved | ClearanceStatus::Denied => {
                "SELECT tenant_id, body FROM clearances WHERE tenant_id = ?1 AND status = ?2
                 ORDER BY created_at LIMIT ?3"
            }
        };
        self.read(move |conn, codec| clearance_row::records(conn, codec, sql, key))
            .await
    }

    async fn policies(&self, tenant_id: &str) -> Result<Vec<PolicyVersion>, StoreError> {
        self.query_all(
            "policies",
            "SELECT p.body FROM policies p
             JOIN (SELECT policy_id, MAX(version) AS version FROM policies WHERE tenant_id = ?1 GROUP BY policy_id) latest
               ON p.policy_id = latest.policy_id AND p.version = latest.version
             WHERE p.tenant_id = ?1 ORDER BY p.policy_id",
            (tenant_id.to_string(),),
        )
        .await
    }

    async fn policy_version(
        &self,
        tenant_id: &str,
        version_id: &str,
    ) -> Result<Option<PolicyVersion>, StoreError> {
        self.query_one(
            "policies",
            "SELECT body FROM policies WHERE tenant_id = ?1 AND version_id = ?2",
            (tenant_id.to_string(), version_id.to_string()),
        )
        .await
    }

    async fn review_settings(&self, tenant_id: &str) -> Result<ReviewSettings, StoreError> {
        self.query_one(
            "review_settings",
            "SELECT body FROM review_settings WHERE tenant_id = ?1",
            (tenant_id.to_string(),),
        )
        .await
        .map(Option::unwrap_or_default)
    }

    async fn policy_chunks(
        &self,
        tenant_id: &str,
        policy_version_id: &str,
        embedding_model: &str,
    ) -> Result<Vec<PolicyChunk>, StoreError> {
        let key = (
            tenant_id.to_string(),
            policy_version_id.to_string(),
            embedding_model.to_string(),
        );
        self.read(move |conn, codec| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT chunk_index, body, embedding FROM policy_chunks
                     WHERE tenant_id = ?1 AND version_id = ?2 AND embedding_model = ?3 ORDER BY chunk_index",
                )
                .map_err(StoreError::unavailable)?;
            let rows = stmt
                .query_map(key, |row| {
                    Ok((row.get::<_, u32>(0)?, row.get::<_, String>(1)?, row.get::<_, Vec<u8>>(2)?))
                })
                .map_err(StoreError::unavailable)?;
            rows.map(|row| {
                let (index, body, embedding) = row.map_err(StoreError::unavailable)?;
                let body: serde_json::Value = parse(codec, "policy_chunks", body)?;
                Ok(PolicyChunk {
                    index,
                    text: body["text"].as_str().unwrap_or_default().to_string(),
                    embedding: vector::from_bytes(&embedding)?,
                })
            })
            .collect()
        })
        .await
    }

    async fn ledger_tail(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        let mut events = self
            .query_events(
                select_events!("WHERE l.tenant_id = ?1 ORDER BY l.seq DESC LIMIT ?2"),
                (tenant_id.to_string(), limit as i64),
            )
            .await?;
        events.reverse();
        Ok(events)
    }

    async fn idempotency(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        ControlPlane::idempotency(self, tenant_id, key).await
    }

    async fn burn_jti(
        &self,
        tenant_id: &str,
        jti: &str,
        expires_at: i64,
        answer: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        self.writer
            .write(Op::Burn {
                tenant_id: tenant_id.to_string(),
                jti: jti.to_string(),
                expires_at,
                answer: answer.cloned(),
            })
            .await
            .map(|_| ())
    }

    async fn consume_answer(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        ControlPlane::idempotency(self, &consume_answer_scope(tenant_id), key).await
    }

    async fn tree_state(&self, tenant_id: &str) -> Result<TreeState, StoreError> {
        self.query_one(
            "checkpoints",
            "SELECT body FROM checkpoints WHERE tenant_id = ?1 ORDER BY checkpoint_id DESC LIMIT 1",
            (tenant_id.to_string(),),
        )
        .await
        .map(TreeState::signed_by)
    }

    async fn unsequenced_leaves(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let key = (tenant_id.to_string(), limit as i64);
        self.read(move |conn, _| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT seq, leaf_hash FROM ledger WHERE tenant_id = ?1 AND seq > ",
                    tree_size!(),
                    " ORDER BY seq LIMIT ?2"
                ))
                .map_err(StoreError::unavailable)?;
            let rows = stmt
                .query_map(key, |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(StoreError::unavailable)?;
            rows.map(|row| row.map_err(StoreError::unavailable))
                .collect()
        })
        .await
    }

    async fn unsequenced_events(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        self.query_events(
            select_events!(
                "WHERE l.tenant_id = ?1 AND l.seq > ",
                tree_size!(),
                " ORDER BY l.seq LIMIT ?2"
            ),
            (tenant_id.to_string(), limit as i64),
        )
        .await
    }

    async fn tree_hashes(
        &self,
        tenant_id: &str,
        positions: &[Position],
    ) -> Result<HashMap<Position, Hash>, StoreError> {
        let (tenant_id, positions) = (tenant_id.to_string(), positions.to_vec());
        self.read(move |conn, _codec| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT hash FROM tree_nodes WHERE tenant_id = ?1 AND level = ?2 AND idx = ?3",
                )
                .map_err(StoreError::unavailable)?;
            let mut out = HashMap::with_capacity(positions.len());
            for p in positions {
                let hash: Option<Vec<u8>> = stmt
                    .query_row(params![tenant_id, p.level, p.index as i64], |r| r.get(0))
                    .optional()
                    .map_err(StoreError::unavailable)?;
                if let Some(hash) = hash {
                    out.insert(
                        p,
                        hash.try_into()
                            .map_err(|_| StoreError::corrupt("tree hash is not 32 bytes"))?,
                    );
                }
            }
            Ok(out)
        })
        .await
    }

    async fn entries(
        &self,
        tenant_id: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn, _codec| {
            let mut stmt = conn
                .prepare_cached(
                    // Leaf `i` is the event of seq `i + 1` (ledger_row).
                    "SELECT event_hash FROM ledger WHERE tenant_id = ?1 AND seq > ?2 AND seq <= ?3
                     ORDER BY seq",
                )
                .map_err(StoreError::unavailable)?;
            let rows = stmt
                .query_map(params![tenant_id, start as i64, end as i64], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(StoreError::unavailable)?;
            let hashes = rows
                .map(|h| {
                    let h = h.map_err(StoreError::unavailable)?;
                    ledgix_core::merkle::parse_hash(&h)
                        .ok_or_else(|| StoreError::corrupt("event hash is not 32 hex bytes"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if hashes.len() as u64 != end - start {
                return Err(StoreError::corrupt(format!(
                    "leaves {start}..{end} are not all sequenced"
                )));
            }
            Ok(hashes)
        })
        .await
    }

    async fn checkpoints(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, StoreError> {
        let mut checkpoints: Vec<Checkpoint> = self
            .query_all(
                "checkpoints",
                "SELECT body FROM checkpoints WHERE tenant_id = ?1 ORDER BY checkpoint_id DESC LIMIT ?2",
                (tenant_id.to_string(), limit as i64),
            )
            .await?;
        checkpoints.reverse();
        Ok(checkpoints)
    }

    async fn checkpoint(
        &self,
        tenant_id: &str,
        checkpoint_id: i64,
    ) -> Result<Option<Checkpoint>, StoreError> {
        self.query_one(
            "checkpoints",
            "SELECT body FROM checkpoints WHERE tenant_id = ?1 AND checkpoint_id = ?2",
            (tenant_id.to_string(), checkpoint_id),
        )
        .await
    }

    async fn unexported_checkpoints(&self, tenant_id: &str) -> Result<Vec<Checkpoint>, StoreError> {
        self.query_all(
            "checkpoints",
            "SELECT body FROM checkpoints WHERE tenant_id = ?1 AND exported = 0 ORDER BY checkpoint_id",
            (tenant_id.to_string(),),
        )
        .await
    }

    async fn outbox(&self, tenant_id: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.query_all(
            "outbox",
            "SELECT body FROM outbox WHERE tenant_id = ?1 ORDER BY delivery_id LIMIT ?2",
            (tenant_id.to_string(), limit as i64),
        )
        .await
    }

    async fn latest_event_for_request(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<LedgerEvent>, StoreError> {
        Ok(self
            .query_events(
                select_events!(
                    "WHERE l.tenant_id = ?1 AND l.request_id = ?2 ORDER BY l.seq DESC LIMIT 1"
                ),
                (tenant_id.to_string(), request_id.to_string()),
            )
            .await?
            .pop())
    }
}
