//! A ledger event as a row: the columns (`seq`, `request_id`, `event_uuid`, `event_hash`, `leaf_hash`) and a
//! body holding only the rest. Nothing is stored twice, and nothing the store can derive is stored at all:
//! - the body is a JSON array (field names would repeat in every row);
//! - the receipt payload is the CBOR of fields the row already holds (`ledger::receipt_payload`, the same
//!   function that built it, which the audit bundle's verifier also re-runs), and the receipt algorithm is a
//!   constant;
//! - the leaf index is `seq - 1` (events are sealed in `seq` order from 1, which `apply_seal` enforces), the
//!   event is sealed once the tenant's tree has grown past it, and its checkpoint is the first one whose tree
//!   holds it: sealing writes no ledger row.
//!
//! Rows written by older versions (whole events in the body, `leaf_index` and `checkpoint_id` columns set)
//! read the same way: the extra body fields are ignored and the derived values equal what was stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ledgix_core::at_rest::Codec;
use ledgix_core::error::StoreError;
use ledgix_core::ledger::{self, LedgerEvent};
use rusqlite::{Connection, Params, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `SELECT` + the columns [`events`] reads, in order, + `FROM ledger l` (the last column is the checkpoint that
/// sealed the event, if one has), then the rest of the query; `?1` must be the tenant id.
macro_rules! select_events {
    ($($rest:expr),*) => {
        concat!(
            "SELECT l.body, l.seq, l.request_id, l.event_uuid, l.event_hash, l.leaf_hash,
                (SELECT c.checkpoint_id FROM checkpoints c WHERE c.tenant_id = l.tenant_id AND c.tree_size >= l.seq
                 ORDER BY c.tree_size LIMIT 1)
             FROM ledger l ",
            $($rest),*
        )
    };
}
pub(super) use select_events;

/// The tenant's (`?1`) tree size: events with a larger `seq` are not sealed yet.
macro_rules! tree_size {
    () => {
        "(SELECT COALESCE(MAX(tree_size), 0) FROM checkpoints WHERE tenant_id = ?1)"
    };
}
pub(super) use tree_size;

/// The body as written (borrowed from the event): a JSON array, in the order of `Body`'s fields, since field
/// names would repeat in every row.
#[derive(Serialize)]
struct BodyRef<'a>(
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a Value,
    &'a str,
    &'a Value,
    &'a str,
    &'a [Value],
    &'a [Value],
    f64,
    &'a str,
    &'a str,
    bool,
    &'a str,
    i64,
    &'a str,
    &'a str,
);

/// The body as written, read back.
#[derive(Deserialize)]
struct Positional(
    String,
    String,
    String,
    String,
    String,
    String,
    Value,
    String,
    Value,
    String,
    Vec<Value>,
    Vec<Value>,
    f64,
    String,
    String,
    bool,
    String,
    i64,
    String,
    String,
);

impl From<Positional> for Body {
    fn from(p: Positional) -> Self {
        Body {
            agent_id: p.0,
            policy_id: p.1,
            policy_version_id: p.2,
            policy_content_hash: p.3,
            intent_hash: p.4,
            tool_name: p.5,
            tool_args: p.6,
            action_category: p.7,
            action_metadata: p.8,
            reason: p.9,
            citations: p.10,
            evidence_chunks: p.11,
            confidence: p.12,
            confidence_bucket: p.13,
            decision_status: p.14,
            approved: p.15,
            accepted_at: p.16,
            canonical_version: p.17,
            receipt_key_id: p.18,
            receipt_signature: p.19,
        }
    }
}

/// The body as read: an older version's whole event (a JSON object) reads into it too.
#[derive(Deserialize)]
struct Body {
    agent_id: String,
    policy_id: String,
    policy_version_id: String,
    policy_content_hash: String,
    intent_hash: String,
    tool_name: String,
    tool_args: Value,
    action_category: String,
    action_metadata: Value,
    reason: String,
    citations: Vec<Value>,
    evidence_chunks: Vec<Value>,
    confidence: f64,
    confidence_bucket: String,
    decision_status: String,
    approved: bool,
    accepted_at: String,
    canonical_version: i64,
    receipt_key_id: String,
    receipt_signature: String,
}

/// The JSON body of `event`'s row.
pub(super) fn body(event: &LedgerEvent) -> Result<String, StoreError> {
    serde_json::to_string(&BodyRef(
        &event.agent_id,
        &event.policy_id,
        &event.policy_version_id,
        &event.policy_content_hash,
        &event.intent_hash,
        &event.tool_name,
        &event.tool_args,
        &event.action_category,
        &event.action_metadata,
        &event.reason,
        &event.citations,
        &event.evidence_chunks,
        event.confidence,
        &event.confidence_bucket,
        &event.decision_status,
        event.approved,
        &event.accepted_at,
        event.canonical_version,
        &event.receipt_key_id,
        &event.receipt_signature,
    ))
    .map_err(StoreError::corrupt)
}

/// The event of a row selected with [`select_events!`].
fn event(row: &Row<'_>, codec: &Codec) -> Result<LedgerEvent, StoreError> {
    let get = |e: rusqlite::Error| StoreError::unavailable(e);
    let sealed_body: String = row.get(0).map_err(get)?;
    let seq: i64 = row.get(1).map_err(get)?;
    let request_id: String = row.get(2).map_err(get)?;
    let event_uuid: String = row.get(3).map_err(get)?;
    let event_hash: String = row.get(4).map_err(get)?;
    let leaf_hash: String = row.get(5).map_err(get)?;
    let checkpoint_id: Option<i64> = row.get(6).map_err(get)?;
    let json = codec.open("ledger", sealed_body)?;
    let b: Body = match json.starts_with('[') {
        true => serde_json::from_str::<Positional>(&json).map(Body::from),
        false => serde_json::from_str(&json),
    }
    .map_err(StoreError::corrupt)?;
    let receipt_payload = ledger::receipt_payload(
        &b.accepted_at,
        &event_hash,
        &event_uuid,
        &leaf_hash,
        &b.receipt_key_id,
        &request_id,
    )
    .map_err(|e| StoreError::corrupt(e.to_string()))?;
    Ok(LedgerEvent {
        seq,
        event_uuid,
        request_id,
        agent_id: b.agent_id,
        policy_id: b.policy_id,
        policy_version_id: b.policy_version_id,
        policy_content_hash: b.policy_content_hash,
        intent_hash: b.intent_hash,
        tool_name: b.tool_name,
        tool_args: b.tool_args,
        action_category: b.action_category,
        action_metadata: b.action_metadata,
        reason: b.reason,
        citations: b.citations,
        evidence_chunks: b.evidence_chunks,
        confidence: b.confidence,
        confidence_bucket: b.confidence_bucket,
        decision_status: b.decision_status,
        approved: b.approved,
        accepted_at: b.accepted_at,
        canonical_version: b.canonical_version,
        event_hash,
        leaf_hash,
        leaf_index: checkpoint_id.map(|_| seq - 1),
        checkpoint_id,
        receipt_algorithm: ledger::RECEIPT_ALGORITHM.to_string(),
        receipt_key_id: b.receipt_key_id,
        receipt_signature: b.receipt_signature,
        receipt_payload: URL_SAFE_NO_PAD.encode(receipt_payload),
    })
}

/// The events of the rows `sql` (made with [`select_events!`]) selects.
pub(super) fn events(
    conn: &Connection,
    codec: &Codec,
    sql: &str,
    params: impl Params,
) -> Result<Vec<LedgerEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(StoreError::unavailable)?;
    let mut rows = stmt.query(params).map_err(StoreError::unavailable)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::unavailable)? {
        out.push(event(row, codec)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use ledgix_core::ports::{TenantStore, Write};
    use serde_json::json;

    use super::super::SqliteStore;

    fn event(request_id: &str) -> ledgix_core::ledger::LedgerEvent {
        ledgix_core::contract::prepared_event(request_id, json!({"amount": 5}))
    }

    #[tokio::test]
    async fn the_body_holds_nothing_the_row_or_the_store_derives() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("vault.db");
        let store = SqliteStore::open(&path).expect("open");
        store
            .commit("t", vec![Write::AppendEvent(event("r1"))])
            .await
            .expect("append");
        let body: String = rusqlite::Connection::open(&path)
            .expect("open")
            .query_row("SELECT body FROM ledger", [], |r| r.get(0))
            .expect("row");
        for derived in [
            "receipt_payload",
            "receipt_algorithm",
            "event_hash",
            "leaf_hash",
            "leaf_index",
            "\"seq\"",
            "event_uuid",
            "request_id",
        ] {
            assert!(!body.contains(derived), "{derived} in {body}");
        }
    }

    /// A file written before bodies were cut down and before sealing stopped marking rows: the old `ledger`
    /// table (with `leaf_index`, `checkpoint_id` and their indexes) and whole events as bodies, one sealed.
    #[tokio::test]
    async fn rows_of_older_versions_read_as_they_were_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("vault.db");
        let (mut sealed, mut unsealed) = (event("old-1"), event("old-2"));
        sealed.seq = 1;
        unsealed.seq = 2;
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE ledger (tenant_id TEXT NOT NULL, seq INTEGER NOT NULL, request_id TEXT NOT NULL,
                    event_uuid TEXT NOT NULL UNIQUE, event_hash TEXT NOT NULL, leaf_hash TEXT NOT NULL,
                    leaf_index INTEGER, checkpoint_id INTEGER, body TEXT NOT NULL, PRIMARY KEY (tenant_id, seq));
                 CREATE UNIQUE INDEX ledger_by_leaf ON ledger (tenant_id, leaf_index);
                 CREATE INDEX ledger_unsequenced ON ledger (tenant_id, seq) WHERE leaf_index IS NULL;
                 CREATE TABLE checkpoints (tenant_id TEXT NOT NULL, checkpoint_id INTEGER NOT NULL,
                    tree_size INTEGER NOT NULL, exported INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL,
                    PRIMARY KEY (tenant_id, checkpoint_id));
                 INSERT INTO checkpoints VALUES ('t', 1, 1, 1, '{}');",
            )
            .expect("old schema");
            for (e, leaf_index) in [(&sealed, Some(0)), (&unsealed, None)] {
                let mut whole = e.clone();
                whole.leaf_index = leaf_index;
                whole.checkpoint_id = leaf_index.map(|_| 1);
                conn.execute(
                    "INSERT INTO ledger VALUES ('t', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    rusqlite::params![
                        e.seq,
                        e.request_id,
                        e.event_uuid,
                        e.event_hash,
                        e.leaf_hash,
                        whole.leaf_index,
                        whole.checkpoint_id,
                        serde_json::to_string(&whole).expect("json")
                    ],
                )
                .expect("old row");
            }
        }
        let store = SqliteStore::open(&path).expect("open an older file");
        sealed.leaf_index = Some(0);
        sealed.checkpoint_id = Some(1);
        assert_eq!(
            store.ledger_tail("t", 10).await.expect("read"),
            vec![sealed, unsealed.clone()]
        );
        assert_eq!(
            store.unsequenced_leaves("t", 10).await.expect("read"),
            vec![(2, unsealed.leaf_hash)]
        );
        // The new event goes on from there, and the old indexes are gone.
        store
            .commit("t", vec![Write::AppendEvent(event("new-3"))])
            .await
            .expect("append");
        let indexes: i64 = rusqlite::Connection::open(&path)
            .expect("open")
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('ledger_by_leaf', 'ledger_unsequenced')",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(indexes, 0);
    }

    #[tokio::test]
    async fn a_seal_must_cover_the_next_committed_events_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = SqliteStore::open(&dir.path().join("vault.db")).expect("open");
        store
            .commit("t", vec![Write::AppendEvent(event("r1"))])
            .await
            .expect("append");
        let draft = ledgix_core::checkpoint::CheckpointDraft {
            checkpoint_id: 1,
            tree_size: 1,
            root_hash: "00".repeat(32),
            prev_checkpoint_hash: String::new(),
            signer_key_id: "root".into(),
            signed_at: "2026-11-28T00:00:00Z".into(),
            mmd_seconds: 60,
            export_target: String::new(),
        };
        let payload = draft.payload().expect("cbor");
        let checkpoint = draft.seal(&payload, &[0u8; 64]);
        for leaves in [vec![(2, 0)], vec![(1, 1)], vec![(1, 0), (2, 1)]] {
            let seal = ledgix_core::ports::Seal {
                expected_tree_size: 0,
                leaves: leaves.clone(),
                nodes: vec![],
                checkpoint: checkpoint.clone(),
            };
            let refused = store.commit("t", vec![Write::Seal(seal)]).await;
            assert!(
                matches!(
                    refused,
                    Err(ledgix_core::error::StoreError::Conflict(
                        ledgix_core::error::Conflict::TreeMoved
                    ))
                ),
                "{leaves:?}: {refused:?}"
            );
        }
    }
}
