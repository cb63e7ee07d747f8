//! SQLite adapter for `ControlPlane` and `TenantStore`.
//!
//! One writer thread owns the write connection and commits in groups: it takes every write waiting in its
//! channel, applies each in its own savepoint inside one transaction, and fsyncs once (WAL,
//! synchronous=FULL) before answering them all. Durability per request, without one fsync per request.
//! Reads use a small pool of read connections (WAL readers never block the writer).

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use ledgix_core::error::{Conflict, StoreError};
use ledgix_core::ledger::LedgerEvent;
use ledgix_core::model::{
    ApiKeyRecord, ClearanceRecord, ClearanceStatus, IdempotencyRecord, PolicyVersion,
    ReviewSettings, Tenant,
};
use std::collections::HashMap;

use ledgix_core::checkpoint::{Checkpoint, EXPORT_DONE};
use ledgix_core::merkle::{Hash, Position};
use ledgix_core::ports::{ControlPlane, JudgeJob, Seal, TenantStore, TreeState, UsageMeter, Write};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use ledgix_core::at_rest::Codec;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
    key_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS policies (
    tenant_id TEXT NOT NULL,
    version_id TEXT NOT NULL,
    policy_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, version_id),
    UNIQUE (tenant_id, policy_id, version)
);
CREATE TABLE IF NOT EXISTS review_settings (
    tenant_id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS clearances (
    tenant_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);
CREATE INDEX IF NOT EXISTS clearances_by_status ON clearances (tenant_id, status, created_at);
CREATE TABLE IF NOT EXISTS ledger (
    tenant_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    event_uuid TEXT NOT NULL UNIQUE,
    event_hash TEXT NOT NULL,
    leaf_hash TEXT NOT NULL,
    leaf_index INTEGER,
    checkpoint_id INTEGER,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX IF NOT EXISTS ledger_by_request ON ledger (tenant_id, request_id, seq);
CREATE UNIQUE INDEX IF NOT EXISTS ledger_by_leaf ON ledger (tenant_id, leaf_index);
CREATE INDEX IF NOT EXISTS ledger_unsequenced ON ledger (tenant_id, seq) WHERE leaf_index IS NULL;
CREATE TABLE IF NOT EXISTS tree_nodes (
    tenant_id TEXT NOT NULL,
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (tenant_id, level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    tenant_id TEXT NOT NULL,
    checkpoint_id INTEGER NOT NULL,
    tree_size INTEGER NOT NULL,
    exported INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, checkpoint_id)
);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS usage (
    tenant_id TEXT NOT NULL,
    day TEXT NOT NULL,
    metric TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day, metric)
);
CREATE TABLE IF NOT EXISTS burned_jtis (
    jti TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
"#;

const READERS: usize = 4;
/// Most writes folded into one transaction.
const MAX_GROUP: usize = 512;

enum Op {
    Tenant {
        tenant_id: String,
        writes: Vec<Write>,
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
}

enum Done {
    Seqs(Vec<i64>),
    Changed(bool),
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

pub struct SqliteStore {
    writer: Mutex<mpsc::Sender<Job>>,
    codec: Codec,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// One permit per pooled read connection: readers wait for a connection rather than fail.
    reader_permits: Arc<tokio::sync::Semaphore>,
    path: PathBuf,
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "busy_timeout", 10_000)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path` and start the writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Codec::plaintext())
    }

    /// As `open`, encrypting payloads (ledger events, clearances, policies, stored responses) with `codec`.
    pub fn open_with(path: &Path, codec: Codec) -> Result<Self, StoreError> {
        let conn = open(path).map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        // Checkpoints run on their own thread so a commit never waits for one.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(unavailable)?;
        let checkpointer = open(path).map_err(unavailable)?;
        std::thread::Builder::new()
            .name("ledgix-sqlite-checkpoint".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                if let Err(e) =
                    checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                {
                    tracing::warn!(error = %e, "wal checkpoint failed");
                }
            })
            .map_err(unavailable)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(open(path).map_err(unavailable)?);
        }
        let (sender, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ledgix-sqlite-writer".into())
            .spawn({
                let codec = codec.clone();
                move || writer_loop(conn, receiver, codec)
            })
            .map_err(unavailable)?;
        Ok(SqliteStore {
            writer: Mutex::new(sender),
            codec,
            readers: Arc::new(Mutex::new(readers)),
            reader_permits: Arc::new(tokio::sync::Semaphore::new(READERS)),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write(&self, op: Op) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .lock()
            .map_err(|_| unavailable("writer lock poisoned"))?
            .send(Job { op, reply })
            .map_err(|_| unavailable("sqlite writer stopped"))?;
        answer
            .await
            .map_err(|_| unavailable("sqlite writer dropped the request"))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Codec) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        let codec = self.codec.clone();
        let permit = self
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(unavailable)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = readers
                .lock()
                .map_err(|_| unavailable("reader pool poisoned"))?
                .pop();
            let conn = match conn {
                Some(c) => c,
                None => return Err(unavailable("reader pool exhausted")),
            };
            let result = f(&conn, &codec);
            if let Ok(mut pool) = readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(unavailable)?
    }

    /// Clearances still waiting for the judge, across tenants: re-queued at start so a crash loses none.
    pub async fn processing_jobs(&self) -> Result<Vec<JudgeJob>, StoreError> {
        self.read(|conn, codec| {
            let mut stmt = conn
                .prepare(
                    "SELECT body FROM clearances WHERE status = 'processing' ORDER BY created_at",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([], |row| row.get::<_, String>(0))
                .map_err(unavailable)?;
            rows.map(|body| {
                let record: ClearanceRecord =
                    serde_json::from_str(&codec.open("clearances", body.map_err(unavailable)?)?)
                        .map_err(corrupt)?;
                Ok(JudgeJob {
                    tenant_id: record.tenant_id,
                    request_id: record.request_id,
                    session_id: record.request.session_id,
                })
            })
            .collect()
        })
        .await
    }
}

fn writer_loop(mut conn: Connection, receiver: mpsc::Receiver<Job>, codec: Codec) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = apply_group(&mut conn, &batch, &codec);
        for (job, result) in batch.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

fn apply_group(
    conn: &mut Connection,
    batch: &[Job],
    codec: &Codec,
) -> Vec<Result<Done, StoreError>> {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return batch.iter().map(|_| Err(unavailable(&e))).collect(),
    };
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let result = match tx.savepoint() {
            Ok(mut sp) => {
                let outcome = apply(&sp, &job.op, codec);
                match outcome {
                    Ok(done) => sp.commit().map(|_| done).map_err(unavailable),
                    Err(e) => {
                        let _ = sp.rollback();
                        Err(e)
                    }
                }
            }
            Err(e) => Err(unavailable(e)),
        };
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => results.into_iter().map(|_| Err(unavailable(&e))).collect(),
    }
}

fn apply(conn: &Connection, op: &Op, codec: &Codec) -> Result<Done, StoreError> {
    match op {
        Op::Tenant { tenant_id, writes } => {
            let mut seqs = Vec::new();
            for write in writes {
                if let Some(seq) = apply_write(conn, tenant_id, write, codec)? {
                    seqs.push(seq);
                }
            }
            Ok(Done::Seqs(seqs))
        }
        Op::CreateTenant {
            tenant,
            key,
            idempotency,
        } => {
            if let Some(record) = idempotency {
                put_idempotency(conn, record, codec)?;
            }
            exec(
                conn,
                "INSERT INTO tenants (tenant_id, name, created_at) VALUES (?1, ?2, ?3)",
                params![tenant.tenant_id, tenant.name, tenant.created_at],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(Conflict::Duplicate)
                } else {
                    unavailable(e)
                }
            })?;
            insert_key(conn, key)?;
            Ok(Done::Changed(true))
        }
        Op::AddKey { key, idempotency } => {
            if let Some(record) = idempotency {
                put_idempotency(conn, record, codec)?;
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
            .map_err(unavailable)?;
            Ok(Done::Changed(true))
        }
        Op::RevokeKey { key_id } => {
            let changed = conn
                .execute(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE key_id = ?1",
                    params![key_id, ledgix_core::model::now_rfc3339()],
                )
                .map_err(unavailable)?;
            Ok(Done::Changed(changed > 0))
        }
    }
}

/// Execute with a cached prepared statement: the writer runs the same few statements all day.
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

fn insert_key(conn: &Connection, key: &ApiKeyRecord) -> Result<(), StoreError> {
    exec(
        conn,
        "INSERT INTO api_keys (key_id, tenant_id, key_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![key.key_id, key.tenant_id, key.key_hash, key.created_at],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(Conflict::Duplicate)
        } else {
            unavailable(e)
        }
    })?;
    Ok(())
}

fn put_idempotency(
    conn: &Connection,
    record: &IdempotencyRecord,
    codec: &Codec,
) -> Result<(), StoreError> {
    let body = codec.seal(
        "idempotency",
        serde_json::to_string(record).map_err(corrupt)?,
    )?;
    exec(
        conn,
        "INSERT INTO idempotency (scope, key, body) VALUES (?1, ?2, ?3)",
        params![record.scope, record.key, body],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(Conflict::IdempotencyKey)
        } else {
            unavailable(e)
        }
    })?;
    Ok(())
}

fn apply_write(
    conn: &Connection,
    tenant_id: &str,
    write: &Write,
    codec: &Codec,
) -> Result<Option<i64>, StoreError> {
    match write {
        Write::InsertClearance(record) => {
            let body = codec.seal(
                "clearances",
                serde_json::to_string(record).map_err(corrupt)?,
            )?;
            exec(
                conn,
                "INSERT INTO clearances (tenant_id, request_id, status, created_at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![tenant_id, record.request_id, record.status.as_str(), record.created_at, body],
            )
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict(Conflict::ClearanceState) } else { unavailable(e) })?;
        }
        Write::UpdateClearance { record, expected } => {
            let body = codec.seal(
                "clearances",
                serde_json::to_string(record).map_err(corrupt)?,
            )?;
            let changed = conn
                .execute(
                    "UPDATE clearances SET status = ?3, body = ?4 WHERE tenant_id = ?1 AND request_id = ?2 AND status = ?5",
                    params![tenant_id, record.request_id, record.status.as_str(), body, expected.as_str()],
                )
                .map_err(unavailable)?;
            if changed == 0 {
                return Err(StoreError::Conflict(Conflict::ClearanceState));
            }
        }
        Write::AppendEvent(event) => {
            let seq: i64 = conn
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM ledger WHERE tenant_id = ?1")
                .and_then(|mut stmt| stmt.query_row([tenant_id], |r| r.get(0)))
                .map_err(unavailable)?;
            let mut event = event.clone();
            event.seq = seq;
            let body = codec.seal("ledger", serde_json::to_string(&event).map_err(corrupt)?)?;
            exec(
                conn,
                "INSERT INTO ledger (tenant_id, seq, request_id, event_uuid, event_hash, leaf_hash, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![tenant_id, seq, event.request_id, event.event_uuid, event.event_hash, event.leaf_hash, body],
            )
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict(Conflict::Duplicate) } else { unavailable(e) })?;
            return Ok(Some(seq));
        }
        Write::PutPolicy(policy) => {
            let body = codec.seal("policies", serde_json::to_string(policy).map_err(corrupt)?)?;
            exec(
                conn,
                "INSERT INTO policies (tenant_id, version_id, policy_id, version, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![tenant_id, policy.version_id, policy.policy_id, policy.version, body],
            )
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict(Conflict::Duplicate) } else { unavailable(e) })?;
        }
        Write::PutReviewSettings(settings) => {
            let body = serde_json::to_string(settings).map_err(corrupt)?;
            exec(
                conn,
                "INSERT INTO review_settings (tenant_id, body) VALUES (?1, ?2)
                 ON CONFLICT (tenant_id) DO UPDATE SET body = excluded.body",
                params![tenant_id, body],
            )
            .map_err(unavailable)?;
        }
        Write::BurnJti { jti, expires_at } => {
            exec(
                conn,
                "INSERT INTO burned_jtis (jti, tenant_id, expires_at) VALUES (?1, ?2, ?3)",
                params![jti, tenant_id, expires_at],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(Conflict::JtiBurned)
                } else {
                    unavailable(e)
                }
            })?;
        }
        Write::PutIdempotency(record) => put_idempotency(conn, record, codec)?,
        Write::Seal(seal) => apply_seal(conn, tenant_id, seal)?,
        Write::MarkExported {
            checkpoint_id,
            export_uri,
            export_version_id,
            exported_at,
        } => {
            let body: Option<String> = conn
                .prepare_cached(
                    "SELECT body FROM checkpoints WHERE tenant_id = ?1 AND checkpoint_id = ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![tenant_id, checkpoint_id], |r| r.get(0))
                        .optional()
                })
                .map_err(unavailable)?;
            let mut checkpoint: Checkpoint =
                serde_json::from_str(&body.ok_or(StoreError::Conflict(Conflict::Duplicate))?)
                    .map_err(corrupt)?;
            checkpoint.export_uri = export_uri.clone();
            checkpoint.export_version_id = export_version_id.clone();
            checkpoint.export_status = EXPORT_DONE.into();
            checkpoint.exported_at = Some(exported_at.clone());
            let body = serde_json::to_string(&checkpoint).map_err(corrupt)?;
            exec(
                conn,
                "UPDATE checkpoints SET exported = 1, body = ?3 WHERE tenant_id = ?1 AND checkpoint_id = ?2",
                params![tenant_id, checkpoint_id, body],
            )
            .map_err(unavailable)?;
        }
    }
    Ok(None)
}

fn apply_seal(conn: &Connection, tenant_id: &str, seal: &Seal) -> Result<(), StoreError> {
    let size: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(tree_size), 0) FROM checkpoints WHERE tenant_id = ?1")
        .and_then(|mut stmt| stmt.query_row([tenant_id], |r| r.get(0)))
        .map_err(unavailable)?;
    if size as u64 != seal.expected_tree_size {
        return Err(StoreError::Conflict(Conflict::TreeMoved));
    }
    let checkpoint_id = seal.checkpoint.checkpoint_id;
    for (seq, leaf_index) in &seal.leaves {
        let changed = exec(
            conn,
            "UPDATE ledger SET leaf_index = ?3, checkpoint_id = ?4 WHERE tenant_id = ?1 AND seq = ?2 AND leaf_index IS NULL",
            params![tenant_id, seq, *leaf_index as i64, checkpoint_id],
        )
        .map_err(unavailable)?;
        if changed != 1 {
            return Err(StoreError::Conflict(Conflict::TreeMoved));
        }
    }
    for (position, hash) in &seal.nodes {
        exec(
            conn,
            "INSERT INTO tree_nodes (tenant_id, level, idx, hash) VALUES (?1, ?2, ?3, ?4)",
            params![tenant_id, position.level, position.index as i64, &hash[..]],
        )
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(Conflict::TreeMoved)
            } else {
                unavailable(e)
            }
        })?;
    }
    let body = serde_json::to_string(&seal.checkpoint).map_err(corrupt)?;
    exec(
        conn,
        "INSERT INTO checkpoints (tenant_id, checkpoint_id, tree_size, body) VALUES (?1, ?2, ?3, ?4)",
        params![tenant_id, checkpoint_id, seal.checkpoint.tree_size, body],
    )
    .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict(Conflict::TreeMoved) } else { unavailable(e) })?;
    Ok(())
}

/// Ledger rows carry their sealing (leaf index, checkpoint) in columns; merge them into the event.
fn ledger_rows(
    conn: &Connection,
    codec: &Codec,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<LedgerEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let rows = stmt
        .query_map(params, |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<i64>>(1)?,
                row.get::<_, Option<i64>>(2)?,
            ))
        })
        .map_err(unavailable)?;
    rows.map(|row| {
        let (body, leaf_index, checkpoint_id) = row.map_err(unavailable)?;
        let mut event: LedgerEvent =
            serde_json::from_str(&codec.open("ledger", body)?).map_err(corrupt)?;
        event.leaf_index = leaf_index;
        event.checkpoint_id = checkpoint_id;
        Ok(event)
    })
    .collect()
}

/// Rows of one JSON `body` column; `table` names the table for decryption.
fn json_rows<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    codec: &Codec,
    table: &str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let rows = stmt
        .query_map(params, |row| row.get::<_, String>(0))
        .map_err(unavailable)?;
    rows.map(|body| {
        serde_json::from_str(&codec.open(table, body.map_err(unavailable)?)?).map_err(corrupt)
    })
    .collect()
}

fn json_row<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    codec: &Codec,
    table: &str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached(sql)
        .map_err(unavailable)?
        .query_row(params, |row| row.get(0))
        .optional()
        .map_err(unavailable)?;
    body.map(|b| serde_json::from_str::<T>(&codec.open(table, b)?).map_err(corrupt))
        .transpose()
}

#[async_trait]
impl ControlPlane for SqliteStore {
    async fn create_tenant(
        &self,
        tenant: &Tenant,
        first_key: &ApiKeyRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        self.write(Op::CreateTenant {
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
            .map_err(unavailable)?
            .query_row([tenant_id], |r| {
                Ok(Tenant {
                    tenant_id: r.get(0)?,
                    name: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn add_api_key(
        &self,
        key: &ApiKeyRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        self.write(Op::AddKey {
            key: key.clone(),
            idempotency: idempotency.cloned(),
        })
        .await
        .map(|_| ())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let key_hash = key_hash.to_string();
        self.read(move |conn, _codec| {
            conn.prepare_cached("SELECT key_id, tenant_id, key_hash, created_at, revoked_at FROM api_keys WHERE key_hash = ?1")
                .map_err(unavailable)?
                .query_row([key_hash], |r| {
                    Ok(ApiKeyRecord {
                        key_id: r.get(0)?,
                        tenant_id: r.get(1)?,
                        key_hash: r.get(2)?,
                        created_at: r.get(3)?,
                        revoked: r.get::<_, Option<String>>(4)?.is_some(),
                    })
                })
                .optional()
                .map_err(unavailable)
        })
        .await
    }

    async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError> {
        match self
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
        let (scope, key) = (scope.to_string(), key.to_string());
        self.read(move |conn, codec| {
            json_row(
                conn,
                codec,
                "idempotency",
                "SELECT body FROM idempotency WHERE scope = ?1 AND key = ?2",
                params![scope, key],
            )
        })
        .await
    }

    async fn tenant_ids(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn, _codec| {
            let mut stmt = conn
                .prepare_cached("SELECT tenant_id FROM tenants ORDER BY tenant_id")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(unavailable)?;
            rows.map(|r| r.map_err(unavailable)).collect()
        })
        .await
    }
}

#[async_trait]
impl TenantStore for SqliteStore {
    async fn commit(&self, tenant_id: &str, writes: Vec<Write>) -> Result<Vec<i64>, StoreError> {
        match self
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
        let (tenant_id, request_id) = (tenant_id.to_string(), request_id.to_string());
        self.read(move |conn, codec| {
            json_row(
                conn,
                codec,
                "clearances",
                "SELECT body FROM clearances WHERE tenant_id = ?1 AND request_id = ?2",
                params![tenant_id, request_id],
            )
        })
        .await
    }

    async fn clearances_with_status(
        &self,
        tenant_id: &str,
        status: ClearanceStatus,
        limit: usize,
    ) -> Result<Vec<ClearanceRecord>, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn, codec| {
            json_rows(
                conn, codec, "clearances",
                "SELECT body FROM clearances WHERE tenant_id = ?1 AND status = ?2 ORDER BY created_at LIMIT ?3",
                params![tenant_id, status.as_str(), limit as i64],
            )
        })
        .await
    }

    async fn policies(&self, tenant_id: &str) -> Result<Vec<PolicyVersion>, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn, codec| {
            json_rows(
                conn, codec, "policies",
                "SELECT p.body FROM policies p
                 JOIN (SELECT policy_id, MAX(version) AS version FROM policies WHERE tenant_id = ?1 GROUP BY policy_id) latest
                   ON p.policy_id = latest.policy_id AND p.version = latest.version
                 WHERE p.tenant_id = ?1 ORDER BY p.policy_id",
                params![tenant_id],
            )
        })
        .await
    }

    async fn policy_version(
        &self,
        tenant_id: &str,
        version_id: &str,
    ) -> Result<Option<PolicyVersion>, StoreError> {
        let (tenant_id, version_id) = (tenant_id.to_string(), version_id.to_string());
        self.read(move |conn, codec| {
            json_row(
                conn,
                codec,
                "policies",
                "SELECT body FROM policies WHERE tenant_id = ?1 AND version_id = ?2",
                params![tenant_id, version_id],
            )
        })
        .await
    }

    async fn review_settings(&self, tenant_id: &str) -> Result<ReviewSettings, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn, codec| {
            json_row(
                conn,
                codec,
                "review_settings",
                "SELECT body FROM review_settings WHERE tenant_id = ?1",
                params![tenant_id],
            )
        })
        .await
        .map(Option::unwrap_or_default)
    }

    async fn ledger_tail(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn, codec| {
            let mut events = ledger_rows(
                conn, codec,
                "SELECT body, leaf_index, checkpoint_id FROM ledger WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT ?2",
                params![tenant_id, limit as i64],
            )?;
            events.reverse();
            Ok(events)
        })
        .await
    }

    async fn idempotency(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        ControlPlane::idempotency(self, tenant_id, key).await
    }

    async fn tree_state(&self, tenant_id: &str) -> Result<TreeState, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn, codec| {
            let latest: Option<Checkpoint> = json_row(
                conn, codec, "checkpoints",
                "SELECT body FROM checkpoints WHERE tenant_id = ?1 ORDER BY checkpoint_id DESC LIMIT 1",
                params![tenant_id],
            )?;
            Ok(TreeState { tree_size: latest.as_ref().map_or(0, |c| c.tree_size as u64), latest })
        })
        .await
    }

    async fn unsequenced_events(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn, codec| {
            ledger_rows(
                conn, codec,
                "SELECT body, leaf_index, checkpoint_id FROM ledger WHERE tenant_id = ?1 AND leaf_index IS NULL
                 ORDER BY seq LIMIT ?2",
                params![tenant_id, limit as i64],
            )
        })
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
                .map_err(unavailable)?;
            let mut out = HashMap::with_capacity(positions.len());
            for p in positions {
                let hash: Option<Vec<u8>> = stmt
                    .query_row(params![tenant_id, p.level, p.index as i64], |r| r.get(0))
                    .optional()
                    .map_err(unavailable)?;
                if let Some(hash) = hash {
                    out.insert(
                        p,
                        hash.try_into()
                            .map_err(|_| corrupt("tree hash is not 32 bytes"))?,
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
                    "SELECT event_hash FROM ledger WHERE tenant_id = ?1 AND leaf_index >= ?2 AND leaf_index < ?3
                     ORDER BY leaf_index",
                )
                .map_err(unavailable)?;
            let rows = stmt.query_map(params![tenant_id, start as i64, end as i64], |r| r.get::<_, String>(0)).map_err(unavailable)?;
            let hashes = rows
                .map(|h| {
                    let h = h.map_err(unavailable)?;
                    ledgix_core::merkle::parse_hash(&h).ok_or_else(|| corrupt("event hash is not 32 hex bytes"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if hashes.len() as u64 != end - start {
                return Err(corrupt(format!("leaves {start}..{end} are not all sequenced")));
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
        let tenant_id = tenant_id.to_string();
        self.read(move |conn, codec| {
            let mut checkpoints: Vec<Checkpoint> = json_rows(
                conn, codec, "checkpoints",
                "SELECT body FROM checkpoints WHERE tenant_id = ?1 ORDER BY checkpoint_id DESC LIMIT ?2",
                params![tenant_id, limit as i64],
            )?;
            checkpoints.reverse();
            Ok(checkpoints)
        })
        .await
    }

    async fn checkpoint(
        &self,
        tenant_id: &str,
        checkpoint_id: i64,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn, codec| {
            json_row(
                conn,
                codec,
                "checkpoints",
                "SELECT body FROM checkpoints WHERE tenant_id = ?1 AND checkpoint_id = ?2",
                params![tenant_id, checkpoint_id],
            )
        })
        .await
    }

    async fn unexported_checkpoints(&self, tenant_id: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let tenant_id = tenant_id.to_string();
        self.read(move |conn, codec| {
            json_rows(
                conn, codec, "checkpoints",
                "SELECT body FROM checkpoints WHERE tenant_id = ?1 AND exported = 0 ORDER BY checkpoint_id",
                params![tenant_id],
            )
        })
        .await
    }

    async fn latest_event_for_request(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<LedgerEvent>, StoreError> {
        let (tenant_id, request_id) = (tenant_id.to_string(), request_id.to_string());
        self.read(move |conn, codec| {
            Ok(ledger_rows(
                conn, codec,
                "SELECT body, leaf_index, checkpoint_id FROM ledger WHERE tenant_id = ?1 AND request_id = ?2
                 ORDER BY seq DESC LIMIT 1",
                params![tenant_id, request_id],
            )?
            .pop())
        })
        .await
    }
}

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
        self.write(op).await.map(|_| ())
    }

    async fn usage(&self, tenant_id: &str, day: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let (tenant_id, day) = (tenant_id.to_string(), day.to_string());
        self.read(move |conn, _codec| {
            let mut stmt = conn
                .prepare_cached("SELECT metric, count FROM usage WHERE tenant_id = ?1 AND day = ?2 ORDER BY metric")
                .map_err(unavailable)?;
            let rows = stmt.query_map(params![tenant_id, day], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))).map_err(unavailable)?;
            rows.map(|r| r.map_err(unavailable)).collect()
        })
        .await
    }
}
