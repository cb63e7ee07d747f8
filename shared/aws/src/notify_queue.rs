//! The notifier's queue on a standard SQS queue (VAULT_NOTIFY_SQS_QUEUE_URL, with a dead-letter queue after 5
//! receives). A message is a `DeliveryJob` as JSON — tenant and delivery id, nothing secret — sent with
//! `DelaySeconds` for retries. Order does not matter and a duplicate is harmless (the store's conditional
//! update lets one attempt through), so the queue need not be FIFO.
//!
//! `poll_notifications` is the long-poller a long-lived process (`ledgix dev --backend aws`) runs in place of
//! the notifier Lambda's event source; `deliver_messages` is what both do with a batch: the Lambda turns the ids
//! it returns into its partial batch failures.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::Client;
use ledgix_core::error::StoreError;
use ledgix_core::notify::{DeliveryJob, DeliveryQueue, Notifier};

/// SQS's longest `DelaySeconds` (15 minutes).
pub const MAX_DELAY_SECONDS: i32 = 900;

pub struct SqsDeliveryQueue {
    client: Client,
    queue_url: String,
}

impl SqsDeliveryQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsDeliveryQueue {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

/// `delay` as SQS `DelaySeconds`: rounded up to whole seconds, at most 15 minutes.
pub fn delay_seconds(delay: Duration) -> i32 {
    let seconds = delay
        .as_secs()
        .saturating_add(u64::from(delay.subsec_nanos() > 0));
    i32::try_from(seconds).map_or(MAX_DELAY_SECONDS, |s| s.min(MAX_DELAY_SECONDS))
}

#[async_trait]
impl DeliveryQueue for SqsDeliveryQueue {
    async fn send(&self, job: &DeliveryJob, delay: Duration) -> Result<(), StoreError> {
        let body = serde_json::to_string(job).map_err(StoreError::corrupt)?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay_seconds(delay))
            .send()
            .await
            .map_err(|e| StoreError::unavailable(DisplayErrorContext(&e)))?;
        Ok(())
    }
}

/// A queue message body as the job it carries.
pub fn parse_delivery_job(body: &str) -> Result<DeliveryJob, serde_json::Error> {
    serde_json::from_str(body)
}

/// Attempt each message's delivery (concurrently: one slow receiver does not hold up the others) and return
/// the ids of the messages to keep for redelivery: those whose attempt failed with a store or queue error.
/// A message whose body is not a job is logged and not returned (deleting it: another receive cannot make it
/// one). `messages` are `(message id, body)`.
pub async fn deliver_messages(
    notifier: &Arc<Notifier>,
    messages: Vec<(String, Option<String>)>,
) -> Vec<String> {
    let mut attempts = Vec::with_capacity(messages.len());
    for (message_id, body) in messages {
        let job = match body.as_deref().map(parse_delivery_job) {
            Some(Ok(job)) => job,
            Some(Err(e)) => {
                tracing::warn!(message_id = %message_id, error = %e, "notification message is not a delivery job; dropped");
                continue;
            }
            None => {
                tracing::warn!(message_id = %message_id, "notification message has no body; dropped");
                continue;
            }
        };
        let notifier = notifier.clone();
        let attempt = tokio::spawn(async move { notifier.deliver(&job).await });
        attempts.push((message_id, attempt));
    }
    let mut failed = Vec::new();
    for (message_id, attempt) in attempts {
        match attempt.await {
            Ok(Ok(outcome)) => {
                tracing::debug!(message_id = %message_id, outcome = ?outcome, "notification job done")
            }
            Ok(Err(e)) => {
                tracing::warn!(message_id = %message_id, error = %e, "notification job failed; left for redelivery");
                failed.push(message_id);
            }
            Err(e) => {
                tracing::error!(message_id = %message_id, error = %e, "notification job panicked; left for redelivery");
                failed.push(message_id);
            }
        }
    }
    failed
}

/// Receive batches for ever and attempt each job as the notifier Lambda does: messages whose attempt failed stay
/// on the queue (redelivered after `visibility_seconds`, dead-lettered after the queue's receive limit), the
/// rest are deleted.
pub async fn poll_notifications(
    notifier: Arc<Notifier>,
    queue: Arc<SqsDeliveryQueue>,
    wait_seconds: i32,
    visibility_seconds: i32,
) {
    crate::sqs_poll::poll_forever(
        &queue.client,
        &queue.queue_url,
        wait_seconds,
        visibility_seconds,
        "notification jobs",
        |batch| {
            let notifier = notifier.clone();
            async move { deliver_messages(&notifier, batch).await }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_whole_seconds_and_stop_at_fifteen_minutes() {
        assert_eq!(delay_seconds(Duration::ZERO), 0);
        assert_eq!(delay_seconds(Duration::from_millis(1)), 1);
        assert_eq!(delay_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(delay_seconds(Duration::from_secs(2)), 2);
        assert_eq!(delay_seconds(Duration::from_secs(900)), 900);
        assert_eq!(delay_seconds(Duration::from_millis(900_001)), 900);
        assert_eq!(delay_seconds(Duration::MAX), 900);
    }

    #[test]
    fn a_job_is_read_from_its_json() {
        let job = DeliveryJob {
            tenant_id: "t1".into(),
            delivery_id: "dl_1".into(),
        };
        let body = serde_json::to_string(&job).expect("json");
        assert_eq!(parse_delivery_job(&body).expect("job"), job);
        assert!(parse_delivery_job("not json").is_err());
        assert!(parse_delivery_job("{\"tenant_id\":\"t1\"}").is_err());
    }
}
