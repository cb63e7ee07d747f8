use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use ledgix_core::error::StoreError;
use ledgix_core::ports::RateLimiter;
use ledgix_core::ratelimit::{take, Bucket, RateDecision, RateLimit};

/// Token buckets in process memory: one process is the whole vault in embedded mode.
#[derive(Default)]
pub struct MemoryRateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn take(&self, principal: &str, limit: RateLimit) -> Result<RateDecision, StoreError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| StoreError::Unavailable("rate limiter poisoned".into()))?;
        let (bucket, decision) = take(limit, buckets.get(principal).copied(), now_ms);
        buckets.insert(principal.to_string(), bucket);
        Ok(decision)
    }
}
