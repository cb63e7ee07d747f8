//! Hashes bound into tokens and ledger events.

use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `sha256:<lowercase hex>` of the RFC 8785 (JCS) canonical JSON of `value`.
pub fn jcs_sha256(value: &Value) -> Result<String, serde_json::Error> {
    let canonical = serde_jcs::to_vec(value)?;
    Ok(format!("sha256:{}", sha256_hex(&canonical)))
}

/// The `tool_args_hash` claim: binds a token to exactly these arguments.
pub fn tool_args_hash(tool_args: &Value) -> Result<String, serde_json::Error> {
    jcs_sha256(tool_args)
}

/// The ledger's `intent_hash`: what the agent asked to do, independent of the decision.
pub fn intent_hash(
    tool_name: &str,
    tool_args: &Value,
    agent_id: &str,
    session_id: &str,
) -> Result<String, serde_json::Error> {
    jcs_sha256(&serde_json::json!({
        "agent_id": agent_id,
        "session_id": session_id,
        "tool_args": tool_args,
        "tool_name": tool_name,
    }))
}
