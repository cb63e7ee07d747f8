//! Byte-for-byte agreement with ledgix-python 0.4.0's hashing, using vectors the SDK itself produced
//! (tests/vectors/generate_sdk_vectors.py).

use ledgix_core::cbor::Cbor;
use ledgix_core::ledger::{receipt_payload, EventDraft};
use ledgix_core::merkle;
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/sdk_hashing.json")).expect("vector file is JSON")
}

fn text(entry: &Value, field: &str) -> String {
    entry
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

#[test]
fn cbor_matches_the_sdk_encoder() {
    let v = vectors();
    for case in v["cbor"].as_array().expect("cbor cases") {
        let encoded = Cbor::from_json_normalized(&case["value"])
            .encode()
            .expect("finite");
        assert_eq!(
            hex::encode(encoded),
            case["hex"].as_str().expect("hex"),
            "value {}",
            case["value"]
        );
    }
    for case in v["cbor_raw_ints"].as_array().expect("int cases") {
        let encoded = Cbor::Int(case["value"].as_i64().expect("int"))
            .encode()
            .expect("int");
        assert_eq!(
            hex::encode(encoded),
            case["hex"].as_str().expect("hex"),
            "int {}",
            case["value"]
        );
    }
}

#[test]
fn event_hash_leaf_hash_and_receipt_match_the_sdk() {
    for case in vectors()["entries"].as_array().expect("entries") {
        let e = &case["entry"];
        let draft = EventDraft {
            event_uuid: text(e, "event_uuid"),
            request_id: text(e, "request_id"),
            agent_id: text(e, "agent_id"),
            policy_id: text(e, "policy_id"),
            policy_version_id: text(e, "policy_version_id"),
            policy_content_hash: text(e, "policy_content_hash"),
            intent_hash: text(e, "intent_hash"),
            tool_name: text(e, "tool_name"),
            tool_args: e["tool_args"].clone(),
            action_category: text(e, "action_category"),
            action_metadata: e["action_metadata"].clone(),
            reason: text(e, "reason"),
            citations: e["citations"].as_array().cloned().unwrap_or_default(),
            evidence_chunks: e["evidence_chunks"].as_array().cloned().unwrap_or_default(),
            confidence: e["confidence"].as_f64().expect("confidence"),
            confidence_bucket: text(e, "confidence_bucket"),
            decision_status: text(e, "decision_status"),
            approved: e["approved"].as_bool().expect("approved"),
            accepted_at: text(e, "accepted_at"),
        };
        let prepared = draft
            .prepare(&text(e, "receipt_key_id"))
            .expect("encodable");
        assert_eq!(
            prepared.event_hash,
            case["event_hash"].as_str().expect("event hash")
        );
        assert_eq!(
            prepared.leaf_hash,
            case["leaf_hash"].as_str().expect("leaf hash")
        );
        assert_eq!(
            hex::encode(&prepared.receipt_payload),
            case["receipt_payload_hex"].as_str().expect("receipt")
        );
        let rebuilt = receipt_payload(
            &text(e, "accepted_at"),
            &prepared.event_hash,
            &text(e, "event_uuid"),
            &prepared.leaf_hash,
            &text(e, "receipt_key_id"),
            &text(e, "request_id"),
        )
        .expect("encodable");
        assert_eq!(rebuilt, prepared.receipt_payload);
    }
}

#[test]
fn merkle_roots_match_the_sdk() {
    let v = vectors();
    let leaves: Vec<merkle::Hash> = (0..7u8).map(|i| merkle::leaf_hash(&[i; 32])).collect();
    for (i, expected) in v["merkle"]["leaves"]
        .as_array()
        .expect("leaves")
        .iter()
        .enumerate()
    {
        assert_eq!(hex::encode(leaves[i]), expected.as_str().expect("hex"));
    }
    for (n, expected) in v["merkle"]["roots"]
        .as_array()
        .expect("roots")
        .iter()
        .enumerate()
    {
        let root = merkle::root(&leaves[..n + 1]).expect("non-empty");
        assert_eq!(
            hex::encode(root),
            expected.as_str().expect("hex"),
            "tree size {}",
            n + 1
        );
    }
}

#[test]
fn nan_and_infinity_are_refused() {
    assert!(Cbor::Float(f64::NAN).encode().is_err());
    assert!(Cbor::Float(f64::INFINITY).encode().is_err());
}
