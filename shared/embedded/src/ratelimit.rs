//! Per-principal rate limiting in process memory (`RateLimiter`): the arithmetic is the domain's GCRA
//! (`ledgix_core::ratelimit::Gcra`, the same the DynamoDB limiter applies), so the same bound holds: at most
//! `burst + rps × elapsed` admitted per key in any interval. One TAT per key lives in a map, lost on restart.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use ledgix_core::error::StoreError;
use ledgix_core::ports::RateLimiter;
use ledgix_core::ratelimit::{RateDecision, RateLimit};

/// Keys at which the map is first swept of idle entries; after a sweep, twice what is left (at least this).
const SWEEP_AT: usize = 4096;

/// Theoretical arrival times in process memory: one process is the whole vault in embedded mode.
pub struct MemoryRateLimiter {
    buckets: Mutex<Buckets>,
}

struct Buckets {
    tat_us: HashMap<String, i64>,
    sweep_at: usize,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        MemoryRateLimiter {
            buckets: Mutex::new(Buckets {
                tat_us: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn take(&self, principal: &str, limit: RateLimit) -> Result<RateDecision, StoreError> {
        // The clock is read under the lock: a reading taken before it could be older than the one behind a
        // TAT already stored, and would see the bucket a whole interval fuller than it is.
        let mut buckets = self.lock()?;
        Ok(buckets.step(principal, limit, chrono::Utc::now().timestamp_micros()))
    }
}

impl MemoryRateLimiter {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Buckets>, StoreError> {
        self.buckets
            .lock()
            .map_err(|_| StoreError::Unavailable("rate limiter poisoned".into()))
    }
}

impl Buckets {
    fn step(&mut self, principal: &str, limit: RateLimit, now_us: i64) -> RateDecision {
        let (tat, decision) = limit
            .gcra()
            .step(self.tat_us.get(principal).copied(), now_us);
        if let Some(tat) = tat {
            self.tat_us.insert(principal.to_string(), tat);
        }
        // A TAT in the past is a full bucket, the same as no entry: dropping those changes no decision and
        // keeps the map to the keys active in the last burst window (per-address buckets come and go).
        if self.tat_us.len() >= self.sweep_at {
            self.tat_us.retain(|_, tat| *tat > now_us);
            self.sweep_at = (self.tat_us.len() * 2).max(SWEEP_AT);
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl MemoryRateLimiter {
        fn take_at(
            &self,
            principal: &str,
            limit: RateLimit,
            now_us: i64,
        ) -> Result<RateDecision, StoreError> {
            Ok(self.lock()?.step(principal, limit, now_us))
        }
    }

    #[test]
    fn idle_keys_are_swept_without_changing_decisions() {
        let limiter = MemoryRateLimiter::default();
        let limit = RateLimit { rps: 1, burst: 2 };
        let now = 1_000_000_000;
        assert!(limiter.take_at("busy", limit, now).expect("take").allowed);
        assert!(limiter.take_at("busy", limit, now).expect("take").allowed);
        {
            let mut buckets = limiter.buckets.lock().expect("lock");
            for i in 0..SWEEP_AT {
                buckets.tat_us.insert(format!("idle{i}"), now - i as i64);
            }
        }
        let third = limiter.take_at("busy", limit, now).expect("take");
        assert!(
            !third.allowed,
            "the busy key kept its state through the sweep"
        );
        assert_eq!(third.retry_after_seconds, 1);
        {
            let buckets = limiter.buckets.lock().expect("lock");
            assert_eq!(buckets.tat_us.len(), 1, "idle entries swept");
            assert_eq!(buckets.sweep_at, SWEEP_AT);
        }
        let idle = limiter.take_at("idle7", limit, now).expect("take");
        assert!(idle.allowed, "a swept key starts full, as it would have");
        assert_eq!(idle.remaining, 1);
    }
}
