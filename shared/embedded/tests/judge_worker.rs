//! The judge worker against a scripted model on the real SQLite store: verdicts, confidence thresholds, most
//! restrictive wins, retries within the budget, fail-closed handling, retrieval over long policies, ledger
//! evidence and metering. (The adapters and the emulated services have their own suites; this one is the
//! domain's decision logic, which no adapter can change.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ledgix_core::config::VaultSettings;
use ledgix_core::judge::{prompt, JudgeSettings};
use ledgix_core::model::ClearanceRequest;
use ledgix_core::policy::PolicyRegistration;
use ledgix_core::ports::{
    Embedded, JudgeCall, JudgeJob, JudgeModel, JudgePrompt, ModelError, ModelReply, TenantStore,
};
use ledgix_core::service::{Principal, VaultPorts};
use ledgix_core::Vault;
use ledgix_embedded::{EmbeddedQueue, LocalSigner, MemoryRateLimiter, SqliteStore};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Answers from a script (then `fallback`), records every prompt, and embeds by hashed words.
struct ScriptedModel {
    script: Mutex<VecDeque<Result<Value, ModelError>>>,
    fallback: Value,
    prompts: Mutex<Vec<JudgePrompt>>,
    embed_calls: Mutex<Vec<usize>>,
    decide_calls: AtomicUsize,
    embeds: bool,
}

impl ScriptedModel {
    fn new(script: Vec<Result<Value, ModelError>>, fallback: Value) -> Arc<Self> {
        Arc::new(ScriptedModel {
            script: Mutex::new(script.into()),
            fallback,
            prompts: Mutex::new(vec![]),
            embed_calls: Mutex::new(vec![]),
            decide_calls: AtomicUsize::new(0),
            embeds: true,
        })
    }

    fn last_prompt(&self) -> JudgePrompt {
        self.prompts
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a prompt")
    }
}

fn verdict(decision: &str, confidence: f64, rules: &[&str]) -> Value {
    json!({"decision": decision, "confidence": confidence, "reason": format!("scripted {decision}"), "rules_applied": rules})
}

fn embed_words(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; 64];
    for word in text
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let digest = Sha256::digest(word.as_bytes());
        v[usize::from(digest[0]) % 64] += 1.0;
    }
    v
}

#[async_trait]
impl JudgeModel for ScriptedModel {
    fn backend(&self) -> &str {
        "scripted"
    }

    fn model_id(&self) -> &str {
        "scripted-model-1"
    }

    fn embedding_model(&self) -> Option<&str> {
        self.embeds.then_some("scripted-embed-1")
    }

    async fn decide(&self, call: JudgeCall<'_>) -> Result<ModelReply, ModelError> {
        self.decide_calls.fetch_add(1, Ordering::SeqCst);
        self.prompts.lock().unwrap().push(call.prompt.clone());
        let next = self.script.lock().unwrap().pop_front();
        let verdict = next.unwrap_or_else(|| Ok(self.fallback.clone()))?;
        Ok(ModelReply {
            verdict,
            input_tokens: 120,
            output_tokens: 30,
        })
    }

    async fn embed(&self, texts: &[String]) -> Result<Embedded, ModelError> {
        self.embed_calls.lock().unwrap().push(texts.len());
        Ok(Embedded {
            vectors: texts.iter().map(|t| embed_words(t)).collect(),
            input_tokens: 7 * texts.len() as u64,
        })
    }
}

struct Harness {
    vault: Vault,
    store: Arc<SqliteStore>,
    principal: Principal,
    _queue: ledgix_embedded::queue::JudgeReceiver,
    _dir: tempfile::TempDir,
}

async fn harness(model: Arc<ScriptedModel>, judge: JudgeSettings) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("vault.db")).expect("open"));
    let (queue, receiver) = EmbeddedQueue::new(16);
    let ports = VaultPorts {
        control: sqlite.clone(),
        store: sqlite.clone(),
        limiter: Arc::new(MemoryRateLimiter::default()),
        signer: Arc::new(LocalSigner::generate("k1")),
        queue: Arc::new(queue),
        judge: Some(model),
        anchor: None,
        usage: sqlite.clone(),
        notify: None,
    };
    let vault = Vault::new(
        VaultSettings {
            judge,
            ..Default::default()
        },
        ports,
    );
    let created = vault.create_tenant("t", None).await.expect("tenant");
    let principal = vault
        .authenticate(created.api_key.as_deref().expect("key"))
        .await
        .expect("principal");
    Harness {
        vault,
        store: sqlite,
        principal,
        _queue: receiver,
        _dir: dir,
    }
}

fn quick() -> JudgeSettings {
    JudgeSettings {
        retry_budget: Duration::from_secs(2),
        ..Default::default()
    }
}

fn english(policy_id: &str, rules: &[&str]) -> PolicyRegistration {
    PolicyRegistration {
        policy_id: policy_id.into(),
        description: String::new(),
        rules: rules.iter().map(|r| r.to_string()).collect(),
        tools: vec!["refund".into()],
        rego: None,
    }
}

impl Harness {
    async fn register(&self, policy: PolicyRegistration) {
        self.vault
            .register_policy(&self.principal, policy, None)
            .await
            .expect("registered");
    }

    /// Request clearance for `args`, run the judge job, return the final status view as JSON.
    async fn judge(&self, args: Value) -> Value {
        let request: ClearanceRequest =
            serde_json::from_value(json!({"tool_name": "refund", "tool_args": args}))
                .expect("request");
        let queued = self
            .vault
            .request_clearance(&self.principal, request, None)
            .await
            .expect("queued");
        assert_eq!(queued.status, "processing");
        let job = JudgeJob {
            tenant_id: self.principal.tenant_id.clone(),
            request_id: queued.request_id.clone(),
            session_id: String::new(),
        };
        self.vault.process_judge_job(&job).await.expect("judged");
        let view = self
            .vault
            .clearance_status(&self.principal, &queued.request_id)
            .await
            .expect("status");
        serde_json::to_value(view).expect("json")
    }

    /// The judge evidence of the latest ledger event.
    async fn evidence(&self) -> Value {
        let events = self.vault.ledger(&self.principal, 1).await.expect("ledger");
        let event = serde_json::to_value(&events[0]).expect("json");
        event["action_metadata"]["judge"].clone()
    }

    async fn usage(&self, metric: &str) -> u64 {
        let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let usage = self
            .vault
            .usage(&self.principal, &day)
            .await
            .expect("usage");
        usage
            .into_iter()
            .find(|(m, _)| m == metric)
            .map_or(0, |(_, n)| n)
    }
}

#[tokio::test]
async fn a_confident_approval_approves_and_the_ledger_holds_the_evidence() {
    let model = ScriptedModel::new(vec![], verdict("approve", 0.93, &["R1", "R7"]));
    let h = harness(model.clone(), quick()).await;
    h.register(english("refunds", &["Refunds up to 50 EUR are allowed."]))
        .await;
    let status = h.judge(json!({"amount": 20})).await;
    assert_eq!(status["status"], "approved");
    assert_eq!(status["confidence_bucket"], "extra_high");
    assert!(status["token"].is_string());
    let evidence = h.evidence().await;
    assert_eq!(evidence["backend"], "scripted");
    assert_eq!(evidence["model"], "scripted-model-1");
    let judgement = &evidence["judgements"][0];
    assert_eq!(
        judgement["prompt_sha256"],
        prompt::sha256(&model.last_prompt())
    );
    assert_eq!(judgement["verdict"]["decision"], "approve");
    assert_eq!(
        judgement["verdict"]["rules_applied"],
        json!(["R1"]),
        "an id the model was not shown is dropped"
    );
    assert_eq!(judgement["passages"], json!(["R1"]));
    assert_eq!(judgement["attempts"], 1);
    assert!(judgement["latency_ms"].is_u64());
    assert_eq!(h.usage("judge.judgements").await, 1);
    assert_eq!(h.usage("judge.input_tokens").await, 120);
    assert_eq!(h.usage("judge.output_tokens").await, 30);
    // The call reached the model as data inside its block.
    assert!(model.last_prompt().user.contains("\"amount\":20"));
}

#[tokio::test]
async fn thresholds_deny_and_review_follow_the_verdict() {
    let model = ScriptedModel::new(
        vec![
            Ok(verdict("approve", 0.6, &[])),
            Ok(verdict("deny", 0.95, &["R1"])),
            Ok(verdict("review", 0.4, &[])),
        ],
        verdict("review", 0.0, &[]),
    );
    let h = harness(model, quick()).await;
    h.register(english("refunds", &["Refunds up to 50 EUR are allowed."]))
        .await;
    let below = h.judge(json!({"amount": 1})).await;
    assert_eq!(
        (below["status"].as_str(), below["reason_code"].as_str()),
        (Some("pending_review"), Some("below_minimum_confidence"))
    );
    assert_eq!(below["confidence_bucket"], "medium");
    assert!(below["token"].is_null());
    let denied = h.judge(json!({"amount": 2})).await;
    assert_eq!(
        (denied["status"].as_str(), denied["reason_code"].as_str()),
        (Some("denied"), Some("judge_denied"))
    );
    let review = h.judge(json!({"amount": 3})).await;
    assert_eq!(
        (review["status"].as_str(), review["reason_code"].as_str()),
        (Some("pending_review"), Some("judge_review"))
    );
    assert_eq!(review["reason"], "scripted review");
}

#[tokio::test]
async fn throttling_is_retried_then_approves_and_past_the_budget_goes_to_a_human() {
    let throttled = || Err(ModelError::Throttled("slow down".into()));
    let model = ScriptedModel::new(
        vec![throttled(), throttled()],
        verdict("approve", 0.99, &[]),
    );
    let h = harness(model.clone(), quick()).await;
    h.register(english("refunds", &["Refunds up to 50 EUR are allowed."]))
        .await;
    let approved = h.judge(json!({"amount": 1})).await;
    assert_eq!(approved["status"], "approved");
    assert_eq!(h.evidence().await["judgements"][0]["attempts"], 3);

    // Throttled for ever: pending review within the budget, never approved.
    let model = ScriptedModel::new(
        (0..10_000).map(|_| throttled()).collect(),
        verdict("approve", 0.99, &[]),
    );
    let h = harness(
        model.clone(),
        JudgeSettings {
            retry_budget: Duration::from_millis(1500),
            ..Default::default()
        },
    )
    .await;
    h.register(english("refunds", &["Refunds up to 50 EUR are allowed."]))
        .await;
    let started = std::time::Instant::now();
    let stranded = h.judge(json!({"amount": 1})).await;
    assert_eq!(
        (
            stranded["status"].as_str(),
            stranded["reason_code"].as_str()
        ),
        (Some("pending_review"), Some("judge_unavailable"))
    );
    assert!(stranded["token"].is_null());
    assert!(
        model.decide_calls.load(Ordering::SeqCst) > 1,
        "retried before giving up"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up after its budget"
    );
    assert_eq!(
        h.evidence().await["judgements"][0]["outcome"],
        "judge_unavailable"
    );
}

#[tokio::test]
async fn refused_requests_are_not_retried_and_invalid_output_never_approves() {
    let model = ScriptedModel::new(
        vec![
            Err(ModelError::Rejected("model access denied".into())),
            Ok(
                json!({"decision": "approve", "confidence": 0.99, "reason": "ok", "rules_applied": [], "override": "yes"}),
            ),
            Ok(
                json!({"decision": "APPROVE", "confidence": 0.99, "reason": "ok", "rules_applied": []}),
            ),
            Err(ModelError::InvalidOutput("no tool call".into())),
        ],
        verdict("approve", 0.99, &[]),
    );
    let h = harness(model.clone(), quick()).await;
    h.register(english("refunds", &["Refunds up to 50 EUR are allowed."]))
        .await;
    let refused = h.judge(json!({"amount": 1})).await;
    assert_eq!(refused["reason_code"], "judge_unavailable");
    assert_eq!(h.evidence().await["judgements"][0]["attempts"], 1);
    for amount in 2..=4 {
        let invalid = h.judge(json!({"amount": amount})).await;
        assert_eq!(
            (invalid["status"].as_str(), invalid["reason_code"].as_str()),
            (Some("pending_review"), Some("judge_invalid_output")),
            "{amount}"
        );
    }
}

#[tokio::test]
async fn most_restrictive_wins_across_judged_policies() {
    let model = ScriptedModel::new(
        vec![
            Ok(verdict("approve", 0.99, &[])),
            Ok(verdict("deny", 0.9, &["R1"])),
        ],
        verdict("approve", 0.99, &[]),
    );
    let h = harness(model.clone(), quick()).await;
    h.register(english("a-refunds", &["Refunds up to 50 EUR are allowed."]))
        .await;
    h.register(english("b-fraud", &["Never refund flagged accounts."]))
        .await;
    let denied = h.judge(json!({"amount": 1})).await;
    assert_eq!(denied["status"], "denied");
    assert_eq!(
        model.decide_calls.load(Ordering::SeqCst),
        2,
        "both policies were judged"
    );
    let evidence = h.evidence().await;
    assert_eq!(evidence["judgements"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn long_policies_are_chunked_once_and_the_relevant_chunk_is_retrieved() {
    let model = ScriptedModel::new(vec![], verdict("approve", 0.99, &["C3"]));
    let h = harness(
        model.clone(),
        JudgeSettings {
            policy_budget_chars: 200,
            top_k: 2,
            ..quick()
        },
    )
    .await;
    let rules = [
        "Travel bookings need a manager's approval before any ticket is bought for an employee.",
        "Payroll changes are made only by the finance team, never by an assistant or an agent.",
        "Refunds to customer accounts opened this week are forbidden, whatever the amount requested.",
        "Marketing emails go to at most fifty customers at once and only to those who opted in.",
        "Database exports leave the company only through the approved storage bucket and nowhere else.",
    ];
    h.register(english("handbook", &rules)).await;
    let status = h
        .judge(json!({"customer": "c-17", "refund": "customer account opened this week"}))
        .await;
    assert_eq!(status["status"], "approved");
    let judgement = &h.evidence().await["judgements"][0];
    let retrieved = judgement["retrieved_chunk_ids"]
        .as_array()
        .expect("retrieval was used")
        .clone();
    assert_eq!(retrieved.len(), 2);
    assert!(
        retrieved.contains(&json!("C3")),
        "the refund rule is retrieved: {retrieved:?}"
    );
    let prompt = model.last_prompt();
    assert!(prompt
        .user
        .contains("Refunds to customer accounts opened this week"));
    assert!(
        !prompt.user.contains("Payroll changes"),
        "irrelevant chunks stay out"
    );
    let page = h
        .vault
        .list_policies(&h.principal, Some(10), None)
        .await
        .expect("policies");
    let stored = h
        .store
        .policy_chunks(
            &h.principal.tenant_id,
            &page.policies[0].version_id,
            "scripted-embed-1",
        )
        .await
        .expect("chunks");
    assert_eq!(stored.len(), rules.len());
    // The second judgement embeds only its query: the chunks are stored.
    h.judge(json!({"trip": "travel booking for an employee ticket"}))
        .await;
    assert_eq!(*model.embed_calls.lock().unwrap(), vec![rules.len(), 1, 1]);
    assert!(model.last_prompt().user.contains("Travel bookings need"));
    assert_eq!(
        h.usage("judge.embedding_tokens").await,
        7 * (rules.len() as u64 + 2)
    );
}
