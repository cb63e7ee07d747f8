//! The notifier's queue in process memory (`DeliveryQueue`): a bounded channel drained by worker tasks that run
//! each job through `Notifier::deliver`. A job sent with a delay waits in its own task, then joins the channel.
//! Jobs lost with the process are queued again at start from the deliveries still queued or retrying
//! (`SqliteStore::unfinished_deliveries`), and from the tenants' outboxes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ledgix_core::error::StoreError;
use ledgix_core::notify::{DeliveryJob, DeliveryQueue, Notifier};
use tokio::sync::{mpsc, Mutex};

/// How long a job whose attempt failed on the store waits before it is tried again.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// The in-process delivery queue.
#[derive(Clone)]
pub struct EmbeddedDeliveryQueue {
    sender: mpsc::Sender<DeliveryJob>,
}

pub type DeliveryReceiver = mpsc::Receiver<DeliveryJob>;

impl EmbeddedDeliveryQueue {
    /// A queue holding at most `capacity` visible jobs (at least one).
    pub fn new(capacity: usize) -> (Self, DeliveryReceiver) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (EmbeddedDeliveryQueue { sender }, receiver)
    }

    /// Hand `job` to a task that waits `delay`, then for room in the channel. The caller does not wait: a worker
    /// re-queueing a job must never block on the channel it drains.
    fn send_later(&self, job: DeliveryJob, delay: Duration) {
        let sender = self.sender.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Err(mpsc::error::SendError(job)) = sender.send(job).await {
                // Not lost: the delivery is still queued or retrying in the store, and queued again at start.
                tracing::warn!(tenant_id = %job.tenant_id, delivery_id = %job.delivery_id,
                    "notifier workers stopped; delayed delivery job not queued");
            }
        });
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("notifier workers stopped".into())
}

#[async_trait]
impl DeliveryQueue for EmbeddedDeliveryQueue {
    async fn send(&self, job: &DeliveryJob, delay: Duration) -> Result<(), StoreError> {
        if !delay.is_zero() {
            if self.sender.is_closed() {
                return Err(stopped());
            }
            self.send_later(job.clone(), delay);
            return Ok(());
        }
        match self.sender.try_send(job.clone()) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(job)) => {
                tracing::debug!(delivery_id = %job.delivery_id, "delivery queue full; job waits for room");
                self.send_later(job, Duration::ZERO);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(stopped()),
        }
    }
}

/// Start `workers` tasks draining the queue into `Notifier::deliver`. A job whose attempt fails on the store
/// is queued again after 5 seconds, through the notifier's own queue.
pub fn spawn_notifier_workers(notifier: Arc<Notifier>, receiver: DeliveryReceiver, workers: usize) {
    let receiver = Arc::new(Mutex::new(receiver));
    for _ in 0..workers.max(1) {
        let notifier = notifier.clone();
        let receiver = receiver.clone();
        tokio::spawn(async move {
            loop {
                let job = { receiver.lock().await.recv().await };
                let Some(job) = job else { break };
                run_job(&notifier, &job).await;
            }
        });
    }
}

async fn run_job(notifier: &Notifier, job: &DeliveryJob) {
    match notifier.deliver(job).await {
        Ok(outcome) => {
            tracing::debug!(tenant_id = %job.tenant_id, delivery_id = %job.delivery_id, ?outcome, "delivery attempted");
        }
        Err(StoreError::Corrupt(e)) => {
            // Reading it again cannot help: left as it is in the log, not retried every few seconds forever.
            tracing::error!(tenant_id = %job.tenant_id, delivery_id = %job.delivery_id, error = %e,
                "delivery cannot be read; job dropped");
        }
        Err(e) => {
            tracing::warn!(tenant_id = %job.tenant_id, delivery_id = %job.delivery_id, error = %e,
                "delivery attempt failed on the store; retried in 5 s");
            if let Err(e) = notifier.ports().queue.send(job, STORE_RETRY).await {
                tracing::error!(tenant_id = %job.tenant_id, delivery_id = %job.delivery_id, error = %e,
                    "could not queue the delivery again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn job(id: &str) -> DeliveryJob {
        DeliveryJob {
            tenant_id: "t".into(),
            delivery_id: id.into(),
        }
    }

    #[tokio::test]
    async fn a_delayed_job_arrives_after_its_delay_and_after_an_immediate_one() {
        let (queue, mut receiver) = EmbeddedDeliveryQueue::new(8);
        let start = Instant::now();
        queue
            .send(&job("dl_late"), Duration::from_millis(300))
            .await
            .expect("send delayed");
        queue
            .send(&job("dl_now"), Duration::ZERO)
            .await
            .expect("send now");
        let first = receiver.recv().await.expect("first");
        assert_eq!(first.delivery_id, "dl_now");
        assert!(start.elapsed() < Duration::from_millis(300));
        let second = receiver.recv().await.expect("second");
        assert_eq!(second.delivery_id, "dl_late");
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "arrived after {:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_full_queue_neither_blocks_the_sender_nor_drops_the_job() {
        let (queue, mut receiver) = EmbeddedDeliveryQueue::new(1);
        queue
            .send(&job("dl_1"), Duration::ZERO)
            .await
            .expect("send");
        tokio::time::timeout(
            Duration::from_secs(1),
            queue.send(&job("dl_2"), Duration::ZERO),
        )
        .await
        .expect("the sender does not wait for room")
        .expect("send");
        assert_eq!(receiver.recv().await.expect("job").delivery_id, "dl_1");
        assert_eq!(receiver.recv().await.expect("job").delivery_id, "dl_2");
    }

    #[tokio::test]
    async fn a_closed_queue_is_unavailable() {
        let (queue, receiver) = EmbeddedDeliveryQueue::new(4);
        drop(receiver);
        for delay in [Duration::ZERO, Duration::from_millis(10)] {
            assert!(matches!(
                queue.send(&job("dl_1"), delay).await,
                Err(StoreError::Unavailable(_))
            ));
        }
    }
}
