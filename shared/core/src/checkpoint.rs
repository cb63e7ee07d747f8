//! Signed checkpoints in the SDK's `LedgerCheckpoint` shape. The signature covers
//! CBOR{export_targets, key_id, mmd_seconds, prev_checkpoint_hash, root_hash, signed_at, tree_size,
//! type: "checkpoint", version: 1}; checkpoint_hash = hex SHA-256("ledgix.audit.checkpoint.v1\0" ‖ payload).
//! Export fields outside the payload (uri, status, time, object version) are not signed: the vault records them
//! when the export succeeds, and the exported object carries the same uri, status and time (sealing.rs).

use serde::{Deserialize, Serialize};

use crate::cbor::{map, Cbor, CborError};
use crate::ledger::{domain_hash, CHECKPOINT_HASH_PREFIX, RECEIPT_ALGORITHM};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub checkpoint_id: i64,
    pub microblock_id: i64,
    pub tree_size: i64,
    pub root_hash: String,
    pub checkpoint_hash: String,
    pub prev_checkpoint_hash: String,
    pub signature_algorithm: String,
    pub signer_key_id: String,
    pub checkpoint_signature: String,
    pub checkpoint_payload: String,
    pub signed_at: String,
    pub mmd_seconds: i64,
    pub export_target: String,
    pub export_uri: String,
    pub export_status: String,
    pub exported_at: Option<String>,
    /// Object version of the exported checkpoint (S3 versioning); not part of the SDK shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_version_id: Option<String>,
}

pub const EXPORT_PENDING: &str = "pending";
pub const EXPORT_DONE: &str = "exported";

/// The signed fields of a checkpoint, before signing.
#[derive(Debug, Clone)]
pub struct CheckpointDraft {
    pub checkpoint_id: i64,
    pub tree_size: i64,
    pub root_hash: String,
    pub prev_checkpoint_hash: String,
    pub signer_key_id: String,
    pub signed_at: String,
    pub mmd_seconds: i64,
    pub export_target: String,
}

impl CheckpointDraft {
    /// The SDK's `_build_checkpoint_payload`.
    pub fn payload(&self) -> Result<Vec<u8>, CborError> {
        let targets = if self.export_target.is_empty() {
            vec![]
        } else {
            vec![Cbor::text(&self.export_target)]
        };
        map([
            ("export_targets", Cbor::Array(targets)),
            ("key_id", Cbor::text(&self.signer_key_id)),
            ("mmd_seconds", Cbor::Int(self.mmd_seconds)),
            (
                "prev_checkpoint_hash",
                Cbor::text(&self.prev_checkpoint_hash),
            ),
            ("root_hash", Cbor::text(&self.root_hash)),
            ("signed_at", Cbor::text(&self.signed_at)),
            ("tree_size", Cbor::Int(self.tree_size)),
            ("type", Cbor::text("checkpoint")),
            ("version", Cbor::Int(1)),
        ])
        .encode()
    }

    pub fn seal(self, payload: &[u8], signature: &[u8]) -> Checkpoint {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        Checkpoint {
            checkpoint_id: self.checkpoint_id,
            microblock_id: 0,
            tree_size: self.tree_size,
            root_hash: self.root_hash,
            checkpoint_hash: hex::encode(domain_hash(CHECKPOINT_HASH_PREFIX, payload)),
            prev_checkpoint_hash: self.prev_checkpoint_hash,
            signature_algorithm: RECEIPT_ALGORITHM.into(),
            signer_key_id: self.signer_key_id,
            checkpoint_signature: URL_SAFE_NO_PAD.encode(signature),
            checkpoint_payload: URL_SAFE_NO_PAD.encode(payload),
            signed_at: self.signed_at,
            mmd_seconds: self.mmd_seconds,
            export_target: self.export_target,
            export_uri: String::new(),
            export_status: EXPORT_PENDING.into(),
            exported_at: None,
            export_version_id: None,
        }
    }
}
