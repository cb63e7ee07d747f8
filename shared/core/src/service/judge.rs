//! The judge worker: decide queued clearances (redelivery-safe) and hand stranded ones to a human.

use serde_json::json;

use super::Vault;
use crate::error::{Conflict, StoreError, VaultError, VaultResult};
use crate::model::{now_rfc3339, ClearanceStatus, DecisionSource};
use crate::ports::{JudgeError, JudgeJob, JudgeVerdict, Write};

impl Vault {
    /// Decide one queued clearance. Safe under redelivery: a request already decided writes nothing.
    /// An `Err` means "retry later" (the queue redelivers).
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
        let Some(judge) = &self.ports.judge else {
            self.route_to_review(&record, "judge_unavailable").await?;
            return Ok(());
        };
        let policy = self
            .ports
            .store
            .policy_version(&job.tenant_id, &record.policy_version_id)
            .await?;
        let Some(policy) = policy else {
            self.route_to_review(&record, "policy_version_missing")
                .await?;
            return Ok(());
        };
        let judgement = match judge.judge(&job.tenant_id, &record.request, &policy).await {
            Ok(j) => j,
            Err(JudgeError::Unavailable(e)) => {
                return Err(VaultError::QueueUnavailable(format!(
                    "judge unavailable: {e}"
                )))
            }
            Err(JudgeError::InvalidAnswer(e)) => {
                tracing::error!(request_id = %record.request_id, error = %e, "judge answered nonsense; routing to review");
                self.route_to_review(&record, "judge_invalid_answer")
                    .await?;
                return Ok(());
            }
        };
        let minimum = self
            .ports
            .store
            .review_settings(&job.tenant_id)
            .await?
            .minimum_confidence_bucket;
        let mut updated = record.clone();
        updated.decided_by = Some(DecisionSource::Judge);
        updated.confidence_bucket = judgement.confidence_bucket;
        updated.minimum_confidence_bucket = minimum;
        updated.reason = judgement.reason.clone();
        updated.reason_code = judgement.reason_code.clone();
        updated.updated_at = now_rfc3339();
        updated.status = match judgement.verdict {
            JudgeVerdict::Approve if judgement.confidence_bucket >= minimum => {
                ClearanceStatus::Approved
            }
            JudgeVerdict::Approve => {
                updated.reason_code = Some("below_minimum_confidence".into());
                ClearanceStatus::PendingReview
            }
            JudgeVerdict::Deny => ClearanceStatus::Denied,
            JudgeVerdict::Review => ClearanceStatus::PendingReview,
        };
        if updated.status == ClearanceStatus::Approved {
            self.attach_token(&mut updated).await?;
        }
        let event = self
            .ledger_event(
                &updated,
                "clearance.decision",
                &judgement.citations,
                json!({"judge": judge.name()}),
            )
            .await?;
        let writes = vec![
            Write::UpdateClearance {
                record: updated,
                expected: ClearanceStatus::Processing,
            },
            Write::AppendEvent(event),
        ];
        match self.ports.store.commit(&job.tenant_id, writes).await {
            Ok(_) | Err(StoreError::Conflict(Conflict::ClearanceState)) => Ok(()),
            Err(e) => Err(e.into()),
        }
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
