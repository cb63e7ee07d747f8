//! The group-commit writer: one thread owns the write connection, folds every write waiting in its channel into
//! one transaction (each in its own savepoint, so one write's conflict rolls back only that write) and commits
//! once before answering them all. Every write the store makes is applied here.

use std::path::PathBuf;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use ledgix_core::at_rest::Codec;
use ledgix_core::checkpoint::{Checkpoint, EXPORT_DONE};
use ledgix_core::error::{Conflict, StoreError};
use ledgix_core::ledger::LedgerEvent;
use ledgix_core::model::{ApiKeyRecord, ClearanceRecord, IdempotencyRecord, Tenant};
use ledgix_core::notify::{Delivery, NotificationSettings};
use ledgix_core::ports::{Seal, Write};
use ledgix_core::roles::Role;
use rusqlite::{params, Connection, Params, TransactionBehavior};
use tokio::sync::oneshot;

use super::notify::UNFINISHED;
use super::{body_row, consume_answer_scope, unique_or};

/// Most writes folded into one transaction.
const MAX_GROUP: usize = 512;

/// One atomic write: applied whole or not at all.
pub(super) enum Op {
    Tenant {
        tenant_id: String,
        writes: Vec<Write>,
    },
    Burn {
        tenant_id: String,
        jti: String,
        expires_at: i64,
        answer: Option<IdempotencyRecord>,
    },
    CreateTenant {
        tenant: Tenant,
        key: ApiKeyRecord,
        idempotency: Option<IdempotencyRecord>,
    },
    AddKey {
        key: ApiKeyRecord,
        idempotency: Option<IdempotencyRecord>,
    },
    RevokeKey {
        key_id: String,
    },
    CountUsage {
        tenant_id: String,
        day: String,
        metric: String,
        count: u64,
    },
    /// Nothing: answered once every write sent before it is durable.
    Barrier,
    PutNotificationSettings {
        tenant_id: String,
        settings: NotificationSettings,
    },
    /// Record a delivery unless one with its id exists (`Changed(false)` then).
    CreateDelivery(Delivery),
    /// Store the delivery if the stored one still has `expected_attempts` and is not final.
    UpdateDelivery {
        delivery: Delivery,
        expected_attempts: u32,
    },
}

pub(super) enum Done {
    Seqs(Vec<i64>),
    Changed(bool),
}

struct Job {
    op: Op,
    /// `None`: nobody waits for this write (`Writer::send`).
    reply: Option<oneshot::Sender<Result<Done, StoreError>>>,
}

/// How long the writer waits for readers of old WAL frames before it gives up truncating, until the next group.
const TRUNCATE_WAIT: Duration = Duration::from_secs(1);
/// The write connection's usual busy timeout (as `super::open` sets it).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps the WAL under `limit` bytes. After each commit group the writer looks at the WAL's size: from a quarter
/// of the limit it wakes the checkpoint thread (which copies pages into the database beside the commits); from
/// half it finishes the checkpoint itself and truncates the file, `wal_checkpoint(TRUNCATE)`, before it starts
/// the next group. No group is written meanwhile (the writes waiting fold into the next one), so the WAL never
/// exceeds half the limit plus one group. The pause is the copying the checkpoint thread has not done yet plus
/// the end of the reads still on old frames (at most `TRUNCATE_WAIT`; if longer, the next group tries again).
pub(super) struct WalBound {
    pub(super) path: PathBuf,
    pub(super) limit: u64,
    pub(super) wake: mpsc::SyncSender<()>,
}

impl WalBound {
    fn after_group(&self, conn: &Connection) {
        let size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        if size >= self.limit / 2 {
            if let Err(e) = truncate_wal(conn) {
                tracing::warn!(error = %e, wal_bytes = size, "wal truncation failed; retried after the next group");
            }
        } else if size >= self.limit / 4 {
            let _ = self.wake.try_send(()); // full: the checkpoint thread is already woken
        }
    }
}

fn truncate_wal(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(TRUNCATE_WAIT)
        .map_err(StoreError::unavailable)?;
    let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    });
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(StoreError::unavailable)?;
    match busy.map_err(StoreError::unavailable)? {
        0 => Ok(()),
        _ => Err(StoreError::unavailable("readers still on old WAL frames")),
    }
}

/// The channel to the writer thread.
pub(super) struct Writer(Mutex<mpsc::Sender<Job>>);

impl Writer {
    /// Start the writer thread on `conn`, the store's only write connection.
    pub(super) fn start(conn: Connection, codec: Codec, wal: WalBound) -> Result<Self, StoreError> {
        let (sender, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ledgix-sqlite-writer".into())
            .spawn(move || writer_loop(conn, receiver, codec, wal))
            .map_err(StoreError::unavailable)?;
        Ok(Writer(Mutex::new(sender)))
    }

    /// Apply `op` in the next group and wait until that group is durable.
    pub(super) async fn write(&self, op: Op) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.0
            .lock()
            .map_err(|_| StoreError::unavailable("writer lock poisoned"))?
            .send(Job {
                op,
                reply: Some(reply),
            })
            .map_err(|_| StoreError::unavailable("sqlite writer stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::unavailable("sqlite writer dropped the request"))?
    }

    /// Apply `op` in the next group without waiting for it. Usage counts go this way: a request does not wait
    /// a second commit for its counter, and the counts of one group fold into one upsert per counter. A crash
    /// can lose the counts of the last group (a billing aggregate, never evidence); a `Barrier` written after
    /// them returns once they are durable.
    pub(super) fn send(&self, op: Op) -> Result<(), StoreError> {
        self.0
            .lock()
            .map_err(|_| StoreError::unavailable("writer lock poisoned"))?
            .send(Job { op, reply: None })
            .map_err(|_| StoreError::unavailable("sqlite writer stopped"))
    }
}

/// Unawaited usage counts of one group summed per counter: one upsert each.
fn fold_usage(batch: Vec<Job>) -> Vec<Job> {
    let mut folded: Vec<Job> = Vec::with_capacity(batch.len());
    let mut counters: std::collections::HashMap<(String, String, String), usize> =
        std::collections::HashMap::new();
    for job in batch {
        if let (
            None,
            Op::CountUsage {
                tenant_id,
                day,
                metric,
                count,
            },
        ) = (&job.reply, &job.op)
        {
            let key = (tenant_id.clone(), day.clone(), metric.clone());
            if let Some(&at) = counters.get(&key) {
                if let Op::CountUsage { count: total, .. } = &mut folded[at].op {
                    *total += count;
                }
                continue;
            }
            counters.insert(key, folded.len());
        }
        folded.push(job);
    }
    folded
}

fn writer_loop(mut conn: Connection, receiver: mpsc::Receiver<Job>, codec: Codec, wal: WalBound) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let batch = fold_usage(batch);
        let results = apply_group(&mut conn, &batch, &codec);
        for (job, result) in batch.into_iter().zip(results) {
            match (job.reply, result) {
                (Some(reply), result) => {
                    let _ = reply.send(result);
                }
                (None, Err(e)) => tracing::warn!(error = %e, "unawaited write failed"),
                (None, Ok(_)) => {}
            }
        }
        wal.after_group(&conn);
    }
}

fn apply_group(
    conn: &mut Connection,
    batch: &[Job],
    codec: &Codec,
) -> Vec<Result<Done, StoreError>> {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            return batch
                .iter()
                .map(|_| Err(StoreError::unavailable(&e)))
                .collect()
        }
    };
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let result = match tx.savepoint() {
            Ok(mut sp) => {
                let outcome = apply(&sp, &job.op, codec);
                match outcome {
                    Ok(done) => sp.commit().map(|_| done).map_err(StoreError::unavailable),
                    Err(e) => {
                        let _ = sp.rollback();
                        Err(e)
                    }
                }
            }
            Err(e) => Err(StoreError::unavailable(e)),
        };
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => results
            .into_iter()
            .map(|_| Err(StoreError::unavailable(&e)))
            .collect(),
    }
}

fn apply(conn: &Connection, op: &Op, codec: &Codec) -> Result<Done, StoreError> {
    match op {
        Op::Tenant { tenant_id, writes } => {
            // A new clearance whose ledger event this commit appends is written after the event, so that its
            // row can refer to the event instead of repeating it (clearance_row). One transaction either way.
            let appended: Vec<&str> = writes
                .iter()
                .filter_map(|w| match w {
                    Write::AppendEvent(e) => Some(e.request_id.as_str()),
                    _ => None,
                })
                .collect();
            let deferred = |w: &Write| matches!(w, Write::InsertClearance(r) if appended.contains(&r.request_id.as_str()));
            let mut seqs = Vec::new();
            let mut events: Vec<(&LedgerEvent, i64)> = Vec::new();
            for write in writes.iter().filter(|w| !deferred(w)) {
                if let Some(seq) = apply_write(conn, tenant_id, write, codec)? {
                    seqs.push(seq);
                    if let Write::AppendEvent(event) = write {
                        events.push((event, seq));
                    }
                }
            }
            for write in writes.iter().filter(|w| deferred(w)) {
                if let Write::InsertClearance(record) = write {
                    let event = events
                        .iter()
                        .find(|(e, _)| e.request_id == record.request_id)
                        .copied();
                    insert_clearance(conn, tenant_id, record, event, codec)?;
                }
            }
            Ok(Done::Seqs(seqs))
        }
        Op::Burn {
            tenant_id,
            jti,
            expires_at,
            answer,
        } => {
            // The answer first: its conflict must win, so a retried consume replays instead of reporting 409.
            if let Some(record) = answer {
                put_idempotency(conn, &consume_answer_scope(tenant_id), record, codec)?;
            }
            insert(
                conn,
                Conflict::JtiBurned,
                "INSERT INTO burned_jtis (jti, tenant_id, expires_at) VALUES (?1, ?2, ?3)",
                params![jti, tenant_id, expires_at],
            )?;
            Ok(Done::Changed(true))
        }
        Op::CreateTenant {
            tenant,
            key,
            idempotency,
        } => {
            if let Some(record) = idempotency {
                put_idempotency(conn, &record.scope, record, codec)?;
            }
            insert(
                conn,
                Conflict::Duplicate,
                "INSERT INTO tenants (tenant_id, name, created_at) VALUES (?1, ?2, ?3)",
                params![tenant.tenant_id, tenant.name, tenant.created_at],
            )?;
            insert_key(conn, key)?;
            Ok(Done::Changed(true))
        }
        Op::AddKey { key, idempotency } => {
            if let Some(record) = idempotency {
                put_idempotency(conn, &record.scope, record, codec)?;
            }
            insert_key(conn, key)?;
            Ok(Done::Changed(true))
        }
        Op::CountUsage {
            tenant_id,
            day,
            metric,
            count,
        } => {
            exec(
                conn,
                "INSERT INTO usage (tenant_id, day, metric, count) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant_id, day, metric) DO UPDATE SET count = count + excluded.count",
                params![tenant_id, day, metric, *count as i64],
            )
            .map_err(StoreError::unavailable)?;
            Ok(Done::Changed(true))
        }
        Op::Barrier => Ok(Done::Changed(false)),
        Op::PutNotificationSettings {
            tenant_id,
            settings,
        } => {
            exec(
                conn,
                "INSERT INTO notification_settings (tenant_id, body) VALUES (?1, ?2)
                 ON CONFLICT (tenant_id) DO UPDATE SET body = excluded.body",
                params![
                    tenant_id,
                    codec.seal("notification_settings", json(settings)?)?
                ],
            )
            .map_err(StoreError::unavailable)?;
            Ok(Done::Changed(true))
        }
        Op::CreateDelivery(delivery) => {
            let changed = exec(
                conn,
                "INSERT INTO deliveries (tenant_id, delivery_id, status, attempts, body) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant_id, delivery_id) DO NOTHING",
                params![
                    delivery.tenant_id,
                    delivery.delivery_id,
                    delivery.status.as_str(),
                    delivery.attempts,
                    codec.seal("deliveries", json(delivery)?)?
                ],
            )
            .map_err(StoreError::unavailable)?;
            Ok(Done::Changed(changed > 0))
        }
        Op::UpdateDelivery {
            delivery,
            expected_attempts,
        } => {
            let changed = exec(
                conn,
                "UPDATE deliveries SET status = ?3, attempts = ?4, body = ?5
                 WHERE tenant_id = ?1 AND delivery_id = ?2 AND attempts = ?6 AND status IN (?7, ?8)",
                params![
                    delivery.tenant_id,
                    delivery.delivery_id,
                    delivery.status.as_str(),
                    delivery.attempts,
                    codec.seal("deliveries", json(delivery)?)?,
                    expected_attempts,
                    UNFINISHED[0].as_str(),
                    UNFINISHED[1].as_str()
                ],
            )
            .map_err(StoreError::unavailable)?;
            Ok(Done::Changed(changed > 0))
        }
        Op::RevokeKey { key_id } => {
            let changed = conn
                .execute(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE key_id = ?1",
                    params![key_id, ledgix_core::model::now_rfc3339()],
                )
                .map_err(StoreError::unavailable)?;
            Ok(Done::Changed(changed > 0))
        }
    }
}

/// Execute with a cached prepared statement: the writer runs the same few statements all day.
fn exec(conn: &Connection, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// Insert a row; a unique-key violation is `conflict`.
fn insert(
    conn: &Connection,
    conflict: Conflict,
    sql: &str,
    params: impl Params,
) -> Result<(), StoreError> {
    exec(conn, sql, params)
        .map(|_| ())
        .map_err(|e| unique_or(e, conflict))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::corrupt)
}

fn insert_key(conn: &Connection, key: &ApiKeyRecord) -> Result<(), StoreError> {
    insert(
        conn,
        Conflict::Duplicate,
        "INSERT INTO api_keys (key_id, tenant_id, key_hash, created_at, roles, name) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![key.key_id, key.tenant_id, key.key_hash, key.created_at, Role::to_stored(&key.roles), key.name],
    )
}

/// Record an answer under `scope` (see `schema`): `Conflict::IdempotencyKey` if its key was recorded there.
fn put_idempotency(
    conn: &Connection,
    scope: &str,
    record: &IdempotencyRecord,
    codec: &Codec,
) -> Result<(), StoreError> {
    insert(
        conn,
        Conflict::IdempotencyKey,
        "INSERT INTO idempotency (scope, key, body) VALUES (?1, ?2, ?3)",
        params![scope, record.key, codec.seal("idempotency", json(record)?)?],
    )
}

/// A new clearance row; thin when `event` (committed with it, at its seq) lets it be (clearance_row).
fn insert_clearance(
    conn: &Connection,
    tenant_id: &str,
    record: &ClearanceRecord,
    event: Option<(&LedgerEvent, i64)>,
    codec: &Codec,
) -> Result<(), StoreError> {
    insert(
        conn,
        Conflict::ClearanceState,
        "INSERT INTO clearances (tenant_id, request_id, status, created_at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            tenant_id,
            record.request_id,
            record.status.as_str(),
            record.created_at,
            codec.seal("clearances", super::clearance_row::body(record, event)?)?
        ],
    )
}

fn apply_write(
    conn: &Connection,
    tenant_id: &str,
    write: &Write,
    codec: &Codec,
) -> Result<Option<i64>, StoreError> {
    match write {
        Write::InsertClearance(record) => insert_clearance(conn, tenant_id, record, None, codec)?,
        Write::UpdateClearance { record, expected } => {
            let changed = conn
                .execute(
                    "UPDATE clearances SET status = ?3, body = ?4 WHERE tenant_id = ?1 AND request_id = ?2 AND status = ?5",
                    params![
                        tenant_id,
                        record.request_id,
                        record.status.as_str(),
                        codec.seal("clearances", json(record)?)?,
                        expected.as_str()
                    ],
                )
                .map_err(StoreError::unavailable)?;
            if changed == 0 {
                return Err(StoreError::Conflict(Conflict::ClearanceState));
            }
        }
        Write::AppendEvent(event) => {
            let seq: i64 = conn
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM ledger WHERE tenant_id = ?1")
                .and_then(|mut stmt| stmt.query_row([tenant_id], |r| r.get(0)))
                .map_err(StoreError::unavailable)?;
            let mut event = event.clone();
            event.seq = seq;
            insert(
                conn,
                Conflict::Duplicate,
                "INSERT INTO ledger (tenant_id, seq, request_id, event_uuid, event_hash, leaf_hash, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    tenant_id,
                    seq,
                    event.request_id,
                    event.event_uuid,
                    event.event_hash,
                    event.leaf_hash,
                    codec.seal("ledger", super::ledger_row::body(&event)?)?
                ],
            )?;
            return Ok(Some(seq));
        }
        Write::PutPolicy(policy) => insert(
            conn,
            Conflict::Duplicate,
            "INSERT INTO policies (tenant_id, version_id, policy_id, version, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                tenant_id,
                policy.version_id,
                policy.policy_id,
                policy.version,
                codec.seal("policies", json(policy)?)?
            ],
        )?,
        Write::PutReviewSettings(settings) => {
            exec(
                conn,
                "INSERT INTO review_settings (tenant_id, body) VALUES (?1, ?2)
                 ON CONFLICT (tenant_id) DO UPDATE SET body = excluded.body",
                params![tenant_id, json(settings)?],
            )
            .map_err(StoreError::unavailable)?;
        }
        Write::PutIdempotency(record) => put_idempotency(conn, &record.scope, record, codec)?,
        Write::PutPolicyChunks {
            policy_version_id,
            embedding_model,
            chunks,
        } => {
            for chunk in chunks {
                exec(
                    conn,
                    "INSERT INTO policy_chunks (tenant_id, version_id, embedding_model, chunk_index, body, embedding)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                    params![
                        tenant_id,
                        policy_version_id,
                        embedding_model,
                        chunk.index,
                        codec.seal("policy_chunks", json(&serde_json::json!({"text": chunk.text}))?)?,
                        super::vector::to_bytes(&chunk.embedding)
                    ],
                )
                .map_err(StoreError::unavailable)?;
            }
        }
        Write::Seal(seal) => apply_seal(conn, tenant_id, seal)?,
        Write::QueueNotifications(deliveries) => {
            for delivery in deliveries {
                insert(
                    conn,
                    Conflict::Duplicate,
                    "INSERT INTO outbox (tenant_id, delivery_id, body) VALUES (?1, ?2, ?3)",
                    params![
                        tenant_id,
                        delivery.delivery_id,
                        codec.seal("outbox", json(delivery)?)?
                    ],
                )?;
            }
        }
        Write::ClearOutbox(delivery_ids) => {
            for delivery_id in delivery_ids {
                exec(
                    conn,
                    "DELETE FROM outbox WHERE tenant_id = ?1 AND delivery_id = ?2",
                    params![tenant_id, delivery_id],
                )
                .map_err(StoreError::unavailable)?;
            }
        }
        Write::MarkExported {
            checkpoint_id,
            export_uri,
            export_version_id,
            exported_at,
        } => {
            let mut checkpoint: Checkpoint = body_row(
                conn,
                codec,
                "checkpoints",
                "SELECT body FROM checkpoints WHERE tenant_id = ?1 AND checkpoint_id = ?2",
                params![tenant_id, checkpoint_id],
            )?
            .ok_or(StoreError::Conflict(Conflict::Duplicate))?;
            checkpoint.export_uri = export_uri.clone();
            checkpoint.export_version_id = export_version_id.clone();
            checkpoint.export_status = EXPORT_DONE.into();
            checkpoint.exported_at = Some(exported_at.clone());
            exec(
                conn,
                "UPDATE checkpoints SET exported = 1, body = ?3 WHERE tenant_id = ?1 AND checkpoint_id = ?2",
                params![tenant_id, checkpoint_id, json(&checkpoint)?],
            )
            .map_err(StoreError::unavailable)?;
        }
    }
    Ok(None)
}

fn apply_seal(conn: &Connection, tenant_id: &str, seal: &Seal) -> Result<(), StoreError> {
    let size: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(tree_size), 0) FROM checkpoints WHERE tenant_id = ?1")
        .and_then(|mut stmt| stmt.query_row([tenant_id], |r| r.get(0)))
        .map_err(StoreError::unavailable)?;
    if size as u64 != seal.expected_tree_size {
        return Err(StoreError::Conflict(Conflict::TreeMoved));
    }
    let checkpoint_id = seal.checkpoint.checkpoint_id;
    // No ledger row is written: leaf `i` is the event of seq `i + 1`, sealed once the tree holds it
    // (ledger_row). So the leaves must be exactly the next events, in order, and all committed.
    let last_seq: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM ledger WHERE tenant_id = ?1")
        .and_then(|mut stmt| stmt.query_row([tenant_id], |r| r.get(0)))
        .map_err(StoreError::unavailable)?;
    for (offset, (seq, leaf_index)) in seal.leaves.iter().enumerate() {
        let expected = seal.expected_tree_size + offset as u64;
        if *leaf_index != expected || *seq != expected as i64 + 1 || *seq > last_seq {
            return Err(StoreError::Conflict(Conflict::TreeMoved));
        }
    }
    for (position, hash) in &seal.nodes {
        insert(
            conn,
            Conflict::TreeMoved,
            "INSERT INTO tree_nodes (tenant_id, level, idx, hash) VALUES (?1, ?2, ?3, ?4)",
            params![tenant_id, position.level, position.index as i64, &hash[..]],
        )?;
    }
    insert(
        conn,
        Conflict::TreeMoved,
        "INSERT INTO checkpoints (tenant_id, checkpoint_id, tree_size, body) VALUES (?1, ?2, ?3, ?4)",
        params![
            tenant_id,
            checkpoint_id,
            seal.checkpoint.tree_size,
            json(&seal.checkpoint)?
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(metric: &str, n: u64, awaited: bool) -> Job {
        Job {
            op: Op::CountUsage {
                tenant_id: "t".into(),
                day: "2026-11-28".into(),
                metric: metric.into(),
                count: n,
            },
            reply: awaited.then(|| oneshot::channel().0),
        }
    }

    #[test]
    fn unawaited_counts_of_a_group_fold_into_one_per_counter() {
        let folded = fold_usage(vec![
            count("clearance.approved", 1, false),
            count("token.minted", 1, false),
            count("clearance.approved", 2, false),
            count("clearance.approved", 4, true),
        ]);
        let summary: Vec<(String, u64, bool)> = folded
            .iter()
            .map(|job| match &job.op {
                Op::CountUsage { metric, count, .. } => {
                    (metric.clone(), *count, job.reply.is_some())
                }
                _ => unreachable!("only counts here"),
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("clearance.approved".to_string(), 3, false),
                ("token.minted".to_string(), 1, false),
                ("clearance.approved".to_string(), 4, true),
            ]
        );
    }
}
