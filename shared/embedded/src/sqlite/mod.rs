//! SQLite adapter for `ControlPlane`, `TenantStore`, `UsageMeter` and `NotificationStore`.
//!
//! One writer thread owns the write connection and commits in groups: it takes every write waiting in its
//! channel, applies each in its own savepoint inside one transaction, and fsyncs once (WAL,
//! synchronous=FULL) before answering them all. Durability per request, without one fsync per request.
//! Reads use a small pool of read connections (WAL readers never block the writer).
//!
//! The WAL stays under [`WAL_LIMIT_BYTES`]: a checkpoint thread copies committed pages into the database
//! (`PASSIVE`, beside the commits) about once a second, or at once when the writer sees the WAL pass a quarter
//! of the limit; when it passes half, the writer itself, between two groups, checkpoints what is left and
//! truncates the file (`wal_checkpoint(TRUNCATE)`, see `writer::WalBound`). SQLite alone never restarts a WAL
//! that is written without pause, since some reader always still uses its last frames: the file would only
//! grow.
//!
//! `schema` holds the tables, `writer` the group-commit writer and every write, `ledger_row` and
//! `clearance_row` how an event and a clearance are stored; `control`, `tenant`, `usage` and `notify` implement the ports on top of them.

mod clearance_row;
mod control;
mod ledger_row;
mod notify;
mod schema;
mod tenant;
mod usage;
mod vector;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ledgix_core::at_rest::Codec;
use ledgix_core::error::{Conflict, StoreError};
use ledgix_core::ledger::LedgerEvent;
use ledgix_core::model::ClearanceRecord;
use ledgix_core::ports::JudgeJob;
use rusqlite::{Connection, OptionalExtension, Params};
use serde::de::DeserializeOwned;

const READERS: usize = 4;

/// The most the write-ahead log (`<database>-wal`) holds, given commit groups under half of it: the writer
/// truncates it between groups once it reaches half (docs/configuration.md, "Embedded storage").
pub const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

pub struct SqliteStore {
    writer: writer::Writer,
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
    // Without the query planner stability guarantee, SQLite re-prepares a statement whenever a bound value
    // changes (it might plan better for it): every cached statement was compiled again on every use. Queries
    // that rely on a partial index repeat its condition as literals, which QPSG leaves usable.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(conn)
}

/// The one mapping of a failed statement: a unique-key violation is the write's `conflict`, anything else
/// leaves the store unavailable.
fn unique_or(e: rusqlite::Error, conflict: Conflict) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(conflict)
        }
        _ => StoreError::unavailable(e),
    }
}

/// Scope of the idempotency rows holding a tenant's consume answers, apart from its ledger answers (scope: the
/// tenant id; tenant ids hold no `#`).
fn consume_answer_scope(tenant_id: &str) -> String {
    format!("{tenant_id}#consume")
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path` and start the writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Codec::plaintext())
    }

    /// As `open`, encrypting payloads (ledger events, clearances, policies, stored responses) with `codec`.
    pub fn open_with(path: &Path, codec: Codec) -> Result<Self, StoreError> {
        Self::open_bounded(path, codec, WAL_LIMIT_BYTES)
    }

    /// As `open_with`, the WAL held under `wal_limit` bytes.
    fn open_bounded(path: &Path, codec: Codec, wal_limit: u64) -> Result<Self, StoreError> {
        let conn = open(path).map_err(StoreError::unavailable)?;
        conn.execute_batch(schema::SCHEMA)
            .map_err(StoreError::unavailable)?;
        schema::migrate(&conn).map_err(StoreError::unavailable)?;
        // The copying part of checkpoints runs on its own thread, beside the commits; the writer only finishes
        // one (and truncates the WAL) when the WAL reaches half its limit. A WAL reset by SQLite itself is
        // truncated to the limit too.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(StoreError::unavailable)?;
        conn.pragma_update(None, "journal_size_limit", wal_limit as i64)
            .map_err(StoreError::unavailable)?;
        let checkpointer = open(path).map_err(StoreError::unavailable)?;
        // Woken early by the writer; ends when the writer does (the sender is dropped with it).
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("ledgix-sqlite-checkpoint".into())
            .spawn(move || loop {
                use std::sync::mpsc::RecvTimeoutError;
                if let Err(RecvTimeoutError::Disconnected) =
                    woken.recv_timeout(std::time::Duration::from_secs(1))
                {
                    return;
                }
                if let Err(e) =
                    checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                {
                    tracing::warn!(error = %e, "wal checkpoint failed");
                }
            })
            .map_err(StoreError::unavailable)?;
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal = writer::WalBound {
            path: PathBuf::from(wal_path),
            limit: wal_limit,
            wake,
        };
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(open(path).map_err(StoreError::unavailable)?);
        }
        Ok(SqliteStore {
            writer: writer::Writer::start(conn, codec.clone(), wal)?,
            codec,
            readers: Arc::new(Mutex::new(readers)),
            reader_permits: Arc::new(tokio::sync::Semaphore::new(READERS)),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on a pooled read connection, off the async runtime.
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
            .map_err(StoreError::unavailable)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = readers
                .lock()
                .map_err(|_| StoreError::unavailable("reader pool poisoned"))?
                .pop();
            let conn = match conn {
                Some(c) => c,
                None => return Err(StoreError::unavailable("reader pool exhausted")),
            };
            let result = f(&conn, &codec);
            if let Ok(mut pool) = readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(StoreError::unavailable)?
    }

    /// The sealed JSON `body` (the only column `sql` selects) of at most one row of `table`.
    async fn query_one<T: DeserializeOwned + Send + 'static>(
        &self,
        table: &'static str,
        sql: &'static str,
        params: impl Params + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        self.read(move |conn, codec| body_row(conn, codec, table, sql, params))
            .await
    }

    /// The sealed JSON `body` (the only column `sql` selects) of every row of `table`.
    async fn query_all<T: DeserializeOwned + Send + 'static>(
        &self,
        table: &'static str,
        sql: &'static str,
        params: impl Params + Send + 'static,
    ) -> Result<Vec<T>, StoreError> {
        self.read(move |conn, codec| body_rows(conn, codec, table, sql, params))
            .await
    }

    /// Ledger rows as events (`sql` made with `ledger_row::select_events!`).
    async fn query_events(
        &self,
        sql: &'static str,
        params: impl Params + Send + 'static,
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        self.read(move |conn, codec| ledger_row::events(conn, codec, sql, params))
            .await
    }

    /// Clearances still waiting for the judge, across tenants: re-queued at start so a crash loses none.
    pub async fn processing_jobs(&self) -> Result<Vec<JudgeJob>, StoreError> {
        let records: Vec<ClearanceRecord> = self
            .read(|conn, codec| {
                clearance_row::records(
                    conn,
                    codec,
                    "SELECT tenant_id, body FROM clearances WHERE status = 'processing' ORDER BY created_at",
                    (),
                )
            })
            .await?;
        Ok(records
            .into_iter()
            .map(|record| JudgeJob {
                tenant_id: record.tenant_id,
                request_id: record.request_id,
                session_id: record.request.session_id,
            })
            .collect())
    }
}

fn parse<T: DeserializeOwned>(codec: &Codec, table: &str, body: String) -> Result<T, StoreError> {
    serde_json::from_str(&codec.open(table, body)?).map_err(StoreError::corrupt)
}

/// The JSON `body` of at most one row; `table` names the table for decryption.
fn body_row<T: DeserializeOwned>(
    conn: &Connection,
    codec: &Codec,
    table: &str,
    sql: &str,
    params: impl Params,
) -> Result<Option<T>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached(sql)
        .map_err(StoreError::unavailable)?
        .query_row(params, |row| row.get(0))
        .optional()
        .map_err(StoreError::unavailable)?;
    body.map(|body| parse(codec, table, body)).transpose()
}

/// The JSON `body` of every row; `table` names the table for decryption.
fn body_rows<T: DeserializeOwned>(
    conn: &Connection,
    codec: &Codec,
    table: &str,
    sql: &str,
    params: impl Params,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(StoreError::unavailable)?;
    let rows = stmt
        .query_map(params, |row| row.get::<_, String>(0))
        .map_err(StoreError::unavailable)?;
    rows.map(|body| parse(codec, table, body.map_err(StoreError::unavailable)?))
        .collect()
}

/// Ledger rows carry their sealing (leaf index, checkpoint) in columns; merge them into the event.
#[cfg(test)]
mod tests {
    use super::*;
    use ledgix_core::ports::{TenantStore, Write};

    fn wal_bytes(store: &SqliteStore) -> u64 {
        let mut wal = store.path().as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len())
    }

    /// Continuous writes of fat events, with reads running the whole time (what keeps SQLite from ever
    /// restarting the WAL by itself): the WAL never exceeds its limit, though many times the limit is written.
    /// The limit leaves room for the groups written while a truncation waits on readers (the writer truncates at
    /// half the limit; a group here is 128 KiB), so a CPU-starved run does not fail the bound it documents.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_under_its_limit_under_continuous_writes_and_reads() {
        const LIMIT: u64 = 4 * 1024 * 1024;
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(
            SqliteStore::open_bounded(&dir.path().join("vault.db"), Codec::plaintext(), LIMIT)
                .expect("open"),
        );
        let fat = "x".repeat(16 * 1024);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..3 {
            let (store, stop) = (store.clone(), stop.clone());
            readers.push(tokio::spawn(async move {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    store.ledger_tail("t", 50).await.expect("read");
                    reads += 1;
                }
                reads
            }));
        }
        let (mut largest, mut written) = (0u64, 0u64);
        for round in 0..250 {
            // Eight commits at once (they share groups), then the WAL as the writer left it.
            let mut commits = Vec::new();
            for i in 0..8 {
                let mut event = ledgix_core::contract::event(&format!("r{round}-{i}"));
                event.tool_args = serde_json::json!({ "blob": fat });
                let store = store.clone();
                commits.push(tokio::spawn(async move {
                    store.commit("t", vec![Write::AppendEvent(event)]).await
                }));
            }
            for commit in commits {
                commit.await.expect("task").expect("commit");
                written += fat.len() as u64;
            }
            let wal = wal_bytes(&store);
            largest = largest.max(wal);
            assert!(
                wal <= LIMIT,
                "round {round}: the WAL holds {wal} bytes, over {LIMIT}"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for reader in readers {
            assert!(
                reader.await.expect("reader") > 0,
                "reads ran beside the writes"
            );
        }
        assert!(
            written > 7 * LIMIT,
            "the test wrote {written} bytes, many times the limit"
        );
        assert!(
            largest > LIMIT / 4,
            "the WAL did fill up between truncations ({largest} bytes)"
        );
        assert_eq!(
            store.ledger_tail("t", 2000).await.expect("read").len(),
            2000,
            "every event committed"
        );
    }
}
