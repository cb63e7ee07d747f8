//! Settings the domain needs; parsed from the environment by the api crate.

use std::time::Duration;

use crate::ratelimit::RateLimit;

#[derive(Debug, Clone)]
pub struct VaultSettings {
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub jwt_ttl_seconds: i64,
    pub rate_limit: RateLimit,
    /// SHA-256 of the administration key; administration routes are closed when absent.
    pub admin_key_hash: Option<String>,
    /// How long a tenant's policy set is cached before re-reading the store. Registrations through this
    /// process invalidate the cache at once; the TTL bounds staleness across processes.
    pub policy_cache_ttl: Duration,
    /// How long an API key lookup is cached. Revocations through this process apply at once; the TTL
    /// bounds how long another process may still accept a revoked key.
    pub auth_cache_ttl: Duration,
    /// Maximum merge delay promised in checkpoints: the anchor interval.
    pub ledger_mmd_seconds: i64,
    /// Most events sequenced per tenant per anchor round.
    pub anchor_batch_size: usize,
    /// Checkpoint note origin is `<prefix>/<tenant_id>`.
    pub log_origin_prefix: String,
}

impl Default for VaultSettings {
    fn default() -> Self {
        VaultSettings {
            jwt_issuer: "alcv-vault".into(),
            jwt_audience: "ledgix-sdk".into(),
            jwt_ttl_seconds: 300,
            rate_limit: RateLimit { rps: 20, burst: 40 },
            admin_key_hash: None,
            policy_cache_ttl: Duration::from_secs(5),
            auth_cache_ttl: Duration::from_secs(5),
            ledger_mmd_seconds: 30,
            anchor_batch_size: 500,
            log_origin_prefix: "ledgix-vault".into(),
        }
    }
}
