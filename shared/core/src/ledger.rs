//! Ledger events in the SDK's `LedgerEntry` shape, their event hash, leaf hash and signed receipt.
//!
//! Layouts (byte for byte as ledgix-python 0.4.0 verifies them):
//! - event_hash   = hex SHA-256("ledgix.audit.event.v1\0" ‖ CBOR(event fields))
//! - leaf_hash    = hex SHA-256(0x00 ‖ event_hash bytes)
//! - receipt      = Ed25519 over CBOR{accepted_at, event_hash, event_uuid, leaf_hash, receipt_key_id,
//!   request_id, type: "event_receipt", version: 1}

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::cbor::{map, Cbor, CborError};
use crate::merkle;

pub const EVENT_HASH_PREFIX: &[u8] = b"ledgix.audit.event.v1\0";
pub const CHECKPOINT_HASH_PREFIX: &[u8] = b"ledgix.audit.checkpoint.v1\0";
pub const RECEIPT_ALGORITHM: &str = "Ed25519";
/// canonical_version 2: rows carry `confidence_bucket` and `decision_status` beside the legacy fields.
pub const CANONICAL_VERSION: i64 = 2;

/// One ledger event, serialised exactly as `GET /ledger` returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LedgerEvent {
    pub seq: i64,
    pub event_uuid: String,
    pub request_id: String,
    pub agent_id: String,
    pub policy_id: String,
    pub policy_version_id: String,
    pub policy_content_hash: String,
    pub intent_hash: String,
    pub tool_name: String,
    pub tool_args: Value,
    pub action_category: String,
    pub action_metadata: Value,
    pub reason: String,
    pub citations: Vec<Value>,
    pub evidence_chunks: Vec<Value>,
    pub confidence: f64,
    pub confidence_bucket: String,
    pub decision_status: String,
    pub approved: bool,
    pub accepted_at: String,
    pub canonical_version: i64,
    pub event_hash: String,
    pub leaf_hash: String,
    pub leaf_index: Option<i64>,
    pub checkpoint_id: Option<i64>,
    pub receipt_algorithm: String,
    pub receipt_key_id: String,
    pub receipt_signature: String,
    pub receipt_payload: String,
}

/// The decided content of an event, before hashing and signing.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub event_uuid: String,
    pub request_id: String,
    pub agent_id: String,
    pub policy_id: String,
    pub policy_version_id: String,
    pub policy_content_hash: String,
    pub intent_hash: String,
    pub tool_name: String,
    pub tool_args: Value,
    pub action_category: String,
    pub action_metadata: Value,
    pub reason: String,
    pub citations: Vec<Value>,
    pub evidence_chunks: Vec<Value>,
    pub confidence: f64,
    pub confidence_bucket: String,
    pub decision_status: String,
    pub approved: bool,
    pub accepted_at: String,
}

impl EventDraft {
    /// The CBOR the SDK's `_build_event_hash` hashes (the current, non-legacy layout).
    pub fn hash_payload(&self) -> Result<Vec<u8>, CborError> {
        map([
            ("accepted_at", Cbor::text(&self.accepted_at)),
            ("action_category", Cbor::text(&self.action_category)),
            (
                "action_metadata",
                Cbor::from_json_normalized(&self.action_metadata),
            ),
            ("agent_id", Cbor::text(&self.agent_id)),
            ("approved", Cbor::Bool(self.approved)),
            ("canonical_version", Cbor::Int(CANONICAL_VERSION)),
            (
                "citations",
                Cbor::Array(
                    self.citations
                        .iter()
                        .map(Cbor::from_json_normalized)
                        .collect(),
                ),
            ),
            ("confidence", Cbor::Float(self.confidence)),
            ("event_uuid", Cbor::text(&self.event_uuid)),
            (
                "evidence_chunks",
                Cbor::Array(
                    self.evidence_chunks
                        .iter()
                        .map(Cbor::from_json_normalized)
                        .collect(),
                ),
            ),
            ("intent_hash", Cbor::text(&self.intent_hash)),
            ("policy_id", Cbor::text(&self.policy_id)),
            ("policy_version_id", Cbor::text(&self.policy_version_id)),
            ("policy_content_hash", Cbor::text(&self.policy_content_hash)),
            ("reason", Cbor::text(&self.reason)),
            ("request_id", Cbor::text(&self.request_id)),
            ("tool_args", Cbor::from_json_normalized(&self.tool_args)),
            ("tool_name", Cbor::text(&self.tool_name)),
        ])
        .encode()
    }

    /// Hash the draft and build the receipt payload; the caller signs `receipt_payload` and calls `seal`.
    pub fn prepare(self, receipt_key_id: &str) -> Result<PreparedEvent, CborError> {
        let event_hash = domain_hash(EVENT_HASH_PREFIX, &self.hash_payload()?);
        let leaf_hash = merkle::leaf_hash(&event_hash);
        let event_hash_hex = hex::encode(event_hash);
        let leaf_hash_hex = hex::encode(leaf_hash);
        let receipt_payload = receipt_payload(
            &self.accepted_at,
            &event_hash_hex,
            &self.event_uuid,
            &leaf_hash_hex,
            receipt_key_id,
            &self.request_id,
        )?;
        Ok(PreparedEvent {
            draft: self,
            event_hash: event_hash_hex,
            leaf_hash: leaf_hash_hex,
            receipt_key_id: receipt_key_id.to_string(),
            receipt_payload,
        })
    }
}

/// A hashed event waiting for its receipt signature.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub draft: EventDraft,
    pub event_hash: String,
    pub leaf_hash: String,
    pub receipt_key_id: String,
    pub receipt_payload: Vec<u8>,
}

impl PreparedEvent {
    /// Attach the receipt signature. `seq` is assigned by the store when the event commits.
    pub fn seal(self, signature: &[u8]) -> LedgerEvent {
        let d = self.draft;
        LedgerEvent {
            seq: 0,
            event_uuid: d.event_uuid,
            request_id: d.request_id,
            agent_id: d.agent_id,
            policy_id: d.policy_id,
            policy_version_id: d.policy_version_id,
            policy_content_hash: d.policy_content_hash,
            intent_hash: d.intent_hash,
            tool_name: d.tool_name,
            tool_args: d.tool_args,
            action_category: d.action_category,
            action_metadata: d.action_metadata,
            reason: d.reason,
            citations: d.citations,
            evidence_chunks: d.evidence_chunks,
            confidence: d.confidence,
            confidence_bucket: d.confidence_bucket,
            decision_status: d.decision_status,
            approved: d.approved,
            accepted_at: d.accepted_at,
            canonical_version: CANONICAL_VERSION,
            event_hash: self.event_hash,
            leaf_hash: self.leaf_hash,
            leaf_index: None,
            checkpoint_id: None,
            receipt_algorithm: RECEIPT_ALGORITHM.to_string(),
            receipt_key_id: self.receipt_key_id,
            receipt_signature: URL_SAFE_NO_PAD.encode(signature),
            receipt_payload: URL_SAFE_NO_PAD.encode(&self.receipt_payload),
        }
    }
}

/// The SDK's `_build_receipt_payload`.
pub fn receipt_payload(
    accepted_at: &str,
    event_hash: &str,
    event_uuid: &str,
    leaf_hash: &str,
    receipt_key_id: &str,
    request_id: &str,
) -> Result<Vec<u8>, CborError> {
    map([
        ("accepted_at", Cbor::text(accepted_at)),
        ("event_hash", Cbor::text(event_hash)),
        ("event_uuid", Cbor::text(event_uuid)),
        ("leaf_hash", Cbor::text(leaf_hash)),
        ("receipt_key_id", Cbor::text(receipt_key_id)),
        ("request_id", Cbor::text(request_id)),
        ("type", Cbor::text("event_receipt")),
        ("version", Cbor::Int(1)),
    ])
    .encode()
}

pub fn domain_hash(prefix: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prefix);
    h.update(payload);
    h.finalize().into()
}

impl LedgerEvent {
    /// Recompute this event's hash from its fields, as an auditor would.
    pub fn recompute_event_hash(&self) -> Result<String, CborError> {
        let draft = EventDraft {
            event_uuid: self.event_uuid.clone(),
            request_id: self.request_id.clone(),
            agent_id: self.agent_id.clone(),
            policy_id: self.policy_id.clone(),
            policy_version_id: self.policy_version_id.clone(),
            policy_content_hash: self.policy_content_hash.clone(),
            intent_hash: self.intent_hash.clone(),
            tool_name: self.tool_name.clone(),
            tool_args: self.tool_args.clone(),
            action_category: self.action_category.clone(),
            action_metadata: self.action_metadata.clone(),
            reason: self.reason.clone(),
            citations: self.citations.clone(),
            evidence_chunks: self.evidence_chunks.clone(),
            confidence: self.confidence,
            confidence_bucket: self.confidence_bucket.clone(),
            decision_status: self.decision_status.clone(),
            approved: self.approved,
            accepted_at: self.accepted_at.clone(),
        };
        Ok(hex::encode(domain_hash(
            EVENT_HASH_PREFIX,
            &draft.hash_payload()?,
        )))
    }
}
