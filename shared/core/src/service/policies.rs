//! Policies: registration (versioned, content-hashed) and the compiled rules cache that decides clearances.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::idempotency::AnswerScope;
use super::{Idempotency, Principal, Vault};
use crate::error::{VaultError, VaultResult};
use crate::model::{now_rfc3339, PolicyVersion, ReviewSettings};
use crate::policy::{CompiledPolicy, PolicyRegistration};
use crate::ports::Write;
use crate::rego_guard::{self, RegoLimits};

/// Compiled policy versions kept per process (all tenants together); the oldest make room.
pub const COMPILED_POLICY_CACHE_ENTRIES: usize = 4096;
/// `GET /policies`: policies per page unless `limit` says otherwise, and the most `limit` may ask for.
pub const DEFAULT_POLICY_PAGE: usize = 50;
pub const MAX_POLICY_PAGE: usize = 200;

/// One page of `GET /policies`: the latest version of each policy, by `policy_id`; `next` is the cursor
/// of the following page, `None` on the last.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyPage {
    pub policies: Vec<PolicyVersion>,
    pub next: Option<String>,
}

/// How long compiling one module may take on the Rego pool (parse, checks, one dry-run evaluation).
fn compile_deadline(limits: RegoLimits) -> std::time::Duration {
    limits.deadline() + std::time::Duration::from_secs(2)
}

fn compiled_key(tenant_id: &str, version: &PolicyVersion) -> String {
    format!(
        "{tenant_id}\u{0}{}\u{0}{}",
        version.version_id, version.content_hash
    )
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyRegistered {
    pub policy_id: String,
    pub status: String,
    pub message: String,
    pub policy_version_id: String,
    pub policy_content_hash: String,
    pub version: i64,
}

/// What decides a tenant's clearances.
pub struct TenantRules {
    pub policies: Vec<CompiledPolicy>,
    pub settings: ReviewSettings,
    /// Who is notified of what (empty without notification settings).
    pub notifications: crate::notify::NotificationSettings,
}

impl Vault {
    pub(super) async fn tenant_rules(&self, tenant_id: &str) -> VaultResult<Arc<TenantRules>> {
        if let Some(cached) = self.tenants.get(tenant_id) {
            return Ok(cached);
        }
        let versions = self.ports.store.policies(tenant_id).await?;
        let settings = self.ports.store.review_settings(tenant_id).await?;
        let mut policies = Vec::with_capacity(versions.len());
        for version in versions {
            let key = compiled_key(tenant_id, &version);
            let compiled = match self.compiled.get(&key) {
                Some(compiled) => compiled,
                None => self.compile_version(&key, version).await,
            };
            policies.push(compiled);
        }
        let notifications = match &self.notifier {
            Some(notifier) => notifier
                .ports()
                .store
                .settings(tenant_id)
                .await?
                .unwrap_or_default(),
            None => Default::default(),
        };
        let rules = Arc::new(TenantRules {
            policies,
            settings,
            notifications,
        });
        self.tenants.put(tenant_id, rules.clone());
        Ok(rules)
    }

    /// Compile one stored version on the Rego pool and remember it. A version that cannot be compiled (now) is
    /// not remembered (the next read retries) and meanwhile denies: its `rego` stays empty.
    async fn compile_version(&self, key: &str, version: PolicyVersion) -> CompiledPolicy {
        self.compilations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let limits = self.settings.rego_limits;
        if version.rego.as_deref().is_none_or(|r| r.trim().is_empty()) {
            let compiled = CompiledPolicy::with_limits(version, limits);
            self.compiled.put(key, compiled.clone());
            return compiled;
        }
        let job_version = version.clone();
        match rego_guard::evaluate_off_thread(compile_deadline(limits), move || {
            Ok(CompiledPolicy::with_limits(job_version, limits))
        })
        .await
        {
            Ok(compiled) => {
                // A module that failed to compile is not remembered: its dry run may only have been slow.
                if compiled.rego.is_some() {
                    self.compiled.put(key, compiled.clone());
                }
                compiled
            }
            Err(e) => {
                tracing::error!(policy_version_id = %version.version_id, error = %e, "stored rego could not be compiled now");
                CompiledPolicy {
                    version,
                    rego: None,
                }
            }
        }
    }

    /// Policy versions this process has compiled for deciding (each version once while it stays cached).
    pub fn policy_compilations(&self) -> u64 {
        self.compilations.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn register_policy(
        &self,
        principal: &Principal,
        registration: PolicyRegistration,
        idem: Option<&Idempotency>,
    ) -> VaultResult<(bool, PolicyRegistered)> {
        let tenant_id = &principal.tenant_id;
        self.replay(AnswerScope::Tenant(tenant_id), idem).await?;
        let limits = self.settings.rego_limits;
        let checked = registration.clone();
        // Compiling runs the module once: on the Rego pool, never on an async worker.
        rego_guard::evaluate_off_thread(compile_deadline(limits), move || {
            Ok(checked.validate_with(limits))
        })
        .await
        .map_err(|e| {
            VaultError::InvalidPolicy(format!("rego module could not be checked: {e}"))
        })??;
        let content_hash = registration.content_hash()?;
        let current = self.ports.store.policies(tenant_id).await?;
        let latest = current
            .iter()
            .find(|p| p.policy_id == registration.policy_id);
        if let Some(latest) = latest.filter(|p| p.content_hash == content_hash) {
            let body = PolicyRegistered {
                policy_id: latest.policy_id.clone(),
                status: "unchanged".into(),
                message: format!(
                    "policy {} version {} already has this content",
                    latest.policy_id, latest.version
                ),
                policy_version_id: latest.version_id.clone(),
                policy_content_hash: latest.content_hash.clone(),
                version: latest.version,
            };
            if idem.is_some() {
                self.commit_answered(tenant_id, vec![], idem, 200, &body)
                    .await?;
            }
            return Ok((false, body));
        }
        let limit = self.settings.max_policies_per_tenant;
        if latest.is_none() && current.len() >= limit {
            return Err(VaultError::PolicyLimitReached(limit));
        }
        let version = PolicyVersion {
            tenant_id: tenant_id.clone(),
            policy_id: registration.policy_id.clone(),
            version: latest.map_or(1, |p| p.version + 1),
            version_id: uuid::Uuid::new_v4().to_string(),
            content_hash,
            description: registration.description.clone(),
            rules: registration.rules.clone(),
            tools: registration.tools.clone(),
            rego: registration.rego_module().map(str::to_string),
            created_at: now_rfc3339(),
        };
        let body = PolicyRegistered {
            policy_id: version.policy_id.clone(),
            status: "registered".into(),
            message: format!(
                "policy {} registered as version {}",
                version.policy_id, version.version
            ),
            policy_version_id: version.version_id.clone(),
            policy_content_hash: version.content_hash.clone(),
            version: version.version,
        };
        self.commit_answered(tenant_id, vec![Write::PutPolicy(version)], idem, 201, &body)
            .await?;
        self.tenants.invalidate(tenant_id);
        Ok((true, body))
    }

    /// `GET /policies?limit&cursor`: the latest version of each policy, ordered by `policy_id`. `limit` is 1 to
    /// [`MAX_POLICY_PAGE`] (default [`DEFAULT_POLICY_PAGE`]); a larger one is refused, not clamped. `cursor`
    /// is a page's `next`.
    pub async fn list_policies(
        &self,
        principal: &Principal,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> VaultResult<PolicyPage> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let limit = limit.unwrap_or(DEFAULT_POLICY_PAGE);
        if !(1..=MAX_POLICY_PAGE).contains(&limit) {
            return Err(VaultError::InvalidRequest(format!(
                "limit must be between 1 and {MAX_POLICY_PAGE}"
            )));
        }
        let after = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(cursor) => Some(
                URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| {
                        VaultError::InvalidRequest(
                            "cursor is not a `next` value from this endpoint".into(),
                        )
                    })?,
            ),
        };
        let mut policies = self.ports.store.policies(&principal.tenant_id).await?;
        policies.sort_by(|a, b| a.policy_id.cmp(&b.policy_id));
        let mut page: Vec<PolicyVersion> = policies
            .into_iter()
            .filter(|p| {
                after
                    .as_deref()
                    .is_none_or(|after| p.policy_id.as_str() > after)
            })
            .take(limit + 1)
            .collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last()
                .map(|p| URL_SAFE_NO_PAD.encode(p.policy_id.as_bytes()))
        } else {
            None
        };
        Ok(PolicyPage {
            policies: page,
            next,
        })
    }
}
