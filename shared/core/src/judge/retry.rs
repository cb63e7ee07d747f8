//! Retrying model calls: exponential backoff with full jitter (a random wait up to the doubling ceiling, so
//! workers throttled together do not retry together), within a time budget per job. Past the budget the
//! caller gives up and a human decides.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

const FIRST_CEILING: Duration = Duration::from_millis(200);
const MAX_CEILING: Duration = Duration::from_secs(8);

/// The retry budget of one judge job.
#[derive(Debug, Clone, Copy)]
pub struct RetryBudget {
    deadline: Instant,
}

impl RetryBudget {
    pub fn new(budget: Duration) -> Self {
        RetryBudget {
            deadline: Instant::now() + budget,
        }
    }

    /// Time left (zero once spent).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The wait before retry number `attempt` (1 for the first retry), or `None` when it would end past the
    /// budget.
    pub fn next_wait(&self, attempt: u32) -> Option<Duration> {
        let wait = jittered(attempt);
        (Instant::now() + wait < self.deadline).then_some(wait)
    }
}

/// A random wait in [0, min(MAX_CEILING, FIRST_CEILING × 2^(attempt-1))].
pub fn jittered(attempt: u32) -> Duration {
    let ceiling = FIRST_CEILING
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_CEILING);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_under_a_doubling_capped_ceiling() {
        for attempt in 1..40 {
            let ceiling = FIRST_CEILING
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_CEILING);
            for _ in 0..20 {
                assert!(jittered(attempt) <= ceiling);
            }
        }
    }

    #[test]
    fn a_spent_budget_allows_no_further_wait() {
        let budget = RetryBudget::new(Duration::ZERO);
        assert_eq!(budget.next_wait(1), None);
        let roomy = RetryBudget::new(Duration::from_secs(60));
        assert!(roomy.next_wait(1).is_some());
    }
}
