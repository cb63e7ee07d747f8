//! The judge queue on SQS FIFO. Group id = tenant + session shard (VAULT_CLEARANCE_SQS_FIFO_GROUP_SHARDS), so
//! one session's requests are judged in order while tenants and sessions proceed in parallel; deduplication
//! id = request id, so a re-sent job within SQS's 5-minute window is dropped. `poll` is the long-poller a
//! long-lived process (`ledgix dev --backend aws`) runs in place of the judge-worker Lambda's event source.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use ledgix_core::ports::{JudgeJob, JudgeQueue, QueueError};
use ledgix_core::Vault;
use sha2::{Digest, Sha256};

pub struct SqsJudgeQueue {
    client: Client,
    queue_url: String,
    shards: u32,
}

impl SqsJudgeQueue {
    pub fn new(client: Client, queue_url: impl Into<String>, shards: u32) -> Self {
        SqsJudgeQueue {
            client,
            queue_url: queue_url.into(),
            shards: shards.max(1),
        }
    }

    pub fn group_id(&self, job: &JudgeJob) -> String {
        let digest = Sha256::digest(job.session_id.as_bytes());
        let shard = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % self.shards;
        format!("{}#{shard}", job.tenant_id)
    }
}

#[async_trait]
impl JudgeQueue for SqsJudgeQueue {
    async fn enqueue(&self, job: &JudgeJob) -> Result<(), QueueError> {
        let body =
            serde_json::to_string(job).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_group_id(self.group_id(job))
            .message_deduplication_id(&job.request_id)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(e.into_service_error().to_string()))?;
        Ok(())
    }
}

/// Receive batches for ever and decide each exactly as the judge-worker Lambda does: messages the vault
/// reports failed stay on the queue (redelivered after `visibility_seconds`), the rest are deleted.
pub async fn poll(
    vault: Arc<Vault>,
    sqs: Arc<SqsJudgeQueue>,
    wait_seconds: i32,
    visibility_seconds: i32,
) {
    crate::sqs_poll::poll_forever(
        &sqs.client,
        &sqs.queue_url,
        wait_seconds,
        visibility_seconds,
        "judge jobs",
        |batch| {
            let vault = vault.clone();
            async move {
                let jobs = batch
                    .into_iter()
                    .map(|(id, body)| (id, body.as_deref().and_then(JudgeJob::from_message)))
                    .collect();
                vault.process_judge_batch(jobs).await
            }
        },
    )
    .await
}
