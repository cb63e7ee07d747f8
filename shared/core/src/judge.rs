//! Judges that need no I/O.

use async_trait::async_trait;

use crate::model::{ClearanceRequest, ConfidenceBucket, PolicyVersion};
use crate::ports::{Judge, JudgeError, JudgeVerdict, Judgement};

/// Deterministic development judge: always asks for human review with no confidence, so it can never
/// approve anything on its own. Enabled only with VAULT_ALLOW_STUB_JUDGE (and by default in `ledgix dev`).
pub struct StubJudge;

#[async_trait]
impl Judge for StubJudge {
    fn name(&self) -> &str {
        "stub"
    }

    async fn judge(
        &self,
        _tenant_id: &str,
        _request: &ClearanceRequest,
        policy: &PolicyVersion,
    ) -> Result<Judgement, JudgeError> {
        Ok(Judgement {
            verdict: JudgeVerdict::Review,
            confidence_bucket: ConfidenceBucket::None,
            reason: format!(
                "Stub judge (development only) cannot evaluate the {} plain-English rule(s) of policy {}; a human must review",
                policy.rules.len(),
                policy.policy_id
            ),
            reason_code: Some("stub_judge_review".into()),
            citations: vec![],
        })
    }
}
