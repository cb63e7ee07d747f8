//! The vault's use cases, one module each; every HTTP route and the judge worker call exactly one `Vault`
//! method. A use case takes its caller's `Idempotency` as a parameter and handles replays itself.

mod admin;
mod clearance;
mod idempotency;
mod judge;
mod judging;
mod notifications;
mod policies;
mod reviews;
mod slack;
mod tokens;

use std::sync::Arc;

use crate::apikey;
use crate::cache::{BoundedCache, TtlCache};
use crate::config::VaultSettings;
use crate::error::{VaultError, VaultResult};
use crate::ledger::LedgerEvent;
use crate::ports::{
    AnchorSink, ControlPlane, JudgeModel, JudgeQueue, RateLimiter, Signer, TenantStore, UsageMeter,
};
use crate::ratelimit::RateDecision;
use crate::roles::{self, Role};

pub use admin::{ApiKeyCreated, ApiKeyRequest, ApiKeyView, TenantCreated};
pub use clearance::MAX_TOOL_NAME;
pub use idempotency::Idempotency;
pub use notifications::{DeliveryView, MAX_DELIVERY_PAGE};
pub use policies::{
    PolicyPage, PolicyRegistered, TenantRules, DEFAULT_POLICY_PAGE, MAX_POLICY_PAGE,
};
pub use reviews::{PendingReview, ReviewDecisionRequest, ReviewSettingsUpdate};
pub use slack::{SlackInteractionAnswer, NOT_A_REVIEWER};
pub use tokens::{ConsumeRequest, ConsumeView, MintRequest, MintView};

/// The caller behind a tenant API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: String,
    pub key_id: String,
    pub roles: Vec<Role>,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// 403 `forbidden_role` unless the key holds one of `needed`.
    pub fn require_any(&self, needed: &[Role]) -> VaultResult<()> {
        roles::require_any(&self.roles, needed)
    }
}

/// Everything the vault is wired to.
pub struct VaultPorts {
    pub control: Arc<dyn ControlPlane>,
    pub store: Arc<dyn TenantStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub signer: Arc<dyn Signer>,
    pub queue: Arc<dyn JudgeQueue>,
    /// `None`: no judge configured; plain-English policies go straight to human review.
    pub judge: Option<Arc<dyn JudgeModel>>,
    /// Where checkpoints and tiles are exported; `None` seals without exporting.
    pub anchor: Option<Arc<dyn AnchorSink>>,
    pub usage: Arc<dyn UsageMeter>,
    /// Notification settings, delivery log, queue and sender; `None` (tests of other things) notifies no one
    /// and answers 503 to the notification settings routes.
    pub notify: Option<crate::notify::NotifyPorts>,
}

pub struct Vault {
    pub(crate) settings: VaultSettings,
    pub(crate) ports: VaultPorts,
    /// Compiled policies and review settings per tenant: read on every clearance.
    tenants: TtlCache<Arc<TenantRules>>,
    /// Compiled policy versions by tenant, version id and content hash: a tenant's rules expiring recompiles
    /// only versions not seen before.
    compiled: BoundedCache<crate::policy::CompiledPolicy>,
    /// Policy versions compiled by this process since it started (cache misses).
    compilations: std::sync::atomic::AtomicU64,
    /// API key hash → principal (or `None` for an unknown or revoked key).
    principals: TtlCache<Option<Principal>>,
    /// Model calls in flight per tenant (VAULT_JUDGE_TENANT_CONCURRENCY).
    judge_gate: crate::judge::gate::TenantGate,
    /// Dispatches the deliveries decisions queue (built from `ports.notify`).
    notifier: Option<crate::notify::Notifier>,
}

impl Vault {
    pub fn new(settings: VaultSettings, ports: VaultPorts) -> Self {
        Vault {
            tenants: TtlCache::new(settings.policy_cache_ttl),
            compiled: BoundedCache::new(policies::COMPILED_POLICY_CACHE_ENTRIES),
            compilations: std::sync::atomic::AtomicU64::new(0),
            principals: TtlCache::new(settings.auth_cache_ttl),
            judge_gate: crate::judge::gate::TenantGate::new(settings.judge.tenant_concurrency),
            notifier: ports.notify.clone().map(crate::notify::Notifier::new),
            settings,
            ports,
        }
    }

    pub fn settings(&self) -> &VaultSettings {
        &self.settings
    }

    /// The configured judge's backend name (`bedrock`, `openai`, `http`, `stub`), if any.
    pub fn judge_backend(&self) -> Option<&str> {
        self.ports.judge.as_deref().map(|j| j.backend())
    }

    // ----- authentication, rate limiting, metering -----------------------------------------------------

    pub async fn authenticate(&self, api_key: &str) -> VaultResult<Principal> {
        if api_key.is_empty() || api_key.len() > 512 {
            return Err(VaultError::Unauthorized);
        }
        let key_hash = apikey::hash(api_key);
        let principal = match self.principals.get(&key_hash) {
            Some(cached) => cached,
            None => {
                let record = self.ports.control.api_key_by_hash(&key_hash).await?;
                let principal = record.filter(|key| !key.revoked).map(|key| Principal {
                    tenant_id: key.tenant_id,
                    key_id: key.key_id,
                    roles: key.roles,
                });
                self.principals.put(&key_hash, principal.clone());
                principal
            }
        };
        principal.ok_or(VaultError::Unauthorized)
    }

    pub fn authenticate_admin(&self, admin_key: &str) -> VaultResult<()> {
        match &self.settings.admin_key_hash {
            Some(stored) if apikey::matches(admin_key, stored) => Ok(()),
            _ => Err(VaultError::Unauthorized),
        }
    }

    pub async fn rate_limit(&self, principal: &Principal) -> VaultResult<RateDecision> {
        let limit = self.settings.rate_limit;
        if !limit.enabled() {
            return Ok(RateDecision::unlimited());
        }
        Ok(self.ports.limiter.take(&principal.key_id, limit).await?)
    }

    /// Count one billable event. Metering never fails a decision: a lost count is logged, not raised.
    async fn meter(&self, tenant_id: &str, metric: &str) {
        self.meter_count(tenant_id, metric, 1).await;
    }

    /// Add `count` to a usage counter (tokens, judgements); zero counts nothing.
    async fn meter_count(&self, tenant_id: &str, metric: &str, count: u64) {
        if count == 0 {
            return;
        }
        let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
        if let Err(e) = self
            .ports
            .usage
            .record(tenant_id, &day, metric, count)
            .await
        {
            tracing::warn!(tenant_id, metric, error = %e, "usage not recorded");
        }
    }

    /// The tenant's usage counters for one UTC day (`YYYY-MM-DD`).
    pub async fn usage(&self, principal: &Principal, day: &str) -> VaultResult<Vec<(String, u64)>> {
        if chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_err() {
            return Err(VaultError::InvalidRequest("day must be YYYY-MM-DD".into()));
        }
        Ok(self.ports.usage.usage(&principal.tenant_id, day).await?)
    }

    // ----- ledger ----------------------------------------------------------------------------------------

    pub async fn ledger(
        &self,
        principal: &Principal,
        limit: usize,
    ) -> VaultResult<Vec<LedgerEvent>> {
        Ok(self
            .ports
            .store
            .ledger_tail(&principal.tenant_id, page_limit(limit, MAX_LEDGER_PAGE)?)
            .await?)
    }
}

/// The most events one `GET /ledger` returns (`limit`'s documented maximum).
pub const MAX_LEDGER_PAGE: usize = 500;

/// A page size from a query: within 1..=`max` (the documented bounds), else 422 `invalid_request`, never clamped.
pub(crate) fn page_limit(limit: usize, max: usize) -> VaultResult<usize> {
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(VaultError::InvalidRequest(format!(
            "limit must be between 1 and {max}"
        )))
    }
}

/// Ids come from URLs; one that cannot exist (NUL, absurd length) is simply not found, before any store sees it.
fn known_id(id: &str, what: &'static str) -> VaultResult<()> {
    if id.is_empty() || id.len() > 256 || id.contains('\0') {
        return Err(VaultError::NotFound(what));
    }
    Ok(())
}
