//! Human review: the tenant's review settings, the pending queue and a reviewer's decision.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::idempotency::AnswerScope;
use super::{known_id, Idempotency, Principal, Vault};
use crate::error::{Conflict, StoreError, VaultError, VaultResult};
use crate::model::{
    now_rfc3339, ClearanceStatus, ClearanceView, ConfidenceBucket, DecisionSource, ReviewSettings,
};
use crate::notify::NotificationEvent;
use crate::ports::Write;
use crate::roles::Role;

/// `PUT /review-settings` as sent: the bucket is checked by the use case, after any replay.
#[derive(Debug, Clone, Deserialize)]
pub struct ReviewSettingsUpdate {
    pub minimum_confidence_bucket: String,
    /// Left out: the stored deadline stays.
    #[serde(default)]
    pub review_deadline_seconds: Option<u64>,
}

/// The shortest and longest review deadline a tenant may set: 10 seconds (an unattended pipeline that would
/// rather be told no quickly), 30 days.
const REVIEW_DEADLINE_SECONDS: std::ops::RangeInclusive<u64> = 10..=30 * 24 * 3600;

#[derive(Debug, Clone, Deserialize)]
pub struct ReviewDecisionRequest {
    pub approved: bool,
    #[serde(default)]
    pub review_reason: String,
    /// Who decided, as the reviewer wants it recorded (e.g. a name or an email); the key id is always recorded.
    #[serde(default)]
    pub reviewer_name: Option<String>,
}

const MAX_REVIEWER_NAME: usize = 200;
/// The most pending reviews one `GET /reviews` returns (`limit`'s documented maximum).
pub const MAX_REVIEW_PAGE: usize = 500;

/// What a decision on a pending request is, given who posts it.
enum ReviewAction {
    Approve,
    Deny,
    /// The requesting agent withdraws its own request (the SDK's `PendingApproval.cancel`).
    CancelByAgent,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingReview {
    pub request_id: String,
    pub status: String,
    pub tool_name: String,
    pub tool_args: Value,
    pub agent_id: String,
    pub session_id: String,
    pub context: Value,
    pub reason: String,
    pub reason_code: Option<String>,
    pub confidence_bucket: String,
    pub policy_id: String,
    pub policy_version_id: String,
    /// Key id of the API key that asked.
    pub requested_by: String,
    pub created_at: String,
}

impl Vault {
    pub async fn review_settings(&self, principal: &Principal) -> VaultResult<ReviewSettings> {
        Ok(self
            .ports
            .store
            .review_settings(&principal.tenant_id)
            .await?)
    }

    pub async fn put_review_settings(
        &self,
        principal: &Principal,
        update: ReviewSettingsUpdate,
        idem: Option<&Idempotency>,
    ) -> VaultResult<ReviewSettings> {
        let tenant_id = principal.tenant_id.as_str();
        self.replay(AnswerScope::Tenant(tenant_id), idem).await?;
        let bucket =
            ConfidenceBucket::parse(&update.minimum_confidence_bucket).ok_or_else(|| {
                VaultError::InvalidRequest(
                    "minimum_confidence_bucket must be extra_high, high, medium, low or none"
                        .into(),
                )
            })?;
        let review_deadline_seconds = match update.review_deadline_seconds {
            Some(seconds) if !REVIEW_DEADLINE_SECONDS.contains(&seconds) => {
                return Err(VaultError::InvalidRequest(format!(
                    "review_deadline_seconds must be between {} and {}",
                    REVIEW_DEADLINE_SECONDS.start(),
                    REVIEW_DEADLINE_SECONDS.end()
                )))
            }
            Some(seconds) => seconds,
            None => {
                self.ports
                    .store
                    .review_settings(tenant_id)
                    .await?
                    .review_deadline_seconds
            }
        };
        let settings = ReviewSettings {
            minimum_confidence_bucket: bucket,
            review_deadline_seconds,
        };
        let writes = vec![Write::PutReviewSettings(settings)];
        self.commit_answered(tenant_id, writes, idem, 200, &settings)
            .await?;
        self.tenants.invalidate(tenant_id);
        Ok(settings)
    }

    pub async fn pending_reviews(
        &self,
        principal: &Principal,
        limit: usize,
    ) -> VaultResult<Vec<PendingReview>> {
        let records = self
            .ports
            .store
            .clearances_with_status(
                &principal.tenant_id,
                ClearanceStatus::PendingReview,
                super::page_limit(limit, MAX_REVIEW_PAGE)?,
            )
            .await?;
        Ok(records
            .into_iter()
            .map(|r| PendingReview {
                request_id: r.request_id,
                status: r.status.as_str().into(),
                tool_name: r.request.tool_name,
                tool_args: r.request.tool_args,
                agent_id: r.request.agent_id,
                session_id: r.request.session_id,
                context: r.request.context,
                reason: r.reason,
                reason_code: r.reason_code,
                confidence_bucket: r.confidence_bucket.as_str().into(),
                policy_id: r.policy_id,
                policy_version_id: r.policy_version_id,
                requested_by: r.requested_by,
                created_at: r.created_at,
            })
            .collect())
    }

    pub async fn review_decision(
        &self,
        principal: &Principal,
        request_id: &str,
        decision: ReviewDecisionRequest,
        idem: Option<&Idempotency>,
    ) -> VaultResult<ClearanceView> {
        let tenant_id = principal.tenant_id.as_str();
        self.replay(AnswerScope::Tenant(tenant_id), idem).await?;
        known_id(request_id, "clearance request")?;
        let reviewer_name = match decision.reviewer_name.as_deref().map(str::trim) {
            Some(name) if name.len() > MAX_REVIEWER_NAME || name.chars().any(char::is_control) => {
                return Err(VaultError::InvalidRequest(format!(
                    "reviewer_name must be at most {MAX_REVIEWER_NAME} characters, without control characters"
                )))
            }
            Some("") | None => None,
            Some(name) => Some(name.to_string()),
        };
        let record = self
            .ports
            .store
            .clearance(tenant_id, request_id)
            .await?
            .ok_or(VaultError::NotFound("clearance request"))?;
        let action = review_action(principal, &record.requested_by, decision.approved)?;
        if record.status != ClearanceStatus::PendingReview {
            return Err(VaultError::NotPending(request_id.to_string()));
        }
        let mut updated = record.clone();
        updated.decided_by = Some(DecisionSource::Reviewer);
        updated.updated_at = now_rfc3339();
        let note = decision.review_reason.trim();
        let with_note = |what: &str| {
            if note.is_empty() {
                what.to_string()
            } else {
                format!("{what}: {note}")
            }
        };
        let category = match action {
            ReviewAction::Approve => {
                updated.status = ClearanceStatus::Approved;
                updated.reason = with_note("Approved by a reviewer");
                updated.reason_code = Some("reviewer_approved".into());
                self.attach_token(&mut updated).await?;
                "review.decision"
            }
            ReviewAction::Deny => {
                updated.status = ClearanceStatus::Denied;
                updated.reason = with_note("Denied by a reviewer");
                updated.reason_code = Some("reviewer_denied".into());
                "review.decision"
            }
            ReviewAction::CancelByAgent => {
                updated.status = ClearanceStatus::Denied;
                updated.decided_by = Some(DecisionSource::Agent);
                updated.reason = with_note("Cancelled by the requesting agent");
                updated.reason_code = Some("cancelled_by_agent".into());
                "review.cancelled_by_agent"
            }
        };
        let event = self
            .ledger_event(
                &updated,
                category,
                &[],
                json!({"reviewer_key_id": principal.key_id, "reviewer_name": reviewer_name}),
            )
            .await?;
        let view = ClearanceView::from(&updated);
        let deliveries = self
            .notifications_for(
                &updated,
                Some(NotificationEvent::ReviewDecided),
                json!({"decided_by": updated.decided_by, "reviewer_key_id": principal.key_id, "reviewer_name": reviewer_name}),
            )
            .await?;
        let writes = super::notifications::with_outbox(
            vec![
                Write::UpdateClearance {
                    record: updated,
                    expected: ClearanceStatus::PendingReview,
                },
                Write::AppendEvent(event),
            ],
            &deliveries,
        );
        match self
            .commit_answered(tenant_id, writes, idem, 200, &view)
            .await
        {
            Ok(_) => {
                self.meter(tenant_id, "review.decision").await;
                self.dispatch_notifications(tenant_id, deliveries).await;
                Ok(view)
            }
            Err(VaultError::StoreUnavailable(StoreError::Conflict(Conflict::ClearanceState))) => {
                Err(VaultError::NotPending(request_id.to_string()))
            }
            Err(e) => Err(e),
        }
    }
}

/// Four eyes: approving needs a reviewer key other than the requester's; the requesting agent may only withdraw
/// its own request; denying needs a reviewer.
fn review_action(
    principal: &Principal,
    requested_by: &str,
    approved: bool,
) -> VaultResult<ReviewAction> {
    let own = !requested_by.is_empty() && requested_by == principal.key_id;
    match (approved, own) {
        (true, own) => {
            principal.require_any(&[Role::Reviewer])?;
            if own {
                return Err(VaultError::Forbidden(
                    "a key cannot approve a request it made; another reviewer must decide".into(),
                ));
            }
            Ok(ReviewAction::Approve)
        }
        (false, true) => Ok(ReviewAction::CancelByAgent),
        (false, false) => {
            principal.require_any(&[Role::Reviewer])?;
            Ok(ReviewAction::Deny)
        }
    }
}
