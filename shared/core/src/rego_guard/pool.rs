//! Where evaluations run: a small pool of dedicated threads with large stacks and a bounded queue, never the
//! async workers; callers stop waiting at the deadline and fail closed.

use super::*;

// ----- where evaluations run --------------------------------------------------------------------------------

type Job = Box<dyn FnOnce() + Send>;

/// A small pool of dedicated threads (large stacks) for Rego; its queue is bounded.
struct Pool {
    sender: SyncSender<Job>,
}

fn pool() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<Pool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 16);
        let (sender, receiver) = mpsc::sync_channel::<Job>(workers * 32);
        let receiver = std::sync::Arc::new(Mutex::new(receiver));
        let mut started = 0;
        for i in 0..workers {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rego-{i}"))
                .stack_size(16 * 1024 * 1024)
                .spawn(move || loop {
                    let job = match receiver.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                });
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then_some(Pool { sender })
    })
    .as_ref()
}

/// Where a pool job's answer goes, and whether anyone still waits for it.
trait Reply<T>: Send + 'static {
    fn wanted(&self) -> bool;
    fn send(self, result: Result<T, String>);
}

impl<T: Send + 'static> Reply<T> for tokio::sync::oneshot::Sender<Result<T, String>> {
    fn wanted(&self) -> bool {
        !self.is_closed()
    }
    fn send(self, result: Result<T, String>) {
        let _ = tokio::sync::oneshot::Sender::send(self, result);
    }
}

impl<T: Send + 'static> Reply<T> for mpsc::SyncSender<Result<T, String>> {
    fn wanted(&self) -> bool {
        true
    }
    fn send(self, result: Result<T, String>) {
        let _ = mpsc::SyncSender::send(&self, result);
    }
}

fn submit<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, String> + Send + 'static,
    reply: impl Reply<T>,
) -> Result<(), String> {
    let pool = pool().ok_or("no rego worker thread could be started")?;
    let wrapped: Job = Box::new(move || {
        // A job that waited in the queue past its caller's deadline is dropped, not run.
        if !reply.wanted() {
            return;
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
            .unwrap_or_else(|_| Err("rego evaluation panicked".to_string()));
        reply.send(result);
    });
    match pool.sender.try_send(wrapped) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(_)) => Err("rego evaluation pool is saturated".into()),
        Err(TrySendError::Disconnected(_)) => Err("rego evaluation pool stopped".into()),
    }
}

fn too_slow(deadline: Duration) -> String {
    format!(
        "rego evaluation exceeded its time limit (abandoned after {} ms)",
        deadline.as_millis()
    )
}

/// Run `job` on the Rego pool and wait at most `deadline` without holding the async worker. A job still
/// running at the deadline is abandoned (a thread cannot be stopped; regorus's own timer and the memory
/// budget end almost all of them shortly after), and the caller gets an error to fail closed on.
pub async fn evaluate_off_thread<T: Send + 'static>(
    deadline: Duration,
    job: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    submit(job, tx)?;
    match tokio::time::timeout(deadline, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err("rego evaluation was dropped".into()),
        Err(_) => Err(too_slow(deadline)),
    }
}

/// [`evaluate_off_thread`] for synchronous callers: the calling thread waits, at most `deadline`.
pub fn evaluate_blocking<T: Send + 'static>(
    deadline: Duration,
    job: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::sync_channel(1);
    submit(job, tx)?;
    match rx.recv_timeout(deadline) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(too_slow(deadline)),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("rego evaluation was dropped".into()),
    }
}
