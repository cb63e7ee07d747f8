//! The judge queue on SQS FIFO. Group id = tenant + session shard (VAULT_CLEARANCE_SQS_FIFO_GROUP_SHARDS), so
//! one session's requests are judged in order while tenants and sessions proceed in parallel; deduplication
//! id = request id, so a re-sent job within SQS's 5-minute window is dropped.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use ledgix_core::ports::{JudgeJob, JudgeQueue, QueueError};
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

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub fn client(&self) -> &Client {
        &self.client
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
