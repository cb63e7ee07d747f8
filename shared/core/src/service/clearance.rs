//! Clearance: decide a tool call inline (Rego) or queue it for the judge, record the decision in the ledger,
//! and answer status polls.

use serde_json::{json, Value};

use super::idempotency::AnswerScope;
use super::{known_id, Idempotency, Principal, Vault};
use crate::error::{Conflict, StoreError, VaultError, VaultResult};
use crate::hashing::intent_hash;
use crate::ledger::{EventDraft, LedgerEvent};
use crate::model::{
    now_rfc3339, ClearanceRecord, ClearanceRequest, ClearanceStatus, ClearanceView,
    ConfidenceBucket, ConsultedPolicy, DecisionSource,
};
use crate::notify::NotificationEvent;
use crate::policy::{self, CompiledPolicy, Verdict};
use crate::ports::{JudgeJob, Write};
use crate::roles::Role;

pub const MAX_TOOL_NAME: usize = 256;

/// How a clearance was decided, before it is written.
pub(super) struct Decision {
    pub(super) status: ClearanceStatus,
    source: DecisionSource,
    reason: String,
    reason_code: Option<String>,
    confidence_bucket: ConfidenceBucket,
    citations: Vec<Value>,
}

/// What the tenant's rules say about one call: every applicable policy decides and the most restrictive
/// wins (deny > review > judge > approve). The deciding policy is the one recorded in the clearance and the
/// token; every consulted policy is listed in the ledger event.
pub(super) struct Ruling {
    pub(super) decision: Decision,
    pub(super) policy_id: String,
    pub(super) policy_version_id: String,
    pub(super) policy_content_hash: String,
    pub(super) consulted: Vec<ConsultedPolicy>,
}

/// The documented Rego input.
fn rego_input(tenant_id: &str, request: &ClearanceRequest) -> Value {
    json!({
        "tool_name": request.tool_name,
        "tool_args": request.tool_args,
        "agent_id": request.agent_id,
        "session_id": request.session_id,
        "context": request.context,
        "tenant_id": tenant_id,
    })
}

fn validate_request(request: &ClearanceRequest) -> VaultResult<()> {
    if request.tool_name.trim().is_empty() || request.tool_name.len() > MAX_TOOL_NAME {
        return Err(VaultError::InvalidRequest(format!(
            "tool_name must be 1 to {MAX_TOOL_NAME} characters"
        )));
    }
    crate::tool_args::check(&request.tool_args)?;
    if !request.context.is_object() {
        return Err(VaultError::InvalidRequest(
            "context must be a JSON object".into(),
        ));
    }
    Ok(())
}

impl Vault {
    pub async fn request_clearance(
        &self,
        principal: &Principal,
        request: ClearanceRequest,
        idem: Option<&Idempotency>,
    ) -> VaultResult<ClearanceView> {
        let tenant_id = principal.tenant_id.as_str();
        self.replay(AnswerScope::Tenant(tenant_id), idem).await?;
        validate_request(&request)?;
        let rules = self.tenant_rules(tenant_id).await?;
        let settings = rules.settings;
        let Ruling {
            decision,
            policy_id,
            policy_version_id,
            policy_content_hash,
            consulted,
        } = self.rule_on(tenant_id, &rules.policies, &request).await;
        let now = now_rfc3339();
        let mut record = ClearanceRecord {
            tenant_id: tenant_id.to_string(),
            request_id: crate::model::new_request_id(),
            status: decision.status,
            request,
            policy_id,
            policy_version_id,
            policy_content_hash,
            reason: decision.reason.clone(),
            reason_code: decision.reason_code.clone(),
            confidence_bucket: decision.confidence_bucket,
            minimum_confidence_bucket: settings.minimum_confidence_bucket,
            decided_by: Some(decision.source),
            token: None,
            jti: None,
            requested_by: principal.key_id.clone(),
            created_at: now.clone(),
            updated_at: now,
            policies_consulted: consulted,
            root_approved_at: None,
        };

        if decision.status == ClearanceStatus::Processing {
            if self.ports.queue.saturated() {
                return Err(VaultError::RateLimited {
                    retry_after_seconds: 1,
                });
            }
            record.decided_by = None;
            let view = ClearanceView::from(&record);
            let writes = vec![Write::InsertClearance(record.clone())];
            self.commit_answered(tenant_id, writes, idem, 200, &view)
                .await?;
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
        let deliveries = self
            .notifications_for(
                &record,
                super::notifications::event_for(record.status),
                json!({}),
            )
            .await?;
        let writes = super::notifications::with_outbox(
            vec![Write::InsertClearance(record), Write::AppendEvent(event)],
            &deliveries,
        );
        self.commit_answered(tenant_id, writes, idem, 200, &view)
            .await?;
        self.meter(tenant_id, &metric).await;
        self.dispatch_notifications(tenant_id, deliveries).await;
        Ok(view)
    }

    /// Evaluate every applicable policy on the call and decide (see [`Ruling`]). Never fails: no applicable
    /// policy denies (`no_policy_for_tool`), and a policy that cannot be evaluated denies.
    pub(super) async fn rule_on(
        &self,
        tenant_id: &str,
        policies: &[CompiledPolicy],
        request: &ClearanceRequest,
    ) -> Ruling {
        let input = rego_input(tenant_id, request);
        let evaluation =
            policy::evaluate(policies, &request.tool_name, &request.context, &input).await;
        let Some(deciding) = evaluation.deciding() else {
            return Ruling {
                decision: Decision {
                    status: ClearanceStatus::Denied,
                    source: DecisionSource::NoPolicy,
                    reason: format!("No policy is registered for tool {}", request.tool_name),
                    reason_code: Some("no_policy_for_tool".into()),
                    confidence_bucket: ConfidenceBucket::None,
                    citations: vec![],
                },
                policy_id: String::new(),
                policy_version_id: String::new(),
                policy_content_hash: String::new(),
                consulted: vec![],
            };
        };
        let by_rules = |status, default_reason: &str| Decision {
            status,
            source: DecisionSource::Rego,
            reason: deciding
                .reason
                .clone()
                .unwrap_or_else(|| default_reason.to_string()),
            reason_code: deciding.reason_code.clone(),
            confidence_bucket: if deciding.fail_closed {
                ConfidenceBucket::None
            } else {
                ConfidenceBucket::ExtraHigh
            },
            citations: vec![],
        };
        let decision = match deciding.verdict {
            Verdict::Approve => by_rules(ClearanceStatus::Approved, "Approved by policy rules"),
            Verdict::Deny => by_rules(ClearanceStatus::Denied, "Denied by policy rules"),
            Verdict::Review => by_rules(
                ClearanceStatus::PendingReview,
                "Policy rules require human review",
            ),
            Verdict::Judge if self.ports.judge.is_some() => Decision {
                status: ClearanceStatus::Processing,
                source: DecisionSource::Judge,
                reason: "Queued for the policy judge".into(),
                reason_code: None,
                confidence_bucket: ConfidenceBucket::None,
                citations: vec![],
            },
            Verdict::Judge => Decision {
                status: ClearanceStatus::PendingReview,
                source: DecisionSource::Judge,
                reason: "No policy judge is configured; a human must review".into(),
                reason_code: Some("judge_unavailable".into()),
                confidence_bucket: ConfidenceBucket::None,
                citations: vec![],
            },
        };
        let version = &deciding.policy.version;
        Ruling {
            decision,
            policy_id: version.policy_id.clone(),
            policy_version_id: version.version_id.clone(),
            policy_content_hash: version.content_hash.clone(),
            consulted: evaluation.consulted(),
        }
    }

    /// Build and sign the ledger event recording the record's current decision.
    pub(super) async fn ledger_event(
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
        if !record.policies_consulted.is_empty() {
            metadata["policies_consulted"] = json!(record.policies_consulted);
        }
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
        let key = self.ports.signer.approval_key().await?;
        let prepared = draft.prepare(key.kid()).map_err(|e| {
            VaultError::InvalidRequest(format!("arguments cannot be recorded: {e}"))
        })?;
        let signature = key.sign(&prepared.receipt_payload).await?;
        Ok(prepared.seal(&signature))
    }

    pub async fn clearance_status(
        &self,
        principal: &Principal,
        request_id: &str,
    ) -> VaultResult<ClearanceView> {
        known_id(request_id, "clearance request")?;
        let view = self
            .ports
            .store
            .clearance_status(&principal.tenant_id, request_id)
            .await?
            .ok_or(VaultError::NotFound("clearance request"))?;
        // An agent-only key sees the requests it made (their tokens included), no one else's.
        let oversees = [Role::Reviewer, Role::TenantAdmin, Role::Auditor]
            .iter()
            .any(|r| principal.has(*r));
        if !oversees && !view.requested_by.is_empty() && view.requested_by != principal.key_id {
            return Err(VaultError::NotFound("clearance request"));
        }
        Ok(view)
    }

    /// Move a `processing` record to human review (judge or queue unavailable). Idempotent.
    pub(super) async fn route_to_review(
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
        let deliveries = self
            .notifications_for(&updated, Some(NotificationEvent::ReviewPending), json!({}))
            .await?;
        let writes = super::notifications::with_outbox(
            vec![
                Write::UpdateClearance {
                    record: updated.clone(),
                    expected: ClearanceStatus::Processing,
                },
                Write::AppendEvent(event),
            ],
            &deliveries,
        );
        match self.ports.store.commit(&record.tenant_id, writes).await {
            Ok(_) => {
                self.dispatch_notifications(&record.tenant_id, deliveries)
                    .await;
                Ok(ClearanceView::from(&updated))
            }
            Err(StoreError::Conflict(Conflict::ClearanceState)) => {
                Ok(ClearanceView::from(&updated))
            }
            Err(e) => Err(e.into()),
        }
    }
}
