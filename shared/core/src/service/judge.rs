//! The judge worker: decide queued clearances (redelivery-safe) and hand stranded ones to a human.
//! Every policy that sent the call to the judge is judged (`judging`); most restrictive wins, as for policies:
//! a deny denies, a failure or a review goes to a human, and only approvals from every policy at or above the
//! tenant's `minimum_confidence_bucket` approve.

use serde_json::{json, Value};

use super::judging::{JudgeFailure, PolicyJudgement};
use super::Vault;
use crate::error::{Conflict, StoreError, VaultError, VaultResult};
use crate::judge::retry::RetryBudget;
use crate::judge::verdict::{JudgeVerdict, Verdict};
use crate::model::{
    now_rfc3339, ClearanceRecord, ClearanceStatus, ConfidenceBucket, DecisionSource, PolicyVersion,
};
use crate::ports::{JudgeJob, JudgeModel, Write};

/// How the judgements of a call's policies combine.
struct Outcome {
    status: ClearanceStatus,
    reason: String,
    reason_code: Option<String>,
    bucket: ConfidenceBucket,
    citations: Vec<Value>,
}

impl Vault {
    /// Decide one queued clearance. Safe under redelivery: a request already decided writes nothing.
    /// An `Err` means "retry later" (the queue redelivers): only store failures; a judge that cannot answer
    /// within the retry budget sends the request to a human instead.
    pub async fn process_judge_job(&self, job: &JudgeJob) -> VaultResult<()> {
        let Some(record) = self
            .ports
            .store
            .clearance(&job.tenant_id, &job.request_id)
            .await?
        else {
            tracing::warn!(request_id = %job.request_id, "judge job for an unknown clearance; dropping");
            return Ok(());
        };
        if record.status != ClearanceStatus::Processing {
            return Ok(());
        }
        let Some(model) = self.ports.judge.clone() else {
            self.route_to_review(&record, "judge_unavailable").await?;
            return Ok(());
        };
        let Some(policies) = self.judged_policies(&record).await? else {
            self.route_to_review(&record, "policy_version_missing")
                .await?;
            return Ok(());
        };
        let budget = RetryBudget::new(self.settings.judge.retry_budget);
        let mut judgements = Vec::with_capacity(policies.len());
        for policy in &policies {
            let judgement = self
                .judge_policy(model.as_ref(), &record, policy, &budget)
                .await?;
            let denied = matches!(&judgement.outcome, Ok(v) if v.decision == JudgeVerdict::Deny);
            judgements.push(judgement);
            if denied {
                break; // nothing is more restrictive than a deny
            }
        }
        let minimum = self
            .ports
            .store
            .review_settings(&job.tenant_id)
            .await?
            .minimum_confidence_bucket;
        let outcome = combine(&judgements, minimum, model.as_ref());
        let mut updated = record.clone();
        updated.decided_by = Some(DecisionSource::Judge);
        updated.status = outcome.status;
        updated.confidence_bucket = outcome.bucket;
        updated.minimum_confidence_bucket = minimum;
        updated.reason = outcome.reason;
        updated.reason_code = outcome.reason_code;
        updated.updated_at = now_rfc3339();
        if updated.status == ClearanceStatus::Approved {
            self.attach_token(&mut updated).await?;
        }
        let evidence = json!({"judge": {
            "backend": model.backend(),
            "model": model.model_id(),
            "embedding_model": model.embedding_model(),
            "judgements": judgements.iter().map(|j| j.evidence.clone()).collect::<Vec<_>>(),
        }});
        let event = self
            .ledger_event(&updated, "clearance.decision", &outcome.citations, evidence)
            .await?;
        let deliveries = self
            .notifications_for(
                &updated,
                super::notifications::event_for(updated.status),
                json!({}),
            )
            .await?;
        let writes = super::notifications::with_outbox(
            vec![
                Write::UpdateClearance {
                    record: updated,
                    expected: ClearanceStatus::Processing,
                },
                Write::AppendEvent(event),
            ],
            &deliveries,
        );
        match self.ports.store.commit(&job.tenant_id, writes).await {
            Ok(_) => {
                self.dispatch_notifications(&job.tenant_id, deliveries)
                    .await;
                Ok(())
            }
            Err(StoreError::Conflict(Conflict::ClearanceState)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The policy versions that sent this call to the judge (all of them must be satisfied), or `None` when
    /// one is missing. Records from before `policies_consulted` name only the deciding policy.
    async fn judged_policies(
        &self,
        record: &ClearanceRecord,
    ) -> VaultResult<Option<Vec<PolicyVersion>>> {
        let mut ids: Vec<&str> = record
            .policies_consulted
            .iter()
            .filter(|p| p.decision == "judge")
            .map(|p| p.policy_version_id.as_str())
            .collect();
        if ids.is_empty() {
            ids.push(&record.policy_version_id);
        }
        let mut policies = Vec::with_capacity(ids.len());
        for id in ids {
            match self
                .ports
                .store
                .policy_version(&record.tenant_id, id)
                .await?
            {
                Some(policy) => policies.push(policy),
                None => return Ok(None),
            }
        }
        Ok(Some(policies))
    }

    /// Put a `processing` clearance back on the judge queue (after a restart); a human decides if it can't.
    pub async fn requeue(&self, job: &JudgeJob) {
        if let Err(e) = self.ports.queue.enqueue(job).await {
            tracing::warn!(request_id = %job.request_id, error = %e, "could not re-queue; routing to review");
            if let Err(e) = self.abandon_judge_job(job).await {
                tracing::error!(request_id = %job.request_id, error = %e, "could not route stranded request to review");
            }
        }
    }

    /// A queue batch (SQS FIFO): decide jobs in order and stop at the first failure, so nothing in a message
    /// group is decided out of order. Returns the ids of the failed message and every message after it, for
    /// redelivery. A message that is not a job fails too (the queue's DLQ keeps it for an operator).
    pub async fn process_judge_batch(
        &self,
        messages: Vec<(String, Option<JudgeJob>)>,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        for (message_id, job) in messages {
            if !failed.is_empty() {
                failed.push(message_id);
                continue;
            }
            let outcome = match &job {
                Some(job) => self.process_judge_job(job).await,
                None => Err(VaultError::InvalidRequest(
                    "message is not a judge job".into(),
                )),
            };
            if let Err(e) = outcome {
                tracing::warn!(message_id = %message_id, error = %e, "judge job failed; it and later messages will be redelivered");
                failed.push(message_id);
            }
        }
        failed
    }

    /// Give up on a job that keeps failing: a human decides instead.
    pub async fn abandon_judge_job(&self, job: &JudgeJob) -> VaultResult<()> {
        if let Some(record) = self
            .ports
            .store
            .clearance(&job.tenant_id, &job.request_id)
            .await?
        {
            if record.status == ClearanceStatus::Processing {
                self.route_to_review(&record, "judge_unavailable").await?;
            }
        }
        Ok(())
    }
}

/// Most restrictive wins: any deny denies; any failure, review or approval below the tenant's minimum goes to
/// a human; only confident approvals from every judged policy approve.
fn combine(
    judgements: &[PolicyJudgement],
    minimum: ConfidenceBucket,
    model: &dyn JudgeModel,
) -> Outcome {
    let verdict_of = |decision: JudgeVerdict| {
        judgements.iter().find_map(|j| match &j.outcome {
            Ok(v) if v.decision == decision => Some((j, v)),
            _ => None,
        })
    };
    if let Some((j, v)) = verdict_of(JudgeVerdict::Deny) {
        return decided(ClearanceStatus::Denied, j, v, Some("judge_denied"));
    }
    if let Some(failure) = judgements.iter().find_map(|j| j.outcome.as_ref().err()) {
        let reason = match failure {
            JudgeFailure::Unavailable(_) => {
                "The policy judge could not be reached in time; a human must review"
            }
            JudgeFailure::InvalidOutput(_) => {
                "The policy judge's answer was not a valid verdict; a human must review"
            }
        };
        return Outcome {
            status: ClearanceStatus::PendingReview,
            reason: reason.into(),
            reason_code: Some(failure.reason_code().into()),
            bucket: ConfidenceBucket::None,
            citations: vec![],
        };
    }
    if let Some((j, v)) = verdict_of(JudgeVerdict::Review) {
        let code = if model.backend() == crate::judge::STUB_BACKEND {
            "stub_judge_review"
        } else {
            "judge_review"
        };
        return decided(ClearanceStatus::PendingReview, j, v, Some(code));
    }
    // Every policy approved: the least confident approval speaks for all.
    let Some((j, v)) = judgements
        .iter()
        .filter_map(|j| j.outcome.as_ref().ok().map(|v| (j, v)))
        .min_by(|a, b| a.1.confidence.total_cmp(&b.1.confidence))
    else {
        return Outcome {
            status: ClearanceStatus::PendingReview,
            reason: "The policy judge gave no verdict; a human must review".into(),
            reason_code: Some("judge_unavailable".into()),
            bucket: ConfidenceBucket::None,
            citations: vec![],
        };
    };
    let mut outcome = if v.bucket() >= minimum {
        decided(ClearanceStatus::Approved, j, v, None)
    } else {
        decided(
            ClearanceStatus::PendingReview,
            j,
            v,
            Some("below_minimum_confidence"),
        )
    };
    outcome.citations = judgements.iter().flat_map(citations).collect();
    outcome
}

fn decided(
    status: ClearanceStatus,
    j: &PolicyJudgement,
    v: &Verdict,
    code: Option<&str>,
) -> Outcome {
    Outcome {
        status,
        reason: v.reason.clone(),
        reason_code: code.map(str::to_string),
        bucket: v.bucket(),
        citations: citations(j),
    }
}

/// The passages a verdict relied on, as ledger citations.
fn citations(j: &PolicyJudgement) -> Vec<Value> {
    let Ok(v) = &j.outcome else { return vec![] };
    v.rules_applied
        .iter()
        .filter_map(|id| j.passages.iter().find(|p| &p.id == id))
        .map(|p| json!({"policy_id": j.policy_id, "passage_id": p.id, "text": p.text}))
        .collect()
}
