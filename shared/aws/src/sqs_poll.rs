//! The long-poll loop a long-lived process (`ledgix dev --backend aws`) runs in place of a Lambda's SQS event
//! source: receive up to 10 messages, hand their `(message id, body)` pairs to the handler, and delete every
//! message but those whose ids it returns — those are redelivered after the visibility timeout, exactly as a
//! Lambda's partial batch failures are.

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use aws_sdk_sqs::Client;

/// Poll `queue_url` for ever. `what` names the messages in logs.
pub(crate) async fn poll_forever<F, Fut>(
    client: &Client,
    queue_url: &str,
    wait_seconds: i32,
    visibility_seconds: i32,
    what: &'static str,
    mut handle: F,
) where
    F: FnMut(Vec<(String, Option<String>)>) -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    loop {
        let received = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_seconds.clamp(0, 20))
            .visibility_timeout(visibility_seconds)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %DisplayErrorContext(&e), what, "SQS receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            if wait_seconds <= 0 {
                // Short polling: do not spin on an empty queue.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            continue;
        }
        let batch = messages
            .iter()
            .map(|m| {
                (
                    m.message_id().unwrap_or_default().to_string(),
                    m.body().map(str::to_string),
                )
            })
            .collect();
        let failed = handle(batch).await;
        let mut done = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            if failed
                .iter()
                .any(|f| Some(f.as_str()) == message.message_id())
            {
                continue;
            }
            let Some(receipt) = message.receipt_handle() else {
                continue;
            };
            match DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .build()
            {
                Ok(entry) => done.push(entry),
                Err(e) => tracing::warn!(error = %e, what, "SQS delete entry not built"),
            }
        }
        if done.is_empty() {
            continue;
        }
        match client
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(done))
            .send()
            .await
        {
            Ok(out) => {
                for failure in out.failed() {
                    tracing::warn!(code = %failure.code(), message = ?failure.message(), what, "SQS delete failed; the message will be redelivered and skipped");
                }
            }
            Err(e) => {
                tracing::warn!(error = %DisplayErrorContext(&e), what, "SQS delete failed; the messages will be redelivered and skipped")
            }
        }
    }
}
