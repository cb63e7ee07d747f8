//! Notifications: the tenant's settings (tenant_admin), the deliveries a decision queues in its own commit
//! (the outbox), dispatching them to the notifier, the delivery log, and the housekeeping an anchor round
//! does per tenant (re-dispatching an outbox a crash left behind, expiring reviews past their deadline).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::idempotency::AnswerScope;
use super::{page_limit, Idempotency, Principal, Vault};
use crate::error::{Conflict, StoreError, VaultError, VaultResult};
use crate::model::{now_rfc3339, ClearanceRecord, ClearanceStatus, DecisionSource};
use crate::notify::settings::NotificationSettingsUpdate;
use crate::notify::{
    webhook, Delivery, NotificationEvent, NotificationSettingsView, Notifier, SendError,
};
use crate::ports::Write;
use crate::roles::Role;

/// The most deliveries one `GET /notification-deliveries` returns.
pub const MAX_DELIVERY_PAGE: usize = 200;
/// Outbox entries older than this are re-dispatched by the anchor round: younger ones are most likely being
/// dispatched by the request that committed them.
const OUTBOX_GRACE_SECONDS: i64 = 30;
/// Outbox entries and expired reviews handled per tenant per anchor round.
const HOUSEKEEPING_BATCH: usize = 100;

/// One row of `GET /notification-deliveries`: where a delivery stands, without its body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeliveryView {
    pub delivery_id: String,
    pub event: NotificationEvent,
    pub request_id: String,
    pub target_id: String,
    pub status: String,
    pub attempts: u32,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub last_error: Option<String>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            status: d.status.as_str().into(),
            delivery_id: d.delivery_id,
            event: d.event,
            request_id: d.request_id,
            target_id: d.target_id,
            attempts: d.attempts,
            created_at: d.created_at,
            next_attempt_at: d.next_attempt_at,
            delivered_at: d.delivered_at,
            last_error: d.last_error,
        }
    }
}

/// `writes` plus the outbox entries of `deliveries`: the notifications commit with the decision or not at all.
pub(super) fn with_outbox(mut writes: Vec<Write>, deliveries: &[Delivery]) -> Vec<Write> {
    if !deliveries.is_empty() {
        writes.push(Write::QueueNotifications(deliveries.to_vec()));
    }
    writes
}

/// The notification a decision announces, if any.
pub(super) fn event_for(status: ClearanceStatus) -> Option<NotificationEvent> {
    match status {
        ClearanceStatus::PendingReview => Some(NotificationEvent::ReviewPending),
        ClearanceStatus::Denied => Some(NotificationEvent::ClearanceDenied),
        _ => None,
    }
}

impl Vault {
    pub(super) fn notifier(&self) -> VaultResult<&Notifier> {
        self.notifier.as_ref().ok_or_else(|| {
            VaultError::StoreUnavailable(StoreError::Unavailable(
                "notifications are not configured in this process".into(),
            ))
        })
    }

    pub async fn notification_settings(
        &self,
        principal: &Principal,
    ) -> VaultResult<NotificationSettingsView> {
        principal.require_any(&[Role::TenantAdmin])?;
        let stored = self
            .notifier()?
            .ports()
            .store
            .settings(&principal.tenant_id)
            .await?
            .unwrap_or_default();
        Ok(NotificationSettingsView::from(&stored))
    }

    pub async fn put_notification_settings(
        &self,
        principal: &Principal,
        update: NotificationSettingsUpdate,
        idem: Option<&Idempotency>,
    ) -> VaultResult<NotificationSettingsView> {
        principal.require_any(&[Role::TenantAdmin])?;
        let tenant_id = principal.tenant_id.as_str();
        self.replay(AnswerScope::Tenant(tenant_id), idem).await?;
        let ports = self.notifier()?.ports();
        let stored = ports.store.settings(tenant_id).await?;
        let settings = update.apply(stored.as_ref(), ports.url_policy, &ports.email_policy)?;
        // The address check that needs DNS; the sender checks again at every connect.
        let urls = settings
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, webhook)| (format!("webhooks[{i}].url"), webhook.url.as_str()))
            .chain(
                settings
                    .slack
                    .iter()
                    .map(|slack| ("slack.webhook_url".to_string(), slack.webhook_url.as_str())),
            );
        for (field, url) in urls {
            match ports.sender.check(url).await {
                Ok(()) => {}
                Err(SendError::Refused(why)) => {
                    return Err(VaultError::InvalidRequest(format!("{field}: {why}")))
                }
                Err(SendError::Transport(why) | SendError::Rejected(why)) => {
                    return Err(VaultError::InvalidRequest(format!(
                        "{field} cannot be resolved: {why}"
                    )))
                }
            }
        }
        ports.store.put_settings(tenant_id, &settings).await?;
        self.tenants.invalidate(tenant_id);
        let view = NotificationSettingsView::from(&settings);
        self.commit_answered(tenant_id, vec![], idem, 200, &view)
            .await?;
        Ok(view)
    }

    pub async fn notification_deliveries(
        &self,
        principal: &Principal,
        limit: usize,
    ) -> VaultResult<Vec<DeliveryView>> {
        principal.require_any(&[Role::TenantAdmin])?;
        let limit = page_limit(limit, MAX_DELIVERY_PAGE)?;
        let Some(notifier) = self.notifier.as_ref() else {
            return Ok(vec![]);
        };
        let deliveries = notifier
            .ports()
            .store
            .deliveries(&principal.tenant_id, limit)
            .await?;
        Ok(deliveries.into_iter().map(DeliveryView::from).collect())
    }

    /// The deliveries `record`'s new state causes: one per webhook subscribed to `event`, and one to Slack if it
    /// is, as of this process's cached settings (the same TTL as the tenant's policies). `extra` adds to the
    /// event body.
    pub(super) async fn notifications_for(
        &self,
        record: &ClearanceRecord,
        event: Option<NotificationEvent>,
        extra: Value,
    ) -> VaultResult<Vec<Delivery>> {
        let Some(event) = event else {
            return Ok(vec![]);
        };
        if self.notifier.is_none() {
            return Ok(vec![]);
        }
        let rules = self.tenant_rules(&record.tenant_id).await?;
        let targets = rules.notifications.targets(event);
        if targets.is_empty() {
            return Ok(vec![]);
        }
        // One body for every target: Slack's message is rendered from it at send time.
        let mut body = webhook::event_body(event, record, &record.updated_at, extra);
        if let (Some(base), Some(map)) = (&self.settings.public_url, body.as_object_mut()) {
            // The page only shows the request: deciding there still takes a reviewer key.
            map.insert("review_url".into(), json!(format!("{base}/review")));
        }
        Ok(targets
            .into_iter()
            .map(|target_id| {
                Delivery::queued(
                    &record.tenant_id,
                    target_id,
                    event,
                    &record.request_id,
                    body.clone(),
                )
            })
            .collect())
    }

    /// Hand committed outbox entries to the notifier and forget them. Never fails the decision that queued
    /// them: what is not dispatched now stays in the outbox for the anchor round.
    pub(super) async fn dispatch_notifications(&self, tenant_id: &str, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let Some(notifier) = self.notifier.as_ref() else {
            return;
        };
        if let Err(e) = notifier.dispatch(&deliveries).await {
            tracing::warn!(tenant_id, error = %e, "notifications not dispatched; the anchor round retries");
            return;
        }
        let ids = deliveries.into_iter().map(|d| d.delivery_id).collect();
        if let Err(e) = self
            .ports
            .store
            .commit(tenant_id, vec![Write::ClearOutbox(ids)])
            .await
        {
            tracing::warn!(tenant_id, error = %e, "dispatched outbox entries not cleared; they are dispatched again, once");
        }
    }

    /// A tenant's share of an anchor round: expire reviews past the deadline, then re-dispatch what the outbox
    /// still holds. Failures are logged: the next round tries again.
    pub(crate) async fn notification_housekeeping(&self, tenant_id: &str) {
        if let Err(e) = self.expire_reviews(tenant_id).await {
            tracing::warn!(tenant_id, error = %e, "expiring reviews failed");
        }
        if self.notifier.is_none() {
            return;
        }
        match self.ports.store.outbox(tenant_id, HOUSEKEEPING_BATCH).await {
            Ok(entries) => {
                let cutoff = chrono::Utc::now() - chrono::Duration::seconds(OUTBOX_GRACE_SECONDS);
                let stale: Vec<Delivery> = entries
                    .into_iter()
                    .filter(|d| {
                        chrono::DateTime::parse_from_rfc3339(&d.created_at)
                            .map_or(true, |at| at < cutoff)
                    })
                    .collect();
                if !stale.is_empty() {
                    tracing::info!(
                        tenant_id,
                        count = stale.len(),
                        "re-dispatching outbox entries"
                    );
                }
                self.dispatch_notifications(tenant_id, stale).await;
            }
            Err(e) => tracing::warn!(tenant_id, error = %e, "outbox unreadable"),
        }
    }

    /// Deny every pending review older than the tenant's deadline (`review_expired`), with its ledger event and
    /// `review.expired` notifications in the same commit. Returns how many expired.
    pub async fn expire_reviews(&self, tenant_id: &str) -> VaultResult<usize> {
        let pending = self
            .ports
            .store
            .clearances_with_status(
                tenant_id,
                ClearanceStatus::PendingReview,
                HOUSEKEEPING_BATCH,
            )
            .await?;
        if pending.is_empty() {
            return Ok(0); // most tenants, most rounds: no settings read
        }
        let deadline = self
            .ports
            .store
            .review_settings(tenant_id)
            .await?
            .review_deadline_seconds;
        let cutoff = chrono::Utc::now() - chrono::Duration::seconds(deadline as i64);
        let mut expired = 0;
        for record in pending {
            let created = chrono::DateTime::parse_from_rfc3339(&record.created_at)
                .map_err(StoreError::corrupt)?;
            if created >= cutoff {
                break; // oldest first: the rest are younger
            }
            let mut updated = record.clone();
            updated.status = ClearanceStatus::Denied;
            updated.decided_by = Some(DecisionSource::Deadline);
            updated.reason = format!("No reviewer decided within {deadline} seconds");
            updated.reason_code = Some("review_expired".into());
            updated.updated_at = now_rfc3339();
            let event = self
                .ledger_event(
                    &updated,
                    "review.expired",
                    &[],
                    json!({"review_deadline_seconds": deadline}),
                )
                .await?;
            let deliveries = self
                .notifications_for(&updated, Some(NotificationEvent::ReviewExpired), json!({}))
                .await?;
            let writes = with_outbox(
                vec![
                    Write::UpdateClearance {
                        record: updated,
                        expected: ClearanceStatus::PendingReview,
                    },
                    Write::AppendEvent(event),
                ],
                &deliveries,
            );
            match self.ports.store.commit(tenant_id, writes).await {
                Ok(_) => {
                    expired += 1;
                    self.dispatch_notifications(tenant_id, deliveries).await;
                }
                // A reviewer decided in the meantime.
                Err(StoreError::Conflict(Conflict::ClearanceState)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(expired)
    }
}
