//! Settings the domain needs, and the seed's defaults every reader of the environment shares; parsed from the
//! environment by the wiring crate (and, for its own variables, the AWS adapters).

use std::time::Duration;

use crate::ratelimit::RateLimit;
use crate::rego_guard::RegoLimits;

/// VAULT_KEY_ID: the `kid` of the signing key.
pub const DEFAULT_KEY_ID: &str = "vault-key-001";
/// VAULT_JWT_ISSUER.
pub const DEFAULT_JWT_ISSUER: &str = "alcv-vault";
/// VAULT_JWT_AUDIENCE.
pub const DEFAULT_JWT_AUDIENCE: &str = "ledgix-sdk";
/// VAULT_MINT_MAX_AGE_SECONDS.
pub const DEFAULT_MINT_MAX_AGE_SECONDS: i64 = 3600;
/// VAULT_MAX_POLICIES_PER_TENANT: most policies (policy ids; versions of one policy count once) per tenant.
pub const DEFAULT_MAX_POLICIES_PER_TENANT: usize = 200;
/// VAULT_LEDGER_ANCHOR_PREFIX: the key prefix of exported anchors.
pub const DEFAULT_ANCHOR_PREFIX: &str = "ledgix";
/// VAULT_LEDGER_LOG_ORIGIN: checkpoint note origins are `<prefix>/<tenant_id>`.
pub const DEFAULT_LOG_ORIGIN: &str = "ledgix-vault";

/// Tenants an anchor round seals at once (VAULT_LEDGER_ANCHOR_CONCURRENCY).
pub const DEFAULT_ANCHOR_CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
pub struct VaultSettings {
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub jwt_ttl_seconds: i64,
    /// VAULT_MINT_MAX_AGE_SECONDS: `/mint-token` re-mints a rules approval for at most this long after the
    /// root approval of its chain; later, the agent must request clearance again.
    pub mint_max_age_seconds: i64,
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
    /// VAULT_LEDGER_ANCHOR_CONCURRENCY: tenants sealed at once in an anchor round.
    pub anchor_concurrency: usize,
    /// Checkpoint note origin is `<prefix>/<tenant_id>`.
    pub log_origin_prefix: String,
    /// VAULT_REGO_TIME_LIMIT_MS and VAULT_REGO_MEMORY_LIMIT_BYTES: what one evaluation of a tenant's Rego
    /// may spend (see `rego_guard`).
    pub rego_limits: RegoLimits,
    /// VAULT_MAX_POLICIES_PER_TENANT: registering a further policy id answers 409 `policy_limit_reached`.
    pub max_policies_per_tenant: usize,
    /// VAULT_JUDGE_*: retries, per-tenant concurrency and retrieval of the judge worker.
    pub judge: crate::judge::JudgeSettings,
    /// VAULT_PUBLIC_URL: where people reach this vault (no trailing slash). Notifications link to its reviewer
    /// page (`<url>/review`); without it they carry no link.
    pub public_url: Option<String>,
}

impl Default for VaultSettings {
    fn default() -> Self {
        VaultSettings {
            jwt_issuer: DEFAULT_JWT_ISSUER.into(),
            jwt_audience: DEFAULT_JWT_AUDIENCE.into(),
            jwt_ttl_seconds: 300,
            mint_max_age_seconds: DEFAULT_MINT_MAX_AGE_SECONDS,
            rate_limit: RateLimit { rps: 20, burst: 40 },
            admin_key_hash: None,
            policy_cache_ttl: Duration::from_secs(5),
            auth_cache_ttl: Duration::from_secs(5),
            ledger_mmd_seconds: 30,
            anchor_batch_size: 500,
            anchor_concurrency: DEFAULT_ANCHOR_CONCURRENCY,
            log_origin_prefix: DEFAULT_LOG_ORIGIN.into(),
            rego_limits: RegoLimits::default(),
            max_policies_per_tenant: DEFAULT_MAX_POLICIES_PER_TENANT,
            judge: crate::judge::JudgeSettings::default(),
            public_url: None,
        }
    }
}
