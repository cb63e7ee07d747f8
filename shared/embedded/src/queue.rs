//! The judge queue in process memory (`JudgeQueue`): a bounded channel, drained by worker tasks that run each
//! job through `Vault::process_judge_job`, retry it with backoff, and hand it to human review when it keeps
//! failing. Jobs lost with the process are re-queued at start from the clearances still `processing`
//! (`SqliteStore::processing_jobs`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ledgix_core::ports::{JudgeJob, JudgeQueue, QueueError};
use ledgix_core::Vault;
use tokio::sync::{mpsc, Mutex};

/// The in-process judge queue (VAULT_CLEARANCE_ASYNC_QUEUE_SIZE deep).
pub struct EmbeddedQueue {
    sender: mpsc::Sender<JudgeJob>,
    capacity: usize,
}

pub type JudgeReceiver = mpsc::Receiver<JudgeJob>;

impl EmbeddedQueue {
    pub fn new(capacity: usize) -> (Self, JudgeReceiver) {
        let capacity = capacity.max(1);
        let (sender, receiver) = mpsc::channel(capacity);
        (EmbeddedQueue { sender, capacity }, receiver)
    }
}

#[async_trait]
impl JudgeQueue for EmbeddedQueue {
    async fn enqueue(&self, job: &JudgeJob) -> Result<(), QueueError> {
        self.sender.try_send(job.clone()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Saturated,
            mpsc::error::TrySendError::Closed(_) => {
                QueueError::Unavailable("judge workers stopped".into())
            }
        })
    }

    /// Past 90% full: refuse new judge work with 429 so callers back off before anything is dropped.
    fn saturated(&self) -> bool {
        self.sender.capacity() * 10 < self.capacity
    }
}

/// Attempts per job before a human is asked to decide instead.
const MAX_ATTEMPTS: u32 = 4;

/// Start `workers` tasks draining the queue into `Vault::process_judge_job`.
pub fn spawn_judge_workers(vault: Arc<Vault>, receiver: JudgeReceiver, workers: usize) {
    let receiver = Arc::new(Mutex::new(receiver));
    for _ in 0..workers.max(1) {
        let vault = vault.clone();
        let receiver = receiver.clone();
        tokio::spawn(async move {
            loop {
                let job = { receiver.lock().await.recv().await };
                let Some(job) = job else { break };
                run_job(&vault, &job).await;
            }
        });
    }
}

async fn run_job(vault: &Vault, job: &JudgeJob) {
    for attempt in 1..=MAX_ATTEMPTS {
        match vault.process_judge_job(job).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(request_id = %job.request_id, attempt, error = %e, "judge job failed");
                tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt))).await;
            }
        }
    }
    if let Err(e) = vault.abandon_judge_job(job).await {
        tracing::error!(request_id = %job.request_id, error = %e, "could not route failed judge job to review");
    }
}
