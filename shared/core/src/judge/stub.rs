//! The development judge: no model, no I/O.

use async_trait::async_trait;
use serde_json::json;

use crate::ports::{JudgeCall, JudgeModel, ModelError, ModelReply};

/// Deterministic development judge: always asks for human review with no confidence, so it can never
/// approve anything on its own. Enabled only with VAULT_ALLOW_STUB_JUDGE (and by default in `ledgix dev`).
pub struct StubJudge;

pub const STUB_BACKEND: &str = "stub";

#[async_trait]
impl JudgeModel for StubJudge {
    fn backend(&self) -> &str {
        STUB_BACKEND
    }

    fn model_id(&self) -> &str {
        STUB_BACKEND
    }

    async fn decide(&self, call: JudgeCall<'_>) -> Result<ModelReply, ModelError> {
        let passages = call.data["policy"]["passages"]
            .as_array()
            .map_or(0, Vec::len);
        let policy_id = call.data["policy"]["policy_id"].as_str().unwrap_or("");
        Ok(ModelReply {
            verdict: json!({
                "decision": "review",
                "confidence": 0.0,
                "reason": format!(
                    "Stub judge (development only) cannot evaluate the {passages} plain-English rule(s) of policy {policy_id}; a human must review"
                ),
                "rules_applied": [],
            }),
            input_tokens: 0,
            output_tokens: 0,
        })
    }
}
