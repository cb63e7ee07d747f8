//! A judge's approval covers the one call it judged: it is never mintable and never cacheable by the SDK, and
//! the judge never sees a call the rules deny. (The development stub judge never approves, so the end-to-end
//! suite cannot reach these paths; a judge that always approves can.)

use std::sync::Arc;

use async_trait::async_trait;
use ledgix_core::model::ClearanceRequest;
use ledgix_core::policy::PolicyRegistration;
use ledgix_core::ports::{JudgeCall, JudgeJob, JudgeModel, ModelError, ModelReply};
use ledgix_core::service::{MintRequest, Principal, VaultPorts};
use ledgix_core::{Vault, VaultError};
use ledgix_embedded::{EmbeddedQueue, LocalSigner, MemoryRateLimiter, SqliteStore};
use serde_json::json;

/// Approves everything, with the highest confidence.
struct ApprovingJudge;

#[async_trait]
impl JudgeModel for ApprovingJudge {
    fn backend(&self) -> &str {
        "approving"
    }

    fn model_id(&self) -> &str {
        "approving"
    }

    async fn decide(&self, _call: JudgeCall<'_>) -> Result<ModelReply, ModelError> {
        Ok(ModelReply {
            verdict: json!({"decision": "approve", "confidence": 0.99, "reason": "looks fine", "rules_applied": ["R1"]}),
            input_tokens: 1,
            output_tokens: 1,
        })
    }
}

/// The receiver is returned to keep the queue open; the tests run the judge job themselves.
async fn vault(dir: &tempfile::TempDir) -> (Vault, Principal, impl Sized) {
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("vault.db")).expect("open"));
    let (queue, receiver) = EmbeddedQueue::new(16);
    let ports = VaultPorts {
        control: sqlite.clone(),
        store: sqlite.clone(),
        limiter: Arc::new(MemoryRateLimiter::default()),
        signer: Arc::new(LocalSigner::generate("k1")),
        queue: Arc::new(queue),
        judge: Some(Arc::new(ApprovingJudge)),
        anchor: None,
        usage: sqlite.clone(),
        notify: None,
    };
    let vault = Vault::new(Default::default(), ports);
    let created = vault.create_tenant("t", None).await.expect("tenant");
    let principal = vault
        .authenticate(created.api_key.as_deref().expect("shown once"))
        .await
        .expect("principal");
    (vault, principal, receiver)
}

fn policy(policy_id: &str, rules: &[&str], rego: Option<&str>) -> PolicyRegistration {
    PolicyRegistration {
        policy_id: policy_id.into(),
        description: String::new(),
        rules: rules.iter().map(|r| r.to_string()).collect(),
        tools: vec!["wire".into()],
        rego: rego.map(str::to_string),
    }
}

fn call(args: serde_json::Value) -> ClearanceRequest {
    serde_json::from_value(json!({"tool_name": "wire", "tool_args": args})).expect("request")
}

#[tokio::test]
async fn a_judge_approval_is_neither_cacheable_nor_mintable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (vault, principal, _queue) = vault(&dir).await;
    vault
        .register_policy(
            &principal,
            policy("english", &["Only to known payees"], None),
            None,
        )
        .await
        .expect("registered");
    let queued = vault
        .request_clearance(&principal, call(json!({"amount": 5})), None)
        .await
        .expect("queued");
    assert_eq!(queued.status, "processing");
    let job = JudgeJob {
        tenant_id: principal.tenant_id.clone(),
        request_id: queued.request_id.clone(),
        session_id: String::new(),
    };
    vault.process_judge_job(&job).await.expect("judged");
    let judged = vault
        .clearance_status(&principal, &queued.request_id)
        .await
        .expect("status");
    assert_eq!(judged.status, "approved");
    assert!(judged.token.is_some(), "the judged call itself is approved");
    assert_eq!(
        judged.policy_version_id, None,
        "the SDK caches only an approval with a policy_version_id"
    );
    let mint: MintRequest = serde_json::from_value(json!({
        "tool_name": "wire", "tool_args": {"amount": 5}, "original_request_id": queued.request_id,
    }))
    .expect("mint request");
    let refused = vault.mint_token(&principal, mint, None).await;
    assert!(
        matches!(refused, Err(VaultError::Conflict(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_judge_never_sees_what_the_rules_deny() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (vault, principal, _queue) = vault(&dir).await;
    vault
        .register_policy(
            &principal,
            policy("english", &["Only to known payees"], None),
            None,
        )
        .await
        .expect("registered");
    let cap = "package cap\ndefault decision := \"approve\"\ndecision := \"deny\" if { input.tool_args.amount > 100 }";
    vault
        .register_policy(&principal, policy("cap", &[], Some(cap)), None)
        .await
        .expect("registered");
    let denied = vault
        .request_clearance(&principal, call(json!({"amount": 500})), None)
        .await
        .expect("decided");
    assert_eq!(
        (denied.status.as_str(), denied.reason_code.as_deref()),
        ("denied", Some("policy_denied")),
        "denied inline, never queued for the judge"
    );
    let queued = vault
        .request_clearance(&principal, call(json!({"amount": 50})), None)
        .await
        .expect("queued");
    assert_eq!(
        queued.status, "processing",
        "approve + judge: the judge decides"
    );
}
