//! The notifier: records and queues what a commit put in its outbox, and attempts one delivery per job,
//! rescheduling failures (`retry`) until they succeed or 24 hours have passed. At least once: a notifier that
//! dies between sending and recording sends again, with the same `X-Ledgix-Delivery` id. A delivery's target is
//! a webhook, the tenant's Slack incoming webhook, or a Slack message's `response_url` (all three posted
//! through the same guarded sender), or the tenant's email recipients; all are retried alike.

use std::sync::Arc;
use std::time::Duration;

use super::address::UrlPolicy;
use super::email::{self, EmailPolicy, EmailSender, OutboundEmail};
use super::{
    retry, slack, webhook, Delivery, DeliveryJob, DeliveryQueue, DeliveryStatus,
    NotificationSettings, NotificationStore, OutboundPost, WebhookSender,
};
use crate::error::StoreError;
use crate::model::rfc3339;

/// The adapters notifications need.
#[derive(Clone)]
pub struct NotifyPorts {
    pub store: Arc<dyn NotificationStore>,
    pub queue: Arc<dyn DeliveryQueue>,
    pub sender: Arc<dyn WebhookSender>,
    pub url_policy: UrlPolicy,
    pub email: Arc<dyn EmailSender>,
    /// Which senders emails may come from: checked when settings are written and again at every send.
    pub email_policy: EmailPolicy,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Failed; queued again after this long.
    Retrying(Duration),
    DeadLettered,
    /// The webhook was removed from the settings.
    Cancelled,
    /// Nothing to do: the delivery is unknown, already final, or another notifier moved it.
    Skipped,
}

pub struct Notifier {
    ports: NotifyPorts,
}

/// The longest error text kept per delivery.
const MAX_ERROR: usize = 300;

/// What one attempt sends.
#[derive(Debug)]
enum Outbound {
    Post(OutboundPost),
    Email(OutboundEmail),
}

/// What one attempt of `delivery` sends, as the tenant's current settings say; `Err` (why it is cancelled)
/// when its target is no longer there, or its sender no longer allowed. Slack messages and emails are rendered
/// now, from the stored event body.
fn outbound(
    settings: &NotificationSettings,
    email_policy: &EmailPolicy,
    delivery: &Delivery,
    timestamp: i64,
) -> Result<Outbound, String> {
    if delivery.target_id == email::TARGET_ID {
        let target = settings
            .email
            .as_ref()
            .ok_or("email was removed from the notification settings")?;
        email_policy.check_from(&target.from)?;
        return Ok(Outbound::Email(email::message(
            target,
            delivery.event,
            &delivery.body,
            &delivery.delivery_id,
        )));
    }
    post_for(settings, delivery, timestamp)
        .map(Outbound::Post)
        .map_err(String::from)
}

fn post_for(
    settings: &NotificationSettings,
    delivery: &Delivery,
    timestamp: i64,
) -> Result<OutboundPost, &'static str> {
    match delivery.target_id.as_str() {
        slack::TARGET_ID => {
            let target = settings
                .slack
                .as_ref()
                .ok_or("Slack was removed from the notification settings")?;
            Ok(slack::post(
                &target.webhook_url,
                &slack::message(delivery.event, &delivery.body),
            ))
        }
        slack::RESPONSE_TARGET_ID => {
            settings
                .slack
                .as_ref()
                .ok_or("Slack was removed from the notification settings")?;
            let url = delivery
                .body
                .get("response_url")
                .and_then(|u| u.as_str())
                .ok_or("the Slack message update has no response_url")?;
            let message = delivery.body.get("message").cloned().unwrap_or_default();
            Ok(slack::post(url, &message))
        }
        id => settings
            .webhook(id)
            .map(|target| webhook::request(delivery, target, timestamp))
            .ok_or("the webhook was removed from the notification settings"),
    }
}

impl Notifier {
    pub fn new(ports: NotifyPorts) -> Self {
        Notifier { ports }
    }

    pub fn ports(&self) -> &NotifyPorts {
        &self.ports
    }

    /// Record each delivery (once, whoever dispatches it) and queue it for its first attempt.
    pub async fn dispatch(&self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        for delivery in deliveries {
            let fresh = self.ports.store.create_delivery(delivery).await?;
            // Re-dispatching an outbox entry whose delivery already went on its way queues nothing new; one
            // recorded by a dispatcher that died before queueing it is queued now.
            let queue_it = fresh
                || self
                    .ports
                    .store
                    .delivery(&delivery.tenant_id, &delivery.delivery_id)
                    .await?
                    .is_some_and(|d| d.attempts == 0 && !d.status.is_final());
            if queue_it {
                self.ports
                    .queue
                    .send(&DeliveryJob::from(delivery), Duration::ZERO)
                    .await?;
            }
        }
        Ok(())
    }

    /// One attempt of the job's delivery.
    pub async fn deliver(&self, job: &DeliveryJob) -> Result<DeliveryOutcome, StoreError> {
        let store = &self.ports.store;
        let Some(mut delivery) = store.delivery(&job.tenant_id, &job.delivery_id).await? else {
            tracing::warn!(tenant_id = %job.tenant_id, delivery_id = %job.delivery_id, "no such delivery; job dropped");
            return Ok(DeliveryOutcome::Skipped);
        };
        if delivery.status.is_final() {
            return Ok(DeliveryOutcome::Skipped);
        }
        let attempts = delivery.attempts;
        let settings = store.settings(&job.tenant_id).await?.unwrap_or_default();
        let now = chrono::Utc::now();
        let request = match outbound(
            &settings,
            &self.ports.email_policy,
            &delivery,
            now.timestamp(),
        ) {
            Ok(request) => request,
            Err(why) => {
                delivery.status = DeliveryStatus::Cancelled;
                delivery.next_attempt_at = None;
                delivery.last_error = Some(why);
                return Ok(match store.update_delivery(&delivery, attempts).await? {
                    true => DeliveryOutcome::Cancelled,
                    false => DeliveryOutcome::Skipped,
                });
            }
        };
        let result = match &request {
            // The sender checks the URL and every address it connects to.
            Outbound::Post(post) => self.ports.sender.post(post).await,
            Outbound::Email(message) => self.ports.email.send(message).await.map(|()| 200),
        };
        delivery.attempts = attempts + 1;
        let error = match result {
            Ok(status) if (200..300).contains(&status) => {
                delivery.status = DeliveryStatus::Delivered;
                delivery.delivered_at = Some(rfc3339(chrono::Utc::now()));
                delivery.next_attempt_at = None;
                delivery.last_error = None;
                return Ok(match store.update_delivery(&delivery, attempts).await? {
                    true => DeliveryOutcome::Delivered,
                    false => DeliveryOutcome::Skipped,
                });
            }
            Ok(status) => format!("HTTP {status}"),
            Err(e) => e.to_string(),
        };
        tracing::info!(tenant_id = %delivery.tenant_id, delivery_id = %delivery.delivery_id, attempt = delivery.attempts, error = %error, "delivery failed");
        delivery.last_error = Some(error.chars().take(MAX_ERROR).collect());
        let delay = retry::delay_after(delivery.attempts, rand::random::<f64>());
        let created = chrono::DateTime::parse_from_rfc3339(&delivery.created_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(StoreError::corrupt)?;
        let next = chrono::Utc::now() + delay;
        let outcome =
            if next - created > chrono::Duration::from_std(retry::RETRY_FOR).unwrap_or_default() {
                delivery.status = DeliveryStatus::DeadLettered;
                delivery.next_attempt_at = None;
                DeliveryOutcome::DeadLettered
            } else {
                delivery.status = DeliveryStatus::Retrying;
                delivery.next_attempt_at = Some(rfc3339(next));
                DeliveryOutcome::Retrying(delay)
            };
        if !store.update_delivery(&delivery, attempts).await? {
            return Ok(DeliveryOutcome::Skipped);
        }
        if let DeliveryOutcome::Retrying(delay) = outcome {
            self.ports.queue.send(job, delay).await?;
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::notify::{NotificationEvent, SlackTarget, WebhookTarget};

    fn settings(with_slack: bool) -> NotificationSettings {
        NotificationSettings {
            webhooks: vec![WebhookTarget {
                id: "wh_1".into(),
                url: "https://hooks.example.com/ledgix".into(),
                secret: "a-secret-of-some-length".into(),
                events: vec![NotificationEvent::ReviewPending],
            }],
            slack: with_slack.then(|| SlackTarget {
                webhook_url: "https://hooks.slack.com/services/T0/B0/x".into(),
                signing_secret: "8f742231b10e8888abcd99yyyzzz85a5".into(),
                reviewer_user_ids: vec!["U2CERLKJA".into()],
                events: vec![NotificationEvent::ReviewPending],
            }),
            email: with_slack.then(|| crate::notify::EmailTarget {
                to: vec!["ops@example.com".into()],
                from: "vault@alerts.example.com".into(),
                events: vec![NotificationEvent::ReviewPending],
            }),
        }
    }

    #[test]
    fn an_email_delivery_is_rendered_for_its_recipients_while_its_sender_is_allowed() {
        let any = EmailPolicy::default();
        let email_delivery = delivery(email::TARGET_ID, pending());
        match outbound(&settings(true), &any, &email_delivery, 0) {
            Ok(Outbound::Email(message)) => {
                assert_eq!(message.to, ["ops@example.com"]);
                assert!(message.text.contains(&email_delivery.delivery_id));
            }
            other => panic!("{other:?}"),
        }
        let elsewhere = EmailPolicy {
            allowed_from: Some(vec!["other.example.com".into()]),
        };
        let why = outbound(&settings(true), &elsewhere, &email_delivery, 0).expect_err("refused");
        assert!(why.contains("sender identities"), "{why}");
        assert_eq!(
            outbound(&settings(false), &any, &email_delivery, 0)
                .map(|_| ())
                .unwrap_err(),
            "email was removed from the notification settings"
        );
    }

    fn delivery(target_id: &str, body: Value) -> Delivery {
        Delivery::queued(
            "tn_1",
            target_id,
            NotificationEvent::ReviewPending,
            "req-1",
            body,
        )
    }

    fn pending() -> Value {
        json!({"event": "review.pending", "tenant_id": "tn_1", "request_id": "req-1", "tool_name": "pay",
               "tool_args": {"amount": 1}, "reason": "r", "policy_id": "p", "confidence_bucket": "none"})
    }

    #[test]
    fn a_slack_delivery_is_the_block_kit_message_posted_to_the_incoming_webhook_unsigned() {
        let post = post_for(&settings(true), &delivery(slack::TARGET_ID, pending()), 0)
            .expect("slack is configured");
        assert_eq!(post.url, "https://hooks.slack.com/services/T0/B0/x");
        assert!(post
            .headers
            .iter()
            .all(|(name, _)| !name.starts_with("x-ledgix")));
        let body: Value = serde_json::from_slice(&post.body).expect("json");
        assert_eq!(
            body,
            slack::message(NotificationEvent::ReviewPending, &pending())
        );
    }

    #[test]
    fn a_message_update_goes_to_its_response_url() {
        let update = json!({"response_url": "https://hooks.slack.com/actions/T0/1/x",
                            "message": {"replace_original": true, "text": "done"}});
        let post = post_for(
            &settings(true),
            &delivery(slack::RESPONSE_TARGET_ID, update),
            0,
        )
        .expect("slack is configured");
        assert_eq!(post.url, "https://hooks.slack.com/actions/T0/1/x");
        assert_eq!(
            serde_json::from_slice::<Value>(&post.body).expect("json"),
            json!({"replace_original": true, "text": "done"})
        );
    }

    #[test]
    fn a_webhook_delivery_is_signed_and_a_removed_target_cancels() {
        let post = post_for(&settings(false), &delivery("wh_1", pending()), 1).expect("webhook");
        assert!(post
            .headers
            .iter()
            .any(|(name, value)| name == "x-ledgix-signature" && value.starts_with("sha256=")));
        for target in [slack::TARGET_ID, slack::RESPONSE_TARGET_ID] {
            assert_eq!(
                post_for(&settings(false), &delivery(target, pending()), 0).map(|_| ()),
                Err("Slack was removed from the notification settings")
            );
        }
        assert!(post_for(&settings(true), &delivery("wh_gone", pending()), 0).is_err());
        assert!(
            post_for(
                &settings(true),
                &delivery(slack::RESPONSE_TARGET_ID, json!({})),
                0
            )
            .is_err(),
            "an update without its URL"
        );
    }
}
