//! The notifier: records and queues what a commit put in its outbox, and attempts one delivery per job,
//! rescheduling failures (`retry`) until they succeed or 24 hours have passed. At least once: a notifier that
//! dies between sending and recording sends again, with the same `X-Ledgix-Delivery` id.

use std::sync::Arc;
use std::time::Duration;

use super::address::UrlPolicy;
use super::{
    retry, webhook, Delivery, DeliveryJob, DeliveryQueue, DeliveryStatus, NotificationStore,
    SendError, WebhookSender,
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
        let Some(target) = settings.webhook(&delivery.target_id) else {
            delivery.status = DeliveryStatus::Cancelled;
            delivery.next_attempt_at = None;
            delivery.last_error =
                Some("the webhook was removed from the notification settings".into());
            return Ok(match store.update_delivery(&delivery, attempts).await? {
                true => DeliveryOutcome::Cancelled,
                false => DeliveryOutcome::Skipped,
            });
        };
        let now = chrono::Utc::now();
        let request = webhook::request(&delivery, target, now.timestamp());
        let result = match super::address::check_url(&target.url, self.ports.url_policy) {
            Ok(_) => self.ports.sender.post(&request).await,
            Err(why) => Err(SendError::Refused(why)),
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
        tracing::info!(tenant_id = %delivery.tenant_id, delivery_id = %delivery.delivery_id, attempt = delivery.attempts, error = %error, "webhook delivery failed");
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
