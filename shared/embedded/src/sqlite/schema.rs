//! The database's tables, created if missing each time the file is opened.
//!
//! Payload columns (`body`) hold JSON, sealed by the store's `Codec` where the table's rows carry request data
//! (clearances, ledger, policies, idempotency). Idempotent answers share one table by scope: a tenant id (the
//! tenant's ledger-writing requests), `<tenant id>#consume` (its token consumes) or `admin`. A policy chunk's
//! text is sealed in `body`; its embedding is little-endian `f32`s in `embedding`.
//!
//! Notifications: `outbox` holds the deliveries a tenant commit queued (sealed `Delivery` JSON), written in the
//! same transaction as the decision and deleted once dispatched; `notification_settings` a tenant's webhooks
//! (sealed: it holds their secrets); `deliveries` the delivery log, each row the whole sealed `Delivery` (it
//! holds the tool call's arguments) beside the `status` and `attempts` its conditional updates test.

pub(super) const SCHEMA: &str = r#"
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
    revoked_at TEXT,
    roles TEXT,
    name TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys (tenant_id, created_at);
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
CREATE INDEX IF NOT EXISTS clearances_unfinished ON clearances (tenant_id, status, created_at)
    WHERE status IN ('processing', 'pending_review');
CREATE TABLE IF NOT EXISTS ledger (
    tenant_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    event_uuid TEXT NOT NULL,
    event_hash TEXT NOT NULL,
    leaf_hash TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX IF NOT EXISTS ledger_by_request ON ledger (tenant_id, request_id, seq);
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
CREATE INDEX IF NOT EXISTS checkpoints_by_size ON checkpoints (tenant_id, tree_size);
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
CREATE TABLE IF NOT EXISTS policy_chunks (
    tenant_id TEXT NOT NULL,
    version_id TEXT NOT NULL,
    embedding_model TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    body TEXT NOT NULL,
    embedding BLOB NOT NULL,
    PRIMARY KEY (tenant_id, version_id, embedding_model, chunk_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS burned_jtis (
    jti TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    tenant_id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, delivery_id)
);
CREATE TABLE IF NOT EXISTS notification_settings (
    tenant_id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    tenant_id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant_id, delivery_id)
);
CREATE INDEX IF NOT EXISTS deliveries_unfinished ON deliveries (delivery_id)
    WHERE status IN ('queued', 'retrying');
"#;

/// Columns added after a table first shipped: `(table, column, definition)`, added to older files at open.
/// `api_keys.roles` is NULL on keys made before roles existed, which keep every role.
pub(super) const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("api_keys", "roles", "TEXT"),
    ("api_keys", "name", "TEXT NOT NULL DEFAULT ''"),
];

/// Indexes older versions made that nothing reads any more: sealing no longer marks ledger rows (see
/// `ledger_row`; the columns `ledger.leaf_index` and `checkpoint_id` stay in older files, unused), and only
/// unfinished clearances are listed by status (`clearances_unfinished` replaces `clearances_by_status`).
const DROPPED_INDEXES: &[&str] = &[
    "ledger_by_leaf",
    "ledger_unsequenced",
    "clearances_by_status",
];

/// Bring a file made by an older version up to `SCHEMA`.
pub(super) fn migrate(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    for index in DROPPED_INDEXES {
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {index}"))?;
    }
    for (table, column, definition) in ADDED_COLUMNS {
        let present: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
            [table, column],
            |r| r.get(0),
        )?;
        if !present {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}
