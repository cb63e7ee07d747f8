//! Token-bucket arithmetic shared by every rate-limit adapter.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second; 0 disables limiting.
    pub rps: u32,
    /// Bucket capacity.
    pub burst: u32,
}

impl RateLimit {
    pub fn enabled(&self) -> bool {
        self.rps > 0
    }
}

/// Stored bucket state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub tokens: f64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_seconds: u64,
    /// Seconds until one token is available (0 when allowed).
    pub retry_after_seconds: u64,
}

impl RateDecision {
    pub fn unlimited() -> Self {
        RateDecision {
            allowed: true,
            limit: 0,
            remaining: 0,
            reset_seconds: 0,
            retry_after_seconds: 0,
        }
    }
}

/// Refill `bucket` up to `now_ms` and try to take one token.
pub fn take(limit: RateLimit, bucket: Option<Bucket>, now_ms: i64) -> (Bucket, RateDecision) {
    let capacity = f64::from(limit.burst.max(1));
    let rate = f64::from(limit.rps);
    let mut state = bucket.unwrap_or(Bucket {
        tokens: capacity,
        updated_at_ms: now_ms,
    });
    let elapsed = ((now_ms - state.updated_at_ms).max(0) as f64) / 1000.0;
    state.tokens = (state.tokens + elapsed * rate).min(capacity);
    state.updated_at_ms = now_ms;
    let allowed = state.tokens >= 1.0;
    if allowed {
        state.tokens -= 1.0;
    }
    let missing_for_one = (1.0 - state.tokens).max(0.0);
    let decision = RateDecision {
        allowed,
        limit: limit.burst.max(1),
        remaining: state.tokens.floor() as u32,
        reset_seconds: ((capacity - state.tokens) / rate).ceil() as u64,
        retry_after_seconds: if allowed {
            0
        } else {
            (missing_for_one / rate).ceil().max(1.0) as u64
        },
    };
    (state, decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let limit = RateLimit { rps: 2, burst: 3 };
        let mut bucket = None;
        for _ in 0..3 {
            let (b, d) = take(limit, bucket, 0);
            assert!(d.allowed);
            bucket = Some(b);
        }
        let (b, d) = take(limit, bucket, 0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_seconds, 1);
        assert_eq!(d.remaining, 0);
        let (_, d) = take(limit, Some(b), 500);
        assert!(d.allowed, "half a second at 2 rps refills one token");
    }
}
