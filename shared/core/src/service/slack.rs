//! Deciding from Slack: `POST /slack/interactions`, the request Slack sends when someone clicks Approve or Deny
//! on a `review.pending` message. Slack signs it with the tenant's Slack app signing secret; the clicking user
//! must be one of the tenant's Slack reviewers; the decision is then the review use case's, made by a reviewer
//! principal standing for that Slack user (key id `slack:<user id>`), so the four-eyes rule, the ledger event and
//! the `review.decided` notifications are exactly those of a decision made with a reviewer key.
//!
//! What the clicking user sees next (the message replaced by its outcome, or a note only they see) is posted to
//! the interaction's `response_url` by the notifier, as a delivery to the target `slack_response`: retried like
//! any delivery, and sent from where deliveries are sent (on AWS the notifier, which has internet egress; the
//! API function need not).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{known_id, Principal, ReviewDecisionRequest, Vault};
use crate::error::{VaultError, VaultResult};
use crate::model::{ClearanceRecord, ClearanceStatus, DecisionSource};
use crate::notify::{address, slack, webhook, Delivery, NotificationEvent};
use crate::roles::Role;

/// What `POST /slack/interactions` answers (Slack only needs the 200; the body is for people and tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackInteractionAnswer {
    /// `approved` / `denied` (decided now), `not_pending` (decided or expired before), `not_found`,
    /// `forbidden` (the review use case refused), `not_a_reviewer` (nothing decided).
    pub outcome: String,
    pub request_id: String,
}

/// The note the clicking user gets when they are not one of the tenant's Slack reviewers.
pub const NOT_A_REVIEWER: &str =
    "You are not a reviewer for this tenant: nothing was decided. Ask its tenant admin to add your Slack user id.";

impl Vault {
    /// Verify and act on one interaction request: `timestamp` and `signature` are the `X-Slack-Request-Timestamp`
    /// and `X-Slack-Signature` headers, `body` the raw form body they sign. 401 `unauthorized` for anything
    /// that cannot be verified (no headers, a body that names no tenant's Ledgix action, a tenant without Slack
    /// settings, a stale timestamp, a wrong signature).
    pub async fn slack_interaction(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> VaultResult<SlackInteractionAnswer> {
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            return Err(VaultError::Unauthorized);
        };
        let now = chrono::Utc::now().timestamp();
        // What needs no secret first: a stale request costs no settings read.
        if let Err(e) = slack::check_timestamp(timestamp, now) {
            tracing::info!(error = %e, "Slack interaction refused");
            return Err(VaultError::Unauthorized);
        }
        let interaction = slack::parse_interaction(body).map_err(|e| {
            tracing::info!(error = %e, "Slack interaction refused: unreadable");
            VaultError::Unauthorized
        })?;
        let tenant_id = interaction.tenant_id.as_str();
        known_id(tenant_id, "tenant").map_err(|_| VaultError::Unauthorized)?;
        let settings = self.notifier()?.ports().store.settings(tenant_id).await?;
        let Some(target) = settings.and_then(|s| s.slack) else {
            tracing::info!(
                tenant_id,
                "Slack interaction refused: the tenant has no Slack settings"
            );
            return Err(VaultError::Unauthorized);
        };
        if let Err(e) = slack::verify(&target.signing_secret, timestamp, signature, body, now) {
            tracing::info!(tenant_id, error = %e, "Slack interaction refused");
            return Err(VaultError::Unauthorized);
        }
        let request_id = interaction.request_id.as_str();
        let respond = |event, message| {
            self.update_slack_message(
                tenant_id,
                request_id,
                event,
                message,
                interaction.response_url.as_deref(),
            )
        };
        let answer = |outcome: &str| SlackInteractionAnswer {
            outcome: outcome.into(),
            request_id: request_id.into(),
        };
        if !target.is_reviewer(&interaction.user_id) {
            tracing::info!(tenant_id, request_id, slack_user = %interaction.user_id, "Slack click by a user who is not a reviewer; nothing decided");
            respond(
                NotificationEvent::ReviewPending,
                slack::ephemeral(NOT_A_REVIEWER),
            )
            .await;
            return Ok(answer("not_a_reviewer"));
        }
        let principal = Principal {
            tenant_id: tenant_id.to_string(),
            key_id: format!("slack:{}", interaction.user_id),
            roles: vec![Role::Reviewer],
        };
        let decision = ReviewDecisionRequest {
            approved: interaction.approve,
            review_reason: "decided in Slack".into(),
            reviewer_name: Some(format!(
                "{} (Slack {})",
                interaction.user_name, interaction.user_id
            )),
        };
        let reviewer =
            json!({"reviewer_name": decision.reviewer_name, "reviewer_key_id": principal.key_id});
        match self
            .review_decision(&principal, request_id, decision, None)
            .await
        {
            Ok(view) => {
                if let Some((event, body)) = self
                    .outcome_body(tenant_id, request_id, Some(reviewer))
                    .await
                {
                    respond(event, slack::replacement(event, &body)).await;
                }
                Ok(answer(&view.status))
            }
            Err(VaultError::NotPending(_)) => {
                if let Some((event, body)) = self.outcome_body(tenant_id, request_id, None).await {
                    respond(event, slack::replacement(event, &body)).await;
                }
                Ok(answer("not_pending"))
            }
            Err(VaultError::NotFound(_)) => {
                respond(
                    NotificationEvent::ReviewPending,
                    slack::ephemeral(
                        "This request is not known to the vault: nothing was decided.",
                    ),
                )
                .await;
                Ok(answer("not_found"))
            }
            Err(VaultError::Forbidden(why)) => {
                respond(
                    NotificationEvent::ReviewPending,
                    slack::ephemeral(&format!("Nothing was decided: {why}")),
                )
                .await;
                Ok(answer("forbidden"))
            }
            Err(e) => Err(e),
        }
    }

    /// The request as it now stands, as the event body its Slack message is rendered from (`None` if it cannot
    /// be read: the message then keeps its buttons, and a click on one is answered again). `reviewer`: who
    /// decided, when the caller knows; else as the ledger recorded it.
    async fn outcome_body(
        &self,
        tenant_id: &str,
        request_id: &str,
        reviewer: Option<Value>,
    ) -> Option<(NotificationEvent, Value)> {
        match self.ports.store.clearance(tenant_id, request_id).await {
            Ok(Some(record)) => {
                let reviewer = match reviewer {
                    Some(known) => known,
                    None => self.reviewer_of(&record).await,
                };
                Some(outcome_of(&record, reviewer))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(tenant_id, request_id, error = %e, "Slack message not updated: the request is unreadable");
                None
            }
        }
    }

    /// Who decided `record`, as its ledger event recorded it (`reviewer_name`, `reviewer_key_id`).
    async fn reviewer_of(&self, record: &ClearanceRecord) -> Value {
        if record.decided_by != Some(DecisionSource::Reviewer) {
            return json!({});
        }
        match self
            .ports
            .store
            .latest_event_for_request(&record.tenant_id, &record.request_id)
            .await
        {
            Ok(Some(event)) => json!({
                "reviewer_name": event.action_metadata.get("reviewer_name").cloned().unwrap_or(Value::Null),
                "reviewer_key_id": event.action_metadata.get("reviewer_key_id").cloned().unwrap_or(Value::Null),
            }),
            _ => json!({}),
        }
    }

    /// Queue a post to an interaction's `response_url` (when it has one the URL policy admits); a failure to
    /// queue it is logged: the decision stands, only the message is not updated.
    async fn update_slack_message(
        &self,
        tenant_id: &str,
        request_id: &str,
        event: NotificationEvent,
        message: Value,
        response_url: Option<&str>,
    ) {
        let (Some(url), Some(notifier)) = (response_url, self.notifier.as_ref()) else {
            return;
        };
        if let Err(why) = address::check_url(url, notifier.ports().url_policy) {
            tracing::warn!(tenant_id, request_id, error = %why, "Slack response_url refused; message not updated");
            return;
        }
        let delivery = Delivery::queued(
            tenant_id,
            slack::RESPONSE_TARGET_ID,
            event,
            request_id,
            json!({"response_url": url, "message": message}),
        );
        if let Err(e) = notifier.dispatch(&[delivery]).await {
            tracing::warn!(tenant_id, request_id, error = %e, "Slack message update not queued");
        }
    }
}

/// The event a decided request's message announces, and its body (with who decided).
fn outcome_of(record: &ClearanceRecord, reviewer: Value) -> (NotificationEvent, Value) {
    let event = match (record.status, record.decided_by) {
        (ClearanceStatus::PendingReview, _) => NotificationEvent::ReviewPending,
        (_, Some(DecisionSource::Deadline)) => NotificationEvent::ReviewExpired,
        _ => NotificationEvent::ReviewDecided,
    };
    let mut extra = json!({"decided_by": record.decided_by});
    if let (Some(map), Value::Object(reviewer)) = (extra.as_object_mut(), reviewer) {
        map.extend(reviewer);
    }
    (
        event,
        webhook::event_body(event, record, &record.updated_at, extra),
    )
}
