//! A clearance as a row. A clearance decided in the commit that also appends its ledger event (every inline
//! decision) repeats that event: the call, the policy, the reason. Such a row stores a *thin* body instead:
//! the ledger seq of the event, what the event does not hold, and the approval token as its parts (header key
//! id, issuer, audience, times, signature; every other claim is the record's). Reading it rebuilds the record
//! and re-assembles the very same token.
//!
//! A thin body is written only after rebuilding the record from it and finding it equal to the record given,
//! token byte for byte, so whatever the record holds, the row reads back as written; otherwise the whole
//! record is stored, as for every update (an updated row is whole again).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ledgix_core::at_rest::Codec;
use ledgix_core::error::StoreError;
use ledgix_core::ledger::LedgerEvent;
use ledgix_core::model::ClearanceRecord;
use ledgix_core::token::{self, ApprovalClaims};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ledger_row::{self, select_events};

/// Fields of the record (a path into its JSON) that its ledger event holds (a path into the event's JSON).
const FROM_EVENT: &[(&[&str], &[&str])] = &[
    (&["request", "tool_name"], &["tool_name"]),
    (&["request", "tool_args"], &["tool_args"]),
    (&["request", "agent_id"], &["agent_id"]),
    (
        &["request", "session_id"],
        &["action_metadata", "session_id"],
    ),
    (&["request_id"], &["request_id"]),
    (&["status"], &["action_metadata", "status"]),
    (&["policy_id"], &["policy_id"]),
    (&["policy_version_id"], &["policy_version_id"]),
    (&["policy_content_hash"], &["policy_content_hash"]),
    (&["reason"], &["reason"]),
    (&["confidence_bucket"], &["confidence_bucket"]),
    (
        &["minimum_confidence_bucket"],
        &["action_metadata", "minimum_confidence_bucket"],
    ),
    (&["decided_by"], &["action_metadata", "decided_by"]),
    (&["jti"], &["action_metadata", "jti"]),
    (
        &["policies_consulted"],
        &["action_metadata", "policies_consulted"],
    ),
    (&["created_at"], &["accepted_at"]),
    (&["updated_at"], &["accepted_at"]),
];

/// The token without what the record gives back.
#[derive(Debug, Serialize, Deserialize)]
struct TokenParts {
    kid: String,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    sig: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Thin {
    /// The tenant's ledger seq of the event the record repeats.
    ledger_seq: i64,
    /// The record's JSON without the fields the event holds, nulls and the token.
    rest: Map<String, Value>,
    token: Option<TokenParts>,
}

/// The body of a new clearance row: thin when `event` (committed with it, at `seq`) lets it read back whole.
pub(super) fn body(
    record: &ClearanceRecord,
    event: Option<(&LedgerEvent, i64)>,
) -> Result<String, StoreError> {
    let whole = || serde_json::to_string(record).map_err(StoreError::corrupt);
    let Some((event, seq)) = event else {
        return whole();
    };
    let Ok(written) = serde_json::to_value(record) else {
        return whole();
    };
    let event = event_fields(event);
    let Some(thin) = thin(written, &event, seq) else {
        return whole();
    };
    // Equal records serialise equally, so comparing them as records proves the row reads back as written.
    let reads_back =
        rebuild(&thin, &event, &record.tenant_id).is_ok_and(|rebuilt| rebuilt == *record);
    match reads_back {
        true => serde_json::to_string(&thin).map_err(StoreError::corrupt),
        false => whole(),
    }
}

/// The fields of the event's JSON that `FROM_EVENT` reads, as serde writes them (strings and JSON values
/// as they are): the whole event's JSON would also carry its hashes, receipt and evidence, for nothing.
fn event_fields(event: &LedgerEvent) -> Map<String, Value> {
    let text = |s: &String| Value::String(s.clone());
    Map::from_iter([
        ("tool_name".to_string(), text(&event.tool_name)),
        ("tool_args".to_string(), event.tool_args.clone()),
        ("agent_id".to_string(), text(&event.agent_id)),
        ("action_metadata".to_string(), event.action_metadata.clone()),
        ("request_id".to_string(), text(&event.request_id)),
        ("policy_id".to_string(), text(&event.policy_id)),
        (
            "policy_version_id".to_string(),
            text(&event.policy_version_id),
        ),
        (
            "policy_content_hash".to_string(),
            text(&event.policy_content_hash),
        ),
        ("reason".to_string(), text(&event.reason)),
        (
            "confidence_bucket".to_string(),
            text(&event.confidence_bucket),
        ),
        ("accepted_at".to_string(), text(&event.accepted_at)),
    ])
}

fn thin(record: Value, event: &Map<String, Value>, seq: i64) -> Option<Thin> {
    let Value::Object(mut rest) = record else {
        return None;
    };
    for (path, field) in FROM_EVENT {
        if lookup(&rest, path).is_some() && lookup(&rest, path) == lookup(event, field) {
            remove(&mut rest, path);
        }
    }
    // The row's key column.
    rest.remove("tenant_id");
    if let Some(Value::Object(request)) = rest.get_mut("request") {
        request.retain(|_, v| !v.is_null());
    }
    rest.retain(|_, v| !v.is_null());
    let token = match rest.remove("token") {
        None => None,
        Some(Value::String(jws)) => Some(token_parts(&jws)?),
        Some(_) => return None,
    };
    Some(Thin {
        ledger_seq: seq,
        rest,
        token,
    })
}

fn lookup<'a>(map: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut at = map;
    for key in parents {
        at = at.get(*key)?.as_object()?;
    }
    at.get(*last)
}

fn remove(map: &mut Map<String, Value>, path: &[&str]) {
    if let [key] = path {
        map.remove(*key);
    } else if let [key, rest @ ..] = path {
        if let Some(Value::Object(child)) = map.get_mut(*key) {
            remove(child, rest);
        }
    }
}

fn insert(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    if let [key] = path {
        map.insert((*key).to_string(), value);
    } else if let [key, rest @ ..] = path {
        let child = map
            .entry((*key).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(child) = child {
            insert(child, rest, value);
        }
    }
}

/// The key id, issuer, audience, times and signature of a compact JWS, if it is one of ours.
fn token_parts(jws: &str) -> Option<TokenParts> {
    #[derive(Deserialize)]
    struct Header {
        kid: String,
    }
    let mut parts = jws.split('.');
    let (header, claims, sig) = (parts.next()?, parts.next()?, parts.next()?);
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    let claims: ApprovalClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
    Some(TokenParts {
        kid: header.kid,
        iss: claims.iss,
        aud: claims.aud,
        iat: claims.iat,
        exp: claims.exp,
        sig: sig.to_string(),
    })
}

/// The record a thin body stands for, given its event (as JSON).
fn rebuild(
    thin: &Thin,
    event: &Map<String, Value>,
    tenant_id: &str,
) -> Result<ClearanceRecord, StoreError> {
    let mut record = thin.rest.clone();
    for (path, field) in FROM_EVENT {
        if lookup(&record, path).is_none() {
            if let Some(value) = lookup(event, field) {
                insert(&mut record, path, value.clone());
            }
        }
    }
    record
        .entry("tenant_id")
        .or_insert_with(|| Value::String(tenant_id.to_string()));
    let mut record: ClearanceRecord =
        serde_json::from_value(Value::Object(record)).map_err(StoreError::corrupt)?;
    if let Some(parts) = &thin.token {
        let claims = ApprovalClaims {
            iss: parts.iss.clone(),
            aud: parts.aud.clone(),
            sub: token::TOKEN_SUBJECT.into(),
            iat: parts.iat,
            exp: parts.exp,
            jti: record.jti.clone().unwrap_or_default(),
            tool: record.request.tool_name.clone(),
            agent_id: record.request.agent_id.clone(),
            session_id: record.request.session_id.clone(),
            policy_id: record.policy_id.clone(),
            decision: "approved".into(),
            tool_args_hash: ledgix_core::hashing::tool_args_hash(&record.request.tool_args)
                .map_err(StoreError::corrupt)?,
            tenant_id: record.tenant_id.clone(),
            request_id: record.request_id.clone(),
        };
        let input = token::signing_input(&parts.kid, &claims)
            .map_err(|e| StoreError::corrupt(e.to_string()))?;
        record.token = Some(format!("{input}.{}", parts.sig));
    }
    Ok(record)
}

/// The record of a stored body, whole or thin (then rebuilt from its ledger event).
pub(super) fn record(
    conn: &Connection,
    codec: &Codec,
    tenant_id: &str,
    body: String,
) -> Result<ClearanceRecord, StoreError> {
    let json = codec.open("clearances", body)?;
    if !json.starts_with("{\"ledger_seq\":") {
        return serde_json::from_str(&json).map_err(StoreError::corrupt);
    }
    let thin: Thin = serde_json::from_str(&json).map_err(StoreError::corrupt)?;
    let event = ledger_row::events(
        conn,
        codec,
        select_events!("WHERE l.tenant_id = ?1 AND l.seq = ?2"),
        rusqlite::params![tenant_id, thin.ledger_seq],
    )?
    .pop()
    .ok_or_else(|| StoreError::corrupt("a clearance's ledger event is missing"))?;
    rebuild(&thin, &event_fields(&event), tenant_id)
}

/// The records of the rows `sql` selects as `(tenant_id, body)`.
pub(super) fn records(
    conn: &Connection,
    codec: &Codec,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<ClearanceRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(StoreError::unavailable)?;
    let rows: Vec<(String, String)> = stmt
        .query_map(params, |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(StoreError::unavailable)?
        .collect::<Result<_, _>>()
        .map_err(StoreError::unavailable)?;
    rows.into_iter()
        .map(|(tenant_id, body)| record(conn, codec, &tenant_id, body))
        .collect()
}

#[cfg(test)]
mod tests {
    use ledgix_core::model::ClearanceStatus;
    use ledgix_core::ports::{TenantStore, Write};
    use serde_json::json;

    use super::super::SqliteStore;

    /// The thin body compares and rebuilds against `event_fields`: each field it reads must be the event's
    /// JSON as serde writes it.
    #[test]
    fn event_fields_are_the_events_json() {
        let event = ledgix_core::contract::prepared_event("r-1", json!({"amount": 5}));
        let whole = serde_json::to_value(&event).expect("json");
        let fields = super::event_fields(&event);
        for (_, path) in super::FROM_EVENT {
            let key = path[0];
            assert!(whole.get(key).is_some(), "{key}");
            assert_eq!(fields.get(key), whole.get(key), "{key}");
        }
    }

    /// The vault's inline approval (as the e2e suite and the benchmark make them) is stored thin, and the
    /// stored body is a fraction of the record's JSON.
    #[tokio::test]
    async fn an_inline_approval_is_stored_thin_and_reads_back_with_its_token() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("vault.db");
        let store = SqliteStore::open(&path).expect("open");
        let event = ledgix_core::contract::prepared_event("r-1", json!({"amount": 5}));
        let mut record = ledgix_core::contract::clearance("t", "r-1", ClearanceStatus::Approved);
        record.created_at = event.accepted_at.clone();
        record.updated_at = event.accepted_at.clone();
        record.jti = Some("jti-1".into());
        let claims = ledgix_core::token::ApprovalClaims {
            iss: "alcv-vault".into(),
            aud: "ledgix-sdk".into(),
            sub: "clearance".into(),
            iat: 1,
            exp: 301,
            jti: "jti-1".into(),
            tool: "refund".into(),
            agent_id: "agent".into(),
            session_id: "s".into(),
            policy_id: "p".into(),
            decision: "approved".into(),
            tool_args_hash: ledgix_core::hashing::tool_args_hash(&json!({"amount": 5}))
                .expect("hash"),
            tenant_id: "t".into(),
            request_id: "r-1".into(),
        };
        let input = ledgix_core::token::signing_input("kid-1", &claims).expect("input");
        record.token = Some(ledgix_core::token::assemble(&input, &[3u8; 64]));
        store
            .commit(
                "t",
                vec![
                    Write::InsertClearance(record.clone()),
                    Write::AppendEvent(event),
                ],
            )
            .await
            .expect("commit");
        let body: String = rusqlite::Connection::open(&path)
            .expect("open")
            .query_row("SELECT body FROM clearances", [], |r| r.get(0))
            .expect("row");
        let whole = serde_json::to_string(&record).expect("json");
        assert!(body.starts_with("{\"ledger_seq\":1,"), "{body}");
        assert!(
            body.len() * 2 < whole.len(),
            "{} of {}",
            body.len(),
            whole.len()
        );
        let read = store
            .clearance("t", "r-1")
            .await
            .expect("read")
            .expect("row");
        assert_eq!(read.token, record.token);
        assert_eq!(
            serde_json::to_value(&read).expect("json"),
            serde_json::to_value(&record).expect("json")
        );
    }
}
