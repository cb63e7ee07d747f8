//! The tenant database's side of a commit: every `Write` as SQL, in one transaction.

use ledgix_core::at_rest::PayloadCipher;
use ledgix_core::checkpoint::{Checkpoint, EXPORT_DONE};
use ledgix_core::error::{Conflict, StoreError};
use ledgix_core::ports::{Seal, Write};
use tokio_postgres::Transaction;

use super::{json, parse, PgTenantStore, OUTBOX_LABEL};
use crate::pg::{pg_error, unique_or};

impl PgTenantStore {
    /// Apply every write in one transaction of the tenant's database; the `seq` of each appended event.
    pub(super) async fn commit_database(
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
        Write::PutPolicyChunks {
            policy_version_id,
            embedding_model,
            chunks,
        } => {
            for chunk in chunks {
                let index = i32::try_from(chunk.index).map_err(StoreError::corrupt)?;
                let body = sealed(
                    "policy_chunks",
                    json(&serde_json::json!({"text": chunk.text}))?,
                )
                .await?;
                tx.execute(
                    "INSERT INTO policy_chunks (version_id, embedding_model, chunk_index, body, embedding)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[policy_version_id, embedding_model, &index, &body, &chunk.embedding],
                )
                .await
                .map_err(pg_error)?;
            }
        }
        Write::PutIdempotency(record) => {
            tx.execute(
                "INSERT INTO idempotency (key, body) VALUES ($1, $2)",
                &[&record.key, &sealed("idempotency", json(record)?).await?],
            )
            .await
            .map_err(|e| unique_or(e, Conflict::IdempotencyKey))?;
        }
        Write::QueueNotifications(deliveries) => {
            for delivery in deliveries {
                tx.execute(
                    "INSERT INTO outbox (delivery_id, body) VALUES ($1, $2)",
                    &[
                        &delivery.delivery_id,
                        &sealed(OUTBOX_LABEL, json(delivery)?).await?,
                    ],
                )
                .await
                .map_err(|e| unique_or(e, Conflict::Duplicate))?;
            }
        }
        Write::ClearOutbox(delivery_ids) => {
            // Ids no longer (or never) in the outbox are skipped: another dispatcher cleared them first.
            tx.execute(
                "DELETE FROM outbox WHERE delivery_id = ANY($1)",
                &[delivery_ids],
            )
            .await
            .map_err(pg_error)?;
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
