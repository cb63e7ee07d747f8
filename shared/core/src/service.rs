//! The vault's use cases. Every HTTP route and the judge worker call exactly one method here.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::apikey;
use crate::cache::TtlCache;
use crate::config::VaultSettings;
use crate::error::{Conflict, StoreError, VaultError, VaultResult};
use crate::hashing::{intent_hash, tool_args_hash};
use crate::ledger::{EventDraft, LedgerEvent};
use crate::model::{
    now_rfc3339, ApiKeyRecord, ClearanceRecord, ClearanceRequest, ClearanceStatus, ClearanceView,
    ConfidenceBucket, DecisionSource, IdempotencyRecord, PolicyVersion, ReviewSettings, Tenant,
};
use crate::policy::{self, CompiledPolicy, PolicyRegistration, RegoDecision};
use crate::ports::{
    AnchorSink, ControlPlane, Judge, JudgeError, JudgeJob, JudgeQueue, JudgeVerdict, RateLimiter,
    Signer, TenantStore, UsageMeter, Write,
};
use crate::ratelimit::RateDecision;
use crate::token::{self, ApprovalClaims, PublicKey};

pub const MAX_TOOL_NAME: usize = 256;
pub const ADMIN_SCOPE: &str = "admin";
pub const CONSUME_SCOPE_SUFFIX: &str = "#consume";

/// Idempotency scope of `/consume-token` answers: they are stored with the token burn, not the ledger.
pub fn consume_scope(tenant_id: &str) -> String {
    format!("{tenant_id}{CONSUME_SCOPE_SUFFIX}")
}

pub fn is_consume_scope(scope: &str) -> bool {
    scope.ends_with(CONSUME_SCOPE_SUFFIX)
}

/// The caller behind a tenant API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: String,
    pub key_id: String,
}

/// An `Idempotency-Key` with the hash of the request it arrived on and the status a success answers with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
    pub success_status: u16,
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

/// `POST /mint-token` as the SDK's decision cache sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct MintRequest {
    pub tool_name: String,
    #[serde(default = "crate::model::empty_object")]
    pub tool_args: Value,
    #[serde(default)]
    pub agent_id: String,
    #[serde(default)]
    pub session_id: String,
    pub original_request_id: String,
    #[serde(default)]
    pub policy_version_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MintView {
    pub token: String,
    pub request_id: String,
    pub original_request_id: String,
    pub reason: String,
    pub status: String,
    pub decision_status: String,
    pub policy_version_id: String,
    pub policy_content_hash: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConsumeRequest {
    pub token: String,
    #[serde(default)]
    pub tool_name: Option<String>,
    #[serde(default)]
    pub tool_args: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsumeView {
    pub consumed: bool,
    pub jti: String,
    pub claims: ApprovalClaims,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReviewDecisionRequest {
    pub approved: bool,
    #[serde(default)]
    pub review_reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PendingReview {
    pub request_id: String,
    pub status: String,
    pub tool_name: String,
    pub tool_args: Value,
    pub agent_id: String,
    pub session_id: String,
    pub context: Value,
    pub reason: String,
    pub reason_code: Option<String>,
    pub confidence_bucket: String,
    pub policy_id: String,
    pub policy_version_id: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantCreated {
    pub tenant_id: String,
    pub name: String,
    pub key_id: String,
    pub api_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiKeyCreated {
    pub key_id: String,
    pub tenant_id: String,
    pub api_key: String,
}

/// Everything the vault is wired to.
pub struct VaultPorts {
    pub control: Arc<dyn ControlPlane>,
    pub store: Arc<dyn TenantStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub signer: Arc<dyn Signer>,
    pub queue: Arc<dyn JudgeQueue>,
    /// `None`: no judge configured; plain-English policies go straight to human review.
    pub judge: Option<Arc<dyn Judge>>,
    /// Where checkpoints and tiles are exported; `None` seals without exporting.
    pub anchor: Option<Arc<dyn AnchorSink>>,
    pub usage: Arc<dyn UsageMeter>,
}

pub struct Vault {
    pub(crate) settings: VaultSettings,
    pub(crate) ports: VaultPorts,
    /// Compiled policies and review settings per tenant: read on every clearance.
    tenants: TtlCache<Arc<TenantRules>>,
    /// API key hash → principal (or `None` for an unknown or revoked key).
    principals: TtlCache<Option<Principal>>,
}

/// What decides a tenant's clearances.
pub struct TenantRules {
    pub policies: Vec<CompiledPolicy>,
    pub settings: ReviewSettings,
}

/// How a clearance was decided, before it is written.
struct Decision {
    status: ClearanceStatus,
    source: DecisionSource,
    reason: String,
    reason_code: Option<String>,
    confidence_bucket: ConfidenceBucket,
    citations: Vec<Value>,
}

impl Vault {
    pub fn new(settings: VaultSettings, ports: VaultPorts) -> Self {
        Vault {
            tenants: TtlCache::new(settings.policy_cache_ttl),
            principals: TtlCache::new(settings.auth_cache_ttl),
            settings,
            ports,
        }
    }

    pub fn settings(&self) -> &VaultSettings {
        &self.settings
    }

    // ----- authentication, rate limiting, idempotency -------------------------------------------------

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

    /// A stored response for this key, if the request was seen before (`Replay`), or a 422 when the key
    /// was used for a different request.
    pub async fn check_idempotency(&self, scope: &str, idem: &Idempotency) -> VaultResult<()> {
        let stored = if scope == ADMIN_SCOPE {
            self.ports.control.idempotency(scope, &idem.key).await?
        } else {
            self.ports.store.idempotency(scope, &idem.key).await?
        };
        match stored {
            None => Ok(()),
            Some(record) => Err(replay_or_reused(record, idem)),
        }
    }

    async fn resolve_idempotency_conflict(
        &self,
        scope: &str,
        idem: Option<&Idempotency>,
    ) -> VaultError {
        match idem {
            Some(idem) => match self.check_idempotency(scope, idem).await {
                Err(e) => e,
                Ok(()) => {
                    VaultError::Internal("idempotency conflict without a stored record".into())
                }
            },
            None => VaultError::Internal("idempotency conflict without a key".into()),
        }
    }

    fn idempotency_record<T: Serialize>(
        scope: &str,
        idem: Option<&Idempotency>,
        body: &T,
    ) -> VaultResult<Option<IdempotencyRecord>> {
        idem.map(|idem| {
            Ok(IdempotencyRecord {
                scope: scope.to_string(),
                key: idem.key.clone(),
                request_hash: idem.request_hash.clone(),
                status_code: idem.success_status,
                response_body: serde_json::to_string(body)
                    .map_err(|e| VaultError::Internal(e.to_string()))?,
                created_at: now_rfc3339(),
            })
        })
        .transpose()
    }

    /// Commit tenant writes, mapping an idempotency race to the winner's stored response.
    async fn commit(
        &self,
        tenant_id: &str,
        writes: Vec<Write>,
        idem: Option<&Idempotency>,
    ) -> VaultResult<Vec<i64>> {
        match self.ports.store.commit(tenant_id, writes).await {
            Ok(seqs) => Ok(seqs),
            Err(StoreError::Conflict(Conflict::IdempotencyKey)) => {
                Err(self.resolve_idempotency_conflict(tenant_id, idem).await)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Count one billable event. Metering never fails a decision: a lost count is logged, not raised.
    async fn meter(&self, tenant_id: &str, metric: &str) {
        let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
        if let Err(e) = self.ports.usage.record(tenant_id, &day, metric, 1).await {
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

    // ----- policies --------------------------------------------------------------------------------------

    async fn tenant_rules(&self, tenant_id: &str) -> VaultResult<Arc<TenantRules>> {
        if let Some(cached) = self.tenants.get(tenant_id) {
            return Ok(cached);
        }
        let versions = self.ports.store.policies(tenant_id).await?;
        let settings = self.ports.store.review_settings(tenant_id).await?;
        let rules = Arc::new(TenantRules {
            policies: versions.into_iter().map(CompiledPolicy::new).collect(),
            settings,
        });
        self.tenants.put(tenant_id, rules.clone());
        Ok(rules)
    }

    pub async fn register_policy(
        &self,
        principal: &Principal,
        registration: PolicyRegistration,
        idem: Option<&Idempotency>,
    ) -> VaultResult<(bool, PolicyRegistered)> {
        registration.validate()?;
        let tenant_id = &principal.tenant_id;
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
            if let Some(record) = Self::idempotency_record(
                tenant_id,
                idem.map(|i| Idempotency {
                    success_status: 200,
                    ..i.clone()
                })
                .as_ref(),
                &body,
            )? {
                self.commit(tenant_id, vec![Write::PutIdempotency(record)], idem)
                    .await?;
            }
            return Ok((false, body));
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
        let mut writes = vec![Write::PutPolicy(version)];
        writes.extend(Self::idempotency_record(tenant_id, idem, &body)?.map(Write::PutIdempotency));
        self.commit(tenant_id, writes, idem).await?;
        self.tenants.invalidate(tenant_id);
        Ok((true, body))
    }

    pub async fn list_policies(&self, principal: &Principal) -> VaultResult<Vec<PolicyVersion>> {
        Ok(self.ports.store.policies(&principal.tenant_id).await?)
    }

    // ----- clearance ---------------------------------------------------------------------------------

    pub async fn request_clearance(
        &self,
        principal: &Principal,
        request: ClearanceRequest,
        idem: Option<&Idempotency>,
    ) -> VaultResult<ClearanceView> {
        validate_request(&request)?;
        let tenant_id = principal.tenant_id.as_str();
        let rules = self.tenant_rules(tenant_id).await?;
        let settings = rules.settings;
        let selected = policy::select(&rules.policies, &request.tool_name, &request.context);
        let decision = match selected {
            None => Decision {
                status: ClearanceStatus::Denied,
                source: DecisionSource::NoPolicy,
                reason: format!("No policy is registered for tool {}", request.tool_name),
                reason_code: Some("no_policy_for_tool".into()),
                confidence_bucket: ConfidenceBucket::None,
                citations: vec![],
            },
            Some(policy) => self.decide_inline(tenant_id, &request, policy),
        };
        let now = now_rfc3339();
        let mut record = ClearanceRecord {
            tenant_id: tenant_id.to_string(),
            request_id: uuid::Uuid::new_v4().to_string(),
            status: decision.status,
            request,
            policy_id: selected
                .map(|p| p.version.policy_id.clone())
                .unwrap_or_default(),
            policy_version_id: selected
                .map(|p| p.version.version_id.clone())
                .unwrap_or_default(),
            policy_content_hash: selected
                .map(|p| p.version.content_hash.clone())
                .unwrap_or_default(),
            reason: decision.reason.clone(),
            reason_code: decision.reason_code.clone(),
            confidence_bucket: decision.confidence_bucket,
            minimum_confidence_bucket: settings.minimum_confidence_bucket,
            decided_by: Some(decision.source),
            token: None,
            jti: None,
            created_at: now.clone(),
            updated_at: now,
        };

        if decision.status == ClearanceStatus::Processing {
            if self.ports.queue.saturated() {
                return Err(VaultError::RateLimited {
                    retry_after_seconds: 1,
                });
            }
            record.decided_by = None;
            let view = ClearanceView::from(&record);
            let mut writes = vec![Write::InsertClearance(record.clone())];
            writes.extend(
                Self::idempotency_record(tenant_id, idem, &view)?.map(Write::PutIdempotency),
            );
            self.commit(tenant_id, writes, idem).await?;
            let job = JudgeJob {
                tenant_id: tenant_id.to_string(),
                request_id: record.request_id.clone(),
                session_id: record.request.session_id.clone(),
            };
            self.meter(tenant_id, "clearance.queued").await;
            if let Err(e) = self.ports.queue.enqueue(&job).await {
                // The request is durable in `processing`; never leave it stranded: hand it to a human.
                tracing::error!(request_id = %record.request_id, error = %e, "judge queue refused work; routing to review");
                return self
                    .route_to_review(&record, "judge_queue_unavailable")
                    .await;
            }
            return Ok(view);
        }

        if decision.status == ClearanceStatus::Approved {
            self.attach_token(&mut record).await?;
        }
        let event = self
            .ledger_event(
                &record,
                "clearance.decision",
                &decision.citations,
                json!({}),
            )
            .await?;
        let view = ClearanceView::from(&record);
        let metric = format!("clearance.{}", record.status.as_str());
        let mut writes = vec![Write::InsertClearance(record), Write::AppendEvent(event)];
        writes.extend(Self::idempotency_record(tenant_id, idem, &view)?.map(Write::PutIdempotency));
        self.commit(tenant_id, writes, idem).await?;
        self.meter(tenant_id, &metric).await;
        Ok(view)
    }

    fn decide_inline(
        &self,
        tenant_id: &str,
        request: &ClearanceRequest,
        policy: &CompiledPolicy,
    ) -> Decision {
        let judge = || {
            if self.ports.judge.is_some() {
                Decision {
                    status: ClearanceStatus::Processing,
                    source: DecisionSource::Judge,
                    reason: "Queued for the policy judge".into(),
                    reason_code: None,
                    confidence_bucket: ConfidenceBucket::None,
                    citations: vec![],
                }
            } else {
                Decision {
                    status: ClearanceStatus::PendingReview,
                    source: DecisionSource::Judge,
                    reason: "No policy judge is configured; a human must review".into(),
                    reason_code: Some("judge_unavailable".into()),
                    confidence_bucket: ConfidenceBucket::None,
                    citations: vec![],
                }
            }
        };
        if !policy.has_rego() {
            return judge();
        }
        let Some(rego) = &policy.rego else {
            return deny_inline(
                "The policy's rego module no longer compiles",
                "policy_evaluation_error",
            );
        };
        let input = json!({
            "tool_name": request.tool_name,
            "tool_args": request.tool_args,
            "agent_id": request.agent_id,
            "session_id": request.session_id,
            "context": request.context,
            "tenant_id": tenant_id,
        });
        let outcome = match rego.evaluate(&input) {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(policy_id = %policy.version.policy_id, error = %e, "rego evaluation failed; denying");
                return deny_inline(
                    "The policy could not be evaluated for this call",
                    "policy_evaluation_error",
                );
            }
        };
        let rego_decision = |status, default_reason: &str, default_code: Option<&str>| Decision {
            status,
            source: DecisionSource::Rego,
            reason: outcome
                .reason
                .clone()
                .unwrap_or_else(|| default_reason.to_string()),
            reason_code: outcome
                .reason_code
                .clone()
                .or(default_code.map(str::to_string)),
            confidence_bucket: ConfidenceBucket::ExtraHigh,
            citations: vec![],
        };
        match outcome.decision {
            RegoDecision::Approve => {
                rego_decision(ClearanceStatus::Approved, "Approved by policy rules", None)
            }
            RegoDecision::Deny => rego_decision(
                ClearanceStatus::Denied,
                "Denied by policy rules",
                Some("policy_denied"),
            ),
            RegoDecision::Review => rego_decision(
                ClearanceStatus::PendingReview,
                "Policy rules require human review",
                Some("policy_review"),
            ),
            RegoDecision::Judge => judge(),
            RegoDecision::Undefined
                if policy.version.rules.iter().any(|r| !r.trim().is_empty()) =>
            {
                judge()
            }
            RegoDecision::Undefined => deny_inline(
                "The policy's rules do not decide this call",
                "policy_undecided",
            ),
        }
    }

    /// Mint and attach a fresh approval token to an approved record.
    async fn attach_token(&self, record: &mut ClearanceRecord) -> VaultResult<()> {
        let (token, claims) = self.mint(record, &record.request_id.clone()).await?;
        record.token = Some(token);
        record.jti = Some(claims.jti);
        Ok(())
    }

    async fn mint(
        &self,
        record: &ClearanceRecord,
        request_id: &str,
    ) -> VaultResult<(String, ApprovalClaims)> {
        let iat = chrono::Utc::now().timestamp();
        let claims = ApprovalClaims {
            iss: self.settings.jwt_issuer.clone(),
            aud: self.settings.jwt_audience.clone(),
            sub: token::TOKEN_SUBJECT.into(),
            iat,
            exp: iat + self.settings.jwt_ttl_seconds,
            jti: uuid::Uuid::new_v4().to_string(),
            tool: record.request.tool_name.clone(),
            agent_id: record.request.agent_id.clone(),
            session_id: record.request.session_id.clone(),
            policy_id: record.policy_id.clone(),
            decision: "approved".into(),
            tool_args_hash: tool_args_hash(&record.request.tool_args)
                .map_err(|e| VaultError::InvalidRequest(e.to_string()))?,
            tenant_id: record.tenant_id.clone(),
            request_id: request_id.to_string(),
        };
        let input = token::signing_input(self.ports.signer.key_id(), &claims)?;
        let signature = self.ports.signer.sign(input.as_bytes()).await?;
        Ok((token::assemble(&input, &signature), claims))
    }

    /// Build and sign the ledger event recording the record's current decision.
    async fn ledger_event(
        &self,
        record: &ClearanceRecord,
        category: &str,
        citations: &[Value],
        extra_metadata: Value,
    ) -> VaultResult<LedgerEvent> {
        let request = &record.request;
        let mut metadata = json!({
            "status": record.status.as_str(),
            "decided_by": record.decided_by,
            "reason_code": record.reason_code,
            "session_id": request.session_id,
            "minimum_confidence_bucket": record.minimum_confidence_bucket.as_str(),
            "jti": record.jti,
            "human_principal": request.human_principal,
            "parent_jti": request.parent_jti,
            "destination_uri": request.destination_uri,
            "destination_provider": request.destination_provider,
            "destination_account_ref": request.destination_account_ref,
            "data_categories": request.data_categories,
            "purpose": request.purpose,
            "dataset_ref": request.dataset_ref,
        });
        if let (Some(meta), Value::Object(extra)) = (metadata.as_object_mut(), extra_metadata) {
            meta.extend(extra);
            meta.retain(|_, v| !v.is_null());
        }
        let draft = EventDraft {
            event_uuid: uuid::Uuid::new_v4().to_string(),
            request_id: record.request_id.clone(),
            agent_id: request.agent_id.clone(),
            policy_id: record.policy_id.clone(),
            policy_version_id: record.policy_version_id.clone(),
            policy_content_hash: record.policy_content_hash.clone(),
            intent_hash: intent_hash(
                &request.tool_name,
                &request.tool_args,
                &request.agent_id,
                &request.session_id,
            )
            .map_err(|e| VaultError::InvalidRequest(e.to_string()))?,
            tool_name: request.tool_name.clone(),
            tool_args: request.tool_args.clone(),
            action_category: category.to_string(),
            action_metadata: metadata,
            reason: record.reason.clone(),
            citations: citations.to_vec(),
            evidence_chunks: vec![],
            confidence: record.confidence_bucket.midpoint(),
            confidence_bucket: record.confidence_bucket.as_str().into(),
            decision_status: record.status.decision_status().into(),
            approved: record.status == ClearanceStatus::Approved,
            accepted_at: now_rfc3339(),
        };
        let prepared = draft.prepare(self.ports.signer.key_id()).map_err(|e| {
            VaultError::InvalidRequest(format!("arguments cannot be recorded: {e}"))
        })?;
        let signature = self.ports.signer.sign(&prepared.receipt_payload).await?;
        Ok(prepared.seal(&signature))
    }

    pub async fn clearance_status(
        &self,
        principal: &Principal,
        request_id: &str,
    ) -> VaultResult<ClearanceView> {
        known_id(request_id, "clearance request")?;
        self.ports
            .store
            .clearance_status(&principal.tenant_id, request_id)
            .await?
            .ok_or(VaultError::NotFound("clearance request"))
    }

    /// Move a `processing` record to human review (judge or queue unavailable). Idempotent.
    async fn route_to_review(
        &self,
        record: &ClearanceRecord,
        reason_code: &str,
    ) -> VaultResult<ClearanceView> {
        let mut updated = record.clone();
        updated.status = ClearanceStatus::PendingReview;
        updated.decided_by = Some(DecisionSource::Judge);
        updated.reason = "The policy judge is unavailable; a human must review".into();
        updated.reason_code = Some(reason_code.into());
        updated.updated_at = now_rfc3339();
        let event = self
            .ledger_event(&updated, "clearance.decision", &[], json!({}))
            .await?;
        let writes = vec![
            Write::UpdateClearance {
                record: updated.clone(),
                expected: ClearanceStatus::Processing,
            },
            Write::AppendEvent(event),
        ];
        match self.ports.store.commit(&record.tenant_id, writes).await {
            Ok(_) | Err(StoreError::Conflict(Conflict::ClearanceState)) => {
                Ok(ClearanceView::from(&updated))
            }
            Err(e) => Err(e.into()),
        }
    }

    // ----- judge worker --------------------------------------------------------------------------------

    /// Decide one queued clearance. Safe under redelivery: a request already decided writes nothing.
    /// An `Err` means "retry later" (the queue redelivers).
    pub async fn process_judge_job(&self, job: &JudgeJob) -> VaultResult<()> {
        let Some(record) = self
            .ports
            .store
            .clearance(&job.tenant_id, &job.request_id)
            .await?
        else {
            tracing::warn!(request_id = %job.request_id, "judge job for an unknown clearance; dropping");
            return Ok(());
        };
        if record.status != ClearanceStatus::Processing {
            return Ok(());
        }
        let Some(judge) = &self.ports.judge else {
            self.route_to_review(&record, "judge_unavailable").await?;
            return Ok(());
        };
        let policy = self
            .ports
            .store
            .policy_version(&job.tenant_id, &record.policy_version_id)
            .await?;
        let Some(policy) = policy else {
            self.route_to_review(&record, "policy_version_missing")
                .await?;
            return Ok(());
        };
        let judgement = match judge.judge(&job.tenant_id, &record.request, &policy).await {
            Ok(j) => j,
            Err(JudgeError::Unavailable(e)) => {
                return Err(VaultError::QueueUnavailable(format!(
                    "judge unavailable: {e}"
                )))
            }
            Err(JudgeError::InvalidAnswer(e)) => {
                tracing::error!(request_id = %record.request_id, error = %e, "judge answered nonsense; routing to review");
                self.route_to_review(&record, "judge_invalid_answer")
                    .await?;
                return Ok(());
            }
        };
        let minimum = self
            .ports
            .store
            .review_settings(&job.tenant_id)
            .await?
            .minimum_confidence_bucket;
        let mut updated = record.clone();
        updated.decided_by = Some(DecisionSource::Judge);
        updated.confidence_bucket = judgement.confidence_bucket;
        updated.minimum_confidence_bucket = minimum;
        updated.reason = judgement.reason.clone();
        updated.reason_code = judgement.reason_code.clone();
        updated.updated_at = now_rfc3339();
        updated.status = match judgement.verdict {
            JudgeVerdict::Approve if judgement.confidence_bucket >= minimum => {
                ClearanceStatus::Approved
            }
            JudgeVerdict::Approve => {
                updated.reason_code = Some("below_minimum_confidence".into());
                ClearanceStatus::PendingReview
            }
            JudgeVerdict::Deny => ClearanceStatus::Denied,
            JudgeVerdict::Review => ClearanceStatus::PendingReview,
        };
        if updated.status == ClearanceStatus::Approved {
            self.attach_token(&mut updated).await?;
        }
        let event = self
            .ledger_event(
                &updated,
                "clearance.decision",
                &judgement.citations,
                json!({"judge": judge.name()}),
            )
            .await?;
        let writes = vec![
            Write::UpdateClearance {
                record: updated,
                expected: ClearanceStatus::Processing,
            },
            Write::AppendEvent(event),
        ];
        match self.ports.store.commit(&job.tenant_id, writes).await {
            Ok(_) | Err(StoreError::Conflict(Conflict::ClearanceState)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Put a `processing` clearance back on the judge queue (after a restart); a human decides if it can't.
    pub async fn requeue(&self, job: &JudgeJob) {
        if let Err(e) = self.ports.queue.enqueue(job).await {
            tracing::warn!(request_id = %job.request_id, error = %e, "could not re-queue; routing to review");
            if let Err(e) = self.abandon_judge_job(job).await {
                tracing::error!(request_id = %job.request_id, error = %e, "could not route stranded request to review");
            }
        }
    }

    /// A queue batch (SQS FIFO): decide jobs in order and stop at the first failure, so nothing in a message
    /// group is decided out of order. Returns the ids of the failed message and every message after it, for
    /// redelivery. A message that is not a job fails too (the queue's DLQ keeps it for an operator).
    pub async fn process_judge_batch(
        &self,
        messages: Vec<(String, Option<JudgeJob>)>,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        for (message_id, job) in messages {
            if !failed.is_empty() {
                failed.push(message_id);
                continue;
            }
            let outcome = match &job {
                Some(job) => self.process_judge_job(job).await,
                None => Err(VaultError::InvalidRequest(
                    "message is not a judge job".into(),
                )),
            };
            if let Err(e) = outcome {
                tracing::warn!(message_id = %message_id, error = %e, "judge job failed; it and later messages will be redelivered");
                failed.push(message_id);
            }
        }
        failed
    }

    /// Give up on a job that keeps failing: a human decides instead.
    pub async fn abandon_judge_job(&self, job: &JudgeJob) -> VaultResult<()> {
        if let Some(record) = self
            .ports
            .store
            .clearance(&job.tenant_id, &job.request_id)
            .await?
        {
            if record.status == ClearanceStatus::Processing {
                self.route_to_review(&record, "judge_unavailable").await?;
            }
        }
        Ok(())
    }

    // ----- reviews -------------------------------------------------------------------------------------

    pub async fn review_settings(&self, principal: &Principal) -> VaultResult<ReviewSettings> {
        Ok(self
            .ports
            .store
            .review_settings(&principal.tenant_id)
            .await?)
    }

    pub async fn put_review_settings(
        &self,
        principal: &Principal,
        settings: ReviewSettings,
        idem: Option<&Idempotency>,
    ) -> VaultResult<ReviewSettings> {
        let mut writes = vec![Write::PutReviewSettings(settings)];
        writes.extend(
            Self::idempotency_record(&principal.tenant_id, idem, &settings)?
                .map(Write::PutIdempotency),
        );
        self.commit(&principal.tenant_id, writes, idem).await?;
        self.tenants.invalidate(&principal.tenant_id);
        Ok(settings)
    }

    pub async fn pending_reviews(
        &self,
        principal: &Principal,
        limit: usize,
    ) -> VaultResult<Vec<PendingReview>> {
        let records = self
            .ports
            .store
            .clearances_with_status(&principal.tenant_id, ClearanceStatus::PendingReview, limit)
            .await?;
        Ok(records
            .into_iter()
            .map(|r| PendingReview {
                request_id: r.request_id,
                status: r.status.as_str().into(),
                tool_name: r.request.tool_name,
                tool_args: r.request.tool_args,
                agent_id: r.request.agent_id,
                session_id: r.request.session_id,
                context: r.request.context,
                reason: r.reason,
                reason_code: r.reason_code,
                confidence_bucket: r.confidence_bucket.as_str().into(),
                policy_id: r.policy_id,
                policy_version_id: r.policy_version_id,
                created_at: r.created_at,
            })
            .collect())
    }

    pub async fn review_decision(
        &self,
        principal: &Principal,
        request_id: &str,
        decision: ReviewDecisionRequest,
        idem: Option<&Idempotency>,
    ) -> VaultResult<ClearanceView> {
        known_id(request_id, "clearance request")?;
        let tenant_id = principal.tenant_id.as_str();
        let record = self
            .ports
            .store
            .clearance(tenant_id, request_id)
            .await?
            .ok_or(VaultError::NotFound("clearance request"))?;
        if record.status != ClearanceStatus::PendingReview {
            return Err(VaultError::NotPending(request_id.to_string()));
        }
        let mut updated = record.clone();
        updated.decided_by = Some(DecisionSource::Reviewer);
        updated.updated_at = now_rfc3339();
        let note = decision.review_reason.trim();
        if decision.approved {
            updated.status = ClearanceStatus::Approved;
            updated.reason = if note.is_empty() {
                "Approved by a reviewer".into()
            } else {
                format!("Approved by a reviewer: {note}")
            };
            updated.reason_code = Some("reviewer_approved".into());
            self.attach_token(&mut updated).await?;
        } else {
            updated.status = ClearanceStatus::Denied;
            updated.reason = if note.is_empty() {
                "Denied by a reviewer".into()
            } else {
                format!("Denied by a reviewer: {note}")
            };
            updated.reason_code = Some("reviewer_denied".into());
        }
        let event = self
            .ledger_event(
                &updated,
                "review.decision",
                &[],
                json!({"reviewer_key_id": principal.key_id}),
            )
            .await?;
        let view = ClearanceView::from(&updated);
        let mut writes = vec![
            Write::UpdateClearance {
                record: updated,
                expected: ClearanceStatus::PendingReview,
            },
            Write::AppendEvent(event),
        ];
        writes.extend(Self::idempotency_record(tenant_id, idem, &view)?.map(Write::PutIdempotency));
        match self.commit(tenant_id, writes, idem).await {
            Ok(_) => {
                self.meter(tenant_id, "review.decision").await;
                Ok(view)
            }
            Err(VaultError::StoreUnavailable(StoreError::Conflict(Conflict::ClearanceState))) => {
                Err(VaultError::NotPending(request_id.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    // ----- tokens ----------------------------------------------------------------------------------------

    /// A fresh token for a cached approval (the SDK's decision cache). Only for the exact call that was
    /// approved, and only while the policy version that approved it is still current.
    pub async fn mint_token(
        &self,
        principal: &Principal,
        request: MintRequest,
        idem: Option<&Idempotency>,
    ) -> VaultResult<MintView> {
        known_id(&request.original_request_id, "original clearance request")?;
        let tenant_id = principal.tenant_id.as_str();
        let original = self
            .ports
            .store
            .clearance(tenant_id, &request.original_request_id)
            .await?
            .ok_or(VaultError::NotFound("original clearance request"))?;
        if original.status != ClearanceStatus::Approved {
            return Err(VaultError::Conflict(
                "the original request is not approved".into(),
            ));
        }
        let same_args = tool_args_hash(&request.tool_args).ok()
            == tool_args_hash(&original.request.tool_args).ok();
        if request.tool_name != original.request.tool_name || !same_args {
            return Err(VaultError::ToolArgsMismatch(
                "tool_name and tool_args must match the approved request".into(),
            ));
        }
        if !request.agent_id.is_empty() && request.agent_id != original.request.agent_id {
            return Err(VaultError::ToolArgsMismatch(
                "agent_id must match the approved request".into(),
            ));
        }
        if !request.policy_version_id.is_empty()
            && request.policy_version_id != original.policy_version_id
        {
            return Err(VaultError::Conflict(
                "policy_version_id does not match the approved request".into(),
            ));
        }
        let rules = self.tenant_rules(tenant_id).await?;
        let current = rules
            .policies
            .iter()
            .find(|p| p.version.policy_id == original.policy_id);
        if current.map(|p| p.version.version_id.as_str())
            != Some(original.policy_version_id.as_str())
        {
            return Err(VaultError::Conflict(
                "the policy changed since this approval; request clearance again".into(),
            ));
        }

        let mut minted = original.clone();
        minted.request_id = uuid::Uuid::new_v4().to_string();
        minted.decided_by = Some(DecisionSource::MintToken);
        minted.created_at = now_rfc3339();
        minted.updated_at = minted.created_at.clone();
        if !request.session_id.is_empty() {
            minted.request.session_id = request.session_id.clone();
        }
        let (token, claims) = self.mint(&minted, &minted.request_id.clone()).await?;
        minted.token = Some(token.clone());
        minted.jti = Some(claims.jti.clone());
        let event = self
            .ledger_event(
                &minted,
                "token.minted",
                &[],
                json!({"original_request_id": original.request_id}),
            )
            .await?;
        let view = MintView {
            token,
            request_id: minted.request_id.clone(),
            original_request_id: original.request_id.clone(),
            reason: original.reason.clone(),
            status: "approved".into(),
            decision_status: "approved".into(),
            policy_version_id: original.policy_version_id.clone(),
            policy_content_hash: original.policy_content_hash.clone(),
            expires_at: claims.exp,
        };
        let mut writes = vec![Write::InsertClearance(minted), Write::AppendEvent(event)];
        writes.extend(Self::idempotency_record(tenant_id, idem, &view)?.map(Write::PutIdempotency));
        self.commit(tenant_id, writes, idem).await?;
        self.meter(tenant_id, "token.minted").await;
        Ok(view)
    }

    /// Burn a token's jti: exactly one caller ever gets 200 for it.
    pub async fn consume_token(
        &self,
        principal: &Principal,
        request: ConsumeRequest,
        idem: Option<&Idempotency>,
    ) -> VaultResult<ConsumeView> {
        let keys = self.ports.signer.public_keys().await?;
        let claims = token::verify(
            &request.token,
            &keys,
            &self.settings.jwt_issuer,
            &self.settings.jwt_audience,
        )?;
        if claims.tenant_id != principal.tenant_id {
            return Err(VaultError::InvalidToken);
        }
        if let Some(tool_name) = &request.tool_name {
            if *tool_name != claims.tool {
                return Err(VaultError::ToolArgsMismatch(
                    "tool_name does not match the token".into(),
                ));
            }
        }
        if let Some(args) = &request.tool_args {
            let hash =
                tool_args_hash(args).map_err(|e| VaultError::InvalidRequest(e.to_string()))?;
            if hash != claims.tool_args_hash {
                return Err(VaultError::ToolArgsMismatch(
                    "tool_args do not hash to the token's tool_args_hash".into(),
                ));
            }
        }
        let view = ConsumeView {
            consumed: true,
            jti: claims.jti.clone(),
            claims,
        };
        let scope = consume_scope(&principal.tenant_id);
        let mut writes = Vec::new();
        // Idempotency first: a retried consume replays its 200 rather than reporting its own burn as a replay.
        writes.extend(Self::idempotency_record(&scope, idem, &view)?.map(Write::PutIdempotency));
        writes.push(Write::BurnJti {
            jti: view.jti.clone(),
            expires_at: view.claims.exp,
        });
        let result = match self.ports.store.commit(&principal.tenant_id, writes).await {
            Err(StoreError::Conflict(Conflict::IdempotencyKey)) => {
                Err(self.resolve_idempotency_conflict(&scope, idem).await)
            }
            other => other.map_err(VaultError::from),
        };
        match result {
            Ok(_) => {
                self.meter(&principal.tenant_id, "token.consumed").await;
                Ok(view)
            }
            Err(VaultError::StoreUnavailable(StoreError::Conflict(Conflict::JtiBurned))) => {
                Err(VaultError::TokenReplayed)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn jwks(&self) -> VaultResult<jsonwebtoken::jwk::JwkSet> {
        Ok(token::jwks(&self.ports.signer.public_keys().await?))
    }

    pub async fn public_keys(&self) -> VaultResult<Vec<PublicKey>> {
        Ok(self.ports.signer.public_keys().await?)
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
            .ledger_tail(&principal.tenant_id, limit.clamp(1, 500))
            .await?)
    }

    // ----- administration ----------------------------------------------------------------------------

    pub async fn create_tenant(
        &self,
        name: &str,
        idem: Option<&Idempotency>,
    ) -> VaultResult<TenantCreated> {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(VaultError::InvalidRequest(
                "name must be 1 to 200 characters".into(),
            ));
        }
        let tenant = Tenant {
            tenant_id: apikey::new_id("tn_"),
            name: name.to_string(),
            created_at: now_rfc3339(),
        };
        self.create_tenant_with_key(tenant, &apikey::generate(apikey::TENANT_KEY_PREFIX), idem)
            .await
    }

    /// Create a tenant whose first key is `api_key` (used by `ledgix dev` for a key known in advance).
    pub async fn create_tenant_with_key(
        &self,
        tenant: Tenant,
        api_key: &str,
        idem: Option<&Idempotency>,
    ) -> VaultResult<TenantCreated> {
        let key = ApiKeyRecord {
            key_id: apikey::new_id("key_"),
            tenant_id: tenant.tenant_id.clone(),
            key_hash: apikey::hash(api_key),
            created_at: now_rfc3339(),
            revoked: false,
        };
        let body = TenantCreated {
            tenant_id: tenant.tenant_id.clone(),
            name: tenant.name.clone(),
            key_id: key.key_id.clone(),
            api_key: api_key.to_string(),
        };
        let record = Self::idempotency_record(ADMIN_SCOPE, idem, &body)?;
        match self
            .ports
            .control
            .create_tenant(&tenant, &key, record.as_ref())
            .await
        {
            Ok(()) => {
                self.principals.invalidate(&key.key_hash);
                Ok(body)
            }
            Err(StoreError::Conflict(Conflict::IdempotencyKey)) => {
                Err(self.resolve_idempotency_conflict(ADMIN_SCOPE, idem).await)
            }
            Err(StoreError::Conflict(_)) => {
                Err(VaultError::Conflict("tenant or key already exists".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn tenant(&self, tenant_id: &str) -> VaultResult<Option<Tenant>> {
        Ok(self.ports.control.tenant(tenant_id).await?)
    }

    pub async fn create_api_key(
        &self,
        tenant_id: &str,
        api_key: Option<&str>,
        idem: Option<&Idempotency>,
    ) -> VaultResult<ApiKeyCreated> {
        known_id(tenant_id, "tenant")?;
        if self.ports.control.tenant(tenant_id).await?.is_none() {
            return Err(VaultError::NotFound("tenant"));
        }
        let api_key = api_key
            .map(str::to_string)
            .unwrap_or_else(|| apikey::generate(apikey::TENANT_KEY_PREFIX));
        let key = ApiKeyRecord {
            key_id: apikey::new_id("key_"),
            tenant_id: tenant_id.to_string(),
            key_hash: apikey::hash(&api_key),
            created_at: now_rfc3339(),
            revoked: false,
        };
        let body = ApiKeyCreated {
            key_id: key.key_id.clone(),
            tenant_id: tenant_id.to_string(),
            api_key,
        };
        let record = Self::idempotency_record(ADMIN_SCOPE, idem, &body)?;
        match self.ports.control.add_api_key(&key, record.as_ref()).await {
            Ok(()) => {
                self.principals.invalidate(&key.key_hash);
                Ok(body)
            }
            Err(StoreError::Conflict(Conflict::IdempotencyKey)) => {
                Err(self.resolve_idempotency_conflict(ADMIN_SCOPE, idem).await)
            }
            Err(StoreError::Conflict(_)) => {
                Err(VaultError::Conflict("that key already exists".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn revoke_api_key(&self, key_id: &str) -> VaultResult<()> {
        known_id(key_id, "api key")?;
        if self.ports.control.revoke_api_key(key_id).await? {
            self.principals.clear();
            Ok(())
        } else {
            Err(VaultError::NotFound("api key"))
        }
    }
}

fn deny_inline(reason: &str, code: &str) -> Decision {
    Decision {
        status: ClearanceStatus::Denied,
        source: DecisionSource::Rego,
        reason: reason.into(),
        reason_code: Some(code.into()),
        confidence_bucket: ConfidenceBucket::None,
        citations: vec![],
    }
}

/// Ids come from URLs; one that cannot exist (NUL, absurd length) is simply not found, before any store sees it.
fn known_id(id: &str, what: &'static str) -> VaultResult<()> {
    if id.is_empty() || id.len() > 256 || id.contains('\0') {
        return Err(VaultError::NotFound(what));
    }
    Ok(())
}

fn replay_or_reused(record: IdempotencyRecord, idem: &Idempotency) -> VaultError {
    if record.request_hash == idem.request_hash {
        VaultError::Replay(Box::new(record))
    } else {
        VaultError::IdempotencyKeyReused
    }
}

fn validate_request(request: &ClearanceRequest) -> VaultResult<()> {
    if request.tool_name.trim().is_empty() || request.tool_name.len() > MAX_TOOL_NAME {
        return Err(VaultError::InvalidRequest(format!(
            "tool_name must be 1 to {MAX_TOOL_NAME} characters"
        )));
    }
    if !request.tool_args.is_object() {
        return Err(VaultError::InvalidRequest(
            "tool_args must be a JSON object".into(),
        ));
    }
    if !request.context.is_object() {
        return Err(VaultError::InvalidRequest(
            "context must be a JSON object".into(),
        ));
    }
    Ok(())
}
