//! The port contract suite: behaviour every `TenantStore` + `ControlPlane` (+ `UsageMeter`, `RateLimiter`)
//! adapter must show. Adapters run it with `port_contract_tests!(async_factory)`: the embedded SQLite
//! adapter (ledgix-embedded's tests/contract.rs) and the AWS adapters (ledgix-aws's tests/contract.rs, on PostgreSQL and the emulator).
//! Test-only code: it asserts, so it panics on failure. The token-burn cases are in `burns`, the
//! rate-limit case in `ratelimit`.

mod burns;
mod key_registry;
mod keys;
mod notify;
mod ratelimit;

use std::sync::Arc;

use serde_json::json;

use crate::error::{Conflict, StoreError};
use crate::ledger::LedgerEvent;
use crate::model::{
    ApiKeyRecord, ClearanceRecord, ClearanceRequest, ClearanceStatus, ConfidenceBucket,
    IdempotencyRecord, PolicyVersion, ReviewSettings, Tenant,
};
use crate::ports::{ControlPlane, RateLimiter, TenantStore, UsageMeter, Write};

pub use burns::*;
pub use key_registry::*;
pub use keys::*;
pub use notify::*;
pub use ratelimit::*;

/// What an adapter factory hands the suite: one state backend, its ports.
pub struct Ports {
    pub store: Arc<dyn TenantStore>,
    pub control: Arc<dyn ControlPlane>,
    pub usage: Arc<dyn UsageMeter>,
    pub limiter: Arc<dyn RateLimiter>,
    pub notifications: Arc<dyn crate::notify::NotificationStore>,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

pub fn clearance(tenant_id: &str, request_id: &str, status: ClearanceStatus) -> ClearanceRecord {
    ClearanceRecord {
        tenant_id: tenant_id.into(),
        request_id: request_id.into(),
        status,
        request: ClearanceRequest {
            tool_name: "refund".into(),
            tool_args: json!({"amount": 5}),
            agent_id: "agent".into(),
            session_id: "s".into(),
            context: json!({}),
            human_principal: None,
            parent_jti: None,
            destination_uri: None,
            destination_provider: None,
            destination_account_ref: None,
            data_categories: None,
            purpose: None,
            processing_register_ref: None,
            dataset_ref: None,
        },
        policy_id: "p".into(),
        policy_version_id: "pv".into(),
        policy_content_hash: "sha256:00".into(),
        reason: "r".into(),
        reason_code: None,
        confidence_bucket: ConfidenceBucket::None,
        minimum_confidence_bucket: ConfidenceBucket::High,
        decided_by: None,
        token: None,
        jti: None,
        requested_by: "key-agent".into(),
        created_at: crate::model::now_rfc3339(),
        updated_at: crate::model::now_rfc3339(),
        policies_consulted: vec![],
        root_approved_at: None,
    }
}

pub fn event(request_id: &str) -> LedgerEvent {
    prepared_event(request_id, json!({"amount": 5}))
}

fn idem(scope: &str, key: &str) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: scope.into(),
        key: key.into(),
        request_hash: "h".into(),
        status_code: 200,
        response_body: "{}".into(),
        created_at: crate::model::now_rfc3339(),
    }
}

fn is_conflict<T>(result: &Result<T, StoreError>, which: Conflict) -> bool {
    matches!(result, Err(StoreError::Conflict(c)) if *c == which)
}

pub async fn commit_is_all_or_nothing(p: Ports) {
    let tenant = unique("t");
    p.store
        .commit(&tenant, vec![Write::PutIdempotency(idem(&tenant, "used"))])
        .await
        .expect("first use of the key");
    let failed = p
        .store
        .commit(
            &tenant,
            vec![
                Write::InsertClearance(clearance(&tenant, "r1", ClearanceStatus::Denied)),
                Write::AppendEvent(event("r1")),
                Write::PutIdempotency(idem(&tenant, "used")),
            ],
        )
        .await;
    assert!(
        is_conflict(&failed, Conflict::IdempotencyKey),
        "the reused key conflicts: {failed:?}"
    );
    assert!(
        p.store
            .clearance(&tenant, "r1")
            .await
            .expect("read")
            .is_none(),
        "the clearance rolled back"
    );
    assert!(
        p.store
            .ledger_tail(&tenant, 10)
            .await
            .expect("read")
            .is_empty(),
        "the event rolled back"
    );

    // A token burn and its idempotent answer are atomic too.
    let jti = unique("jti");
    burn(&p, &tenant, &jti, None).await.expect("first burn");
    let again = burn(&p, &tenant, &jti, Some("c1")).await;
    assert!(
        is_conflict(&again, Conflict::JtiBurned),
        "second burn conflicts: {again:?}"
    );
    assert!(
        consume_answer(&p, &tenant, "c1").await.is_none(),
        "its answer was not recorded"
    );
}

pub async fn seq_is_per_tenant_gapless_under_concurrency(p: Ports) {
    let (a, b) = (unique("a"), unique("b"));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = p.store.clone();
        let tenant = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .commit(&tenant, vec![Write::AppendEvent(event(&format!("r{i}")))])
                .await
        }));
    }
    for task in tasks {
        let seqs = task.await.expect("task").expect("commit");
        assert_eq!(seqs.len(), 1);
    }
    for tenant in [&a, &b] {
        let seqs: Vec<i64> = p
            .store
            .ledger_tail(tenant, 100)
            .await
            .expect("read")
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(
            seqs,
            (1..=20).collect::<Vec<_>>(),
            "tenant {tenant} has seq 1..20 in order"
        );
    }
    let tail: Vec<i64> = p
        .store
        .ledger_tail(&a, 5)
        .await
        .expect("read")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        tail,
        vec![16, 17, 18, 19, 20],
        "ledger_tail is the newest N, ascending"
    );
}

pub async fn unsequenced_leaves_are_the_unsealed_events_in_order(p: Ports) {
    let tenant = unique("t");
    for i in 0..3 {
        let mut e = event(&format!("r{i}"));
        e.leaf_hash = format!("{i:02x}").repeat(32);
        p.store
            .commit(&tenant, vec![Write::AppendEvent(e)])
            .await
            .expect("append");
    }
    let leaves = p.store.unsequenced_leaves(&tenant, 10).await.expect("read");
    assert_eq!(
        leaves,
        (0..3)
            .map(|i| (i64::from(i) + 1, format!("{i:02x}").repeat(32)))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        p.store
            .unsequenced_leaves(&tenant, 2)
            .await
            .expect("read")
            .len(),
        2
    );
    let events = p.store.unsequenced_events(&tenant, 10).await.expect("read");
    assert_eq!(
        events
            .iter()
            .map(|e| (e.seq, e.leaf_hash.clone()))
            .collect::<Vec<_>>(),
        leaves,
        "the same events as unsequenced_events"
    );
    assert!(p
        .store
        .unsequenced_leaves(&unique("other"), 10)
        .await
        .expect("read")
        .is_empty());
}

/// An event as the vault makes it: hashed, with a receipt payload built from its fields.
pub fn prepared_event(request_id: &str, tool_args: serde_json::Value) -> LedgerEvent {
    crate::ledger::EventDraft {
        event_uuid: unique("ev"),
        request_id: request_id.into(),
        agent_id: "agent".into(),
        policy_id: "p".into(),
        policy_version_id: "pv".into(),
        policy_content_hash: "sha256:00".into(),
        intent_hash: "sha256:11".into(),
        tool_name: "refund".into(),
        tool_args,
        action_category: "clearance.decision".into(),
        action_metadata: json!({"route": "rules"}),
        reason: "within limits".into(),
        citations: vec![json!({"policy_id": "p"})],
        evidence_chunks: vec![],
        confidence: 0.5,
        confidence_bucket: "medium".into(),
        decision_status: "approved".into(),
        approved: true,
        accepted_at: crate::model::now_rfc3339(),
    }
    .prepare("receipt-key")
    .expect("cbor")
    .seal(&[7u8; 64])
}

pub async fn events_read_back_as_written_and_sealed_in_order(p: Ports) {
    let tenant = unique("t");
    let mut written = Vec::new();
    for i in 0..3 {
        let e = prepared_event(&format!("r{i}"), json!({"amount": i, "note": "ünïcode"}));
        let seq = p
            .store
            .commit(&tenant, vec![Write::AppendEvent(e.clone())])
            .await
            .expect("append");
        written.push(LedgerEvent { seq: seq[0], ..e });
    }
    assert_eq!(
        p.store.ledger_tail(&tenant, 10).await.expect("read"),
        written
    );
    assert_eq!(
        p.store
            .latest_event_for_request(&tenant, "r1")
            .await
            .expect("read"),
        Some(written[1].clone())
    );
    let draft = crate::checkpoint::CheckpointDraft {
        checkpoint_id: 1,
        tree_size: 2,
        root_hash: "22".repeat(32),
        prev_checkpoint_hash: String::new(),
        signer_key_id: "root".into(),
        signed_at: crate::model::now_rfc3339(),
        mmd_seconds: 60,
        export_target: String::new(),
    };
    let payload = draft.payload().expect("cbor");
    let seal = |expected_tree_size| crate::ports::Seal {
        expected_tree_size,
        leaves: vec![(1, 0), (2, 1)],
        nodes: vec![],
        checkpoint: draft.clone().seal(&payload, &[9u8; 64]),
    };
    p.store
        .commit(&tenant, vec![Write::Seal(seal(0))])
        .await
        .expect("seal");
    let again = p.store.commit(&tenant, vec![Write::Seal(seal(0))]).await;
    assert!(is_conflict(&again, Conflict::TreeMoved), "{again:?}");
    let read = p.store.ledger_tail(&tenant, 10).await.expect("read");
    let placed: Vec<_> = read
        .iter()
        .map(|e| (e.seq, e.leaf_index, e.checkpoint_id))
        .collect();
    assert_eq!(
        placed,
        vec![
            (1, Some(0), Some(1)),
            (2, Some(1), Some(1)),
            (3, None, None)
        ]
    );
    for (read, written) in read.iter().zip(&written) {
        let unplaced = LedgerEvent {
            leaf_index: None,
            checkpoint_id: None,
            ..read.clone()
        };
        assert_eq!(&unplaced, written, "sealing changes nothing else");
    }
    assert_eq!(
        p.store.unsequenced_leaves(&tenant, 10).await.expect("read"),
        vec![(3, written[2].leaf_hash.clone())]
    );
}

/// An approved record with the token the vault would mint for it (`tool` overrides the token's tool claim).
fn approved_with_token(tenant: &str, event: &LedgerEvent, tool: Option<&str>) -> ClearanceRecord {
    let mut record = clearance(tenant, &event.request_id, ClearanceStatus::Approved);
    record.reason = event.reason.clone();
    record.created_at = event.accepted_at.clone();
    record.updated_at = event.accepted_at.clone();
    record.decided_by = Some(crate::model::DecisionSource::Rego);
    record.jti = Some(unique("jti"));
    let claims = crate::token::ApprovalClaims {
        iss: "alcv-vault".into(),
        aud: "ledgix-sdk".into(),
        sub: crate::token::TOKEN_SUBJECT.into(),
        iat: 1_795_000_000,
        exp: 1_795_000_300,
        jti: record.jti.clone().unwrap_or_default(),
        tool: tool.unwrap_or(&record.request.tool_name).to_string(),
        agent_id: record.request.agent_id.clone(),
        session_id: record.request.session_id.clone(),
        policy_id: record.policy_id.clone(),
        decision: "approved".into(),
        tool_args_hash: crate::hashing::tool_args_hash(&record.request.tool_args).expect("hash"),
        tenant_id: record.tenant_id.clone(),
        request_id: record.request_id.clone(),
    };
    let input = crate::token::signing_input("kid-1", &claims).expect("input");
    record.token = Some(crate::token::assemble(&input, &[5u8; 64]));
    record
}

fn json_of(record: &Option<ClearanceRecord>) -> serde_json::Value {
    serde_json::to_value(record).expect("json")
}

pub async fn clearances_committed_with_their_event_read_back_as_written(p: Ports) {
    let tenant = unique("t");
    // The token matches the record (as minted), or does not (a tool claim of its own): both read back as written.
    for tool in [None, Some("another_tool")] {
        let event = prepared_event(&unique("r"), json!({"amount": 5}));
        let mut record = approved_with_token(&tenant, &event, tool);
        record.request.tool_name = event.tool_name.clone();
        p.store
            .commit(
                &tenant,
                vec![
                    Write::InsertClearance(record.clone()),
                    Write::AppendEvent(event.clone()),
                ],
            )
            .await
            .expect("commit");
        let read = p
            .store
            .clearance(&tenant, &record.request_id)
            .await
            .expect("read");
        assert_eq!(json_of(&read), json_of(&Some(record.clone())), "{tool:?}");
        let listed = p
            .store
            .clearances_with_status(&tenant, ClearanceStatus::Approved, 10)
            .await
            .expect("list");
        assert!(listed
            .iter()
            .any(|r| json_of(&Some(r.clone())) == json_of(&Some(record.clone()))));
        // Updated: the update reads back.
        let mut consumed = record.clone();
        consumed.status = ClearanceStatus::Denied;
        consumed.reason = "withdrawn".into();
        p.store
            .commit(
                &tenant,
                vec![Write::UpdateClearance {
                    record: consumed.clone(),
                    expected: ClearanceStatus::Approved,
                }],
            )
            .await
            .expect("update");
        let read = p
            .store
            .clearance(&tenant, &record.request_id)
            .await
            .expect("read");
        assert_eq!(json_of(&read), json_of(&Some(consumed)));
    }
}

pub async fn idempotency_keys_are_recorded_once_per_scope(p: Ports) {
    let (a, b) = (unique("a"), unique("b"));
    p.store
        .commit(&a, vec![Write::PutIdempotency(idem(&a, "k"))])
        .await
        .expect("first");
    let again = p
        .store
        .commit(&a, vec![Write::PutIdempotency(idem(&a, "k"))])
        .await;
    assert!(is_conflict(&again, Conflict::IdempotencyKey));
    p.store
        .commit(&b, vec![Write::PutIdempotency(idem(&b, "k"))])
        .await
        .expect("another tenant may use the same key");
    let stored = p
        .store
        .idempotency(&a, "k")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(
        (
            stored.request_hash.as_str(),
            stored.status_code,
            stored.response_body.as_str()
        ),
        ("h", 200, "{}")
    );
    assert!(p
        .store
        .idempotency(&a, "other")
        .await
        .expect("read")
        .is_none());
}

pub async fn clearance_updates_are_conditional_and_reads_isolated(p: Ports) {
    let (tenant, other) = (unique("t"), unique("o"));
    let record = clearance(&tenant, "r1", ClearanceStatus::Processing);
    p.store
        .commit(&tenant, vec![Write::InsertClearance(record.clone())])
        .await
        .expect("insert");
    let status = |p: &Ports, tenant: String| {
        let store = p.store.clone();
        async move {
            store
                .clearance_status(&tenant, "r1")
                .await
                .expect("read status")
                .map(|view| (view.status, view.token))
        }
    };
    assert_eq!(
        status(&p, tenant.clone()).await,
        Some(("processing".into(), None))
    );
    let dup = p
        .store
        .commit(&tenant, vec![Write::InsertClearance(record.clone())])
        .await;
    assert!(
        is_conflict(&dup, Conflict::ClearanceState),
        "a request id is inserted once"
    );
    let mut decided = record.clone();
    decided.status = ClearanceStatus::PendingReview;
    let wrong = p
        .store
        .commit(
            &tenant,
            vec![Write::UpdateClearance {
                record: decided.clone(),
                expected: ClearanceStatus::PendingReview,
            }],
        )
        .await;
    assert!(is_conflict(&wrong, Conflict::ClearanceState));
    p.store
        .commit(
            &tenant,
            vec![Write::UpdateClearance {
                record: decided,
                expected: ClearanceStatus::Processing,
            }],
        )
        .await
        .expect("update from the expected state");
    let read = p
        .store
        .clearance(&tenant, "r1")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(read.status, ClearanceStatus::PendingReview);
    assert_eq!(
        status(&p, tenant.clone()).await,
        Some(("pending_review".into(), None)),
        "the status follows the last commit"
    );
    let pending = p
        .store
        .clearances_with_status(&tenant, ClearanceStatus::PendingReview, 10)
        .await
        .expect("read");
    assert_eq!(pending.len(), 1);
    assert!(
        p.store
            .clearance(&other, "r1")
            .await
            .expect("read")
            .is_none(),
        "another tenant cannot see it"
    );
    assert!(p
        .store
        .clearances_with_status(&other, ClearanceStatus::PendingReview, 10)
        .await
        .expect("read")
        .is_empty());
    assert_eq!(status(&p, other.clone()).await, None, "nor its status");

    let mut approved = read.clone();
    approved.status = ClearanceStatus::Approved;
    approved.token = Some("token-r1".into());
    p.store
        .commit(
            &tenant,
            vec![Write::UpdateClearance {
                record: approved,
                expected: ClearanceStatus::PendingReview,
            }],
        )
        .await
        .expect("approve");
    assert_eq!(
        status(&p, tenant.clone()).await,
        Some(("approved".into(), Some("token-r1".into())))
    );
}

pub async fn policies_and_settings_round_trip(p: Ports) {
    let tenant = unique("t");
    let version = |n: i64| PolicyVersion {
        tenant_id: tenant.clone(),
        policy_id: "refunds".into(),
        version: n,
        version_id: format!("v{n}-{tenant}"),
        content_hash: format!("sha256:{n}"),
        description: String::new(),
        rules: vec!["r".into()],
        tools: vec!["refund".into()],
        rego: None,
        created_at: crate::model::now_rfc3339(),
    };
    p.store
        .commit(&tenant, vec![Write::PutPolicy(version(1))])
        .await
        .expect("v1");
    p.store
        .commit(&tenant, vec![Write::PutPolicy(version(2))])
        .await
        .expect("v2");
    let latest = p.store.policies(&tenant).await.expect("read");
    assert_eq!(
        latest,
        vec![version(2)]
            .into_iter()
            .map(|v| PolicyVersion {
                created_at: latest[0].created_at.clone(),
                ..v
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(
        p.store
            .policy_version(&tenant, &version(1).version_id)
            .await
            .expect("read")
            .map(|v| v.version),
        Some(1)
    );
    assert!(p
        .store
        .policies(&unique("other"))
        .await
        .expect("read")
        .is_empty());
    assert_eq!(
        p.store.review_settings(&tenant).await.expect("read"),
        ReviewSettings::default()
    );
    let strict = ReviewSettings {
        minimum_confidence_bucket: ConfidenceBucket::ExtraHigh,
        review_deadline_seconds: 600,
    };
    p.store
        .commit(&tenant, vec![Write::PutReviewSettings(strict)])
        .await
        .expect("put");
    assert_eq!(
        p.store.review_settings(&tenant).await.expect("read"),
        strict
    );
}

pub async fn policy_chunks_are_kept_per_version_and_model(p: Ports) {
    let tenant = unique("t");
    let chunk = |index: u32, text: &str, x: f32| crate::ports::PolicyChunk {
        index,
        text: text.into(),
        embedding: vec![x, -x, 0.25, f32::MIN_POSITIVE],
    };
    let put = |model: &str, chunks| Write::PutPolicyChunks {
        policy_version_id: "pv1".into(),
        embedding_model: model.into(),
        chunks,
    };
    assert!(p
        .store
        .policy_chunks(&tenant, "pv1", "m1")
        .await
        .expect("read")
        .is_empty());
    // Written out of order; read back by index.
    p.store
        .commit(
            &tenant,
            vec![put(
                "m1",
                vec![chunk(1, "second", 2.0), chunk(0, "first", 1.0)],
            )],
        )
        .await
        .expect("put");
    // A second worker storing the same version and model keeps the first's rows and does not fail.
    p.store
        .commit(&tenant, vec![put("m1", vec![chunk(0, "other", 9.0)])])
        .await
        .expect("put again");
    p.store
        .commit(&tenant, vec![put("m2", vec![chunk(0, "re-embedded", 3.0)])])
        .await
        .expect("another model");
    assert_eq!(
        p.store
            .policy_chunks(&tenant, "pv1", "m1")
            .await
            .expect("read"),
        vec![chunk(0, "first", 1.0), chunk(1, "second", 2.0)]
    );
    assert_eq!(
        p.store
            .policy_chunks(&tenant, "pv1", "m2")
            .await
            .expect("read"),
        vec![chunk(0, "re-embedded", 3.0)]
    );
    assert!(p
        .store
        .policy_chunks(&tenant, "pv2", "m1")
        .await
        .expect("read")
        .is_empty());
    assert!(p
        .store
        .policy_chunks(&unique("other"), "pv1", "m1")
        .await
        .expect("read")
        .is_empty());
}

pub async fn tenants_and_keys(p: Ports) {
    let tenant = Tenant {
        tenant_id: unique("tn"),
        name: "acme".into(),
        created_at: crate::model::now_rfc3339(),
    };
    let key = |id: &str| ApiKeyRecord {
        key_id: format!("{id}-{}", tenant.tenant_id),
        tenant_id: tenant.tenant_id.clone(),
        key_hash: format!("hash-{id}-{}", tenant.tenant_id),
        created_at: crate::model::now_rfc3339(),
        revoked: false,
        roles: crate::roles::Role::ALL.to_vec(),
        name: String::new(),
    };
    let record = idem("admin", &unique("idem"));
    p.control
        .create_tenant(&tenant, &key("k1"), Some(&record))
        .await
        .expect("create");
    let again = p
        .control
        .create_tenant(&tenant, &key("k9"), Some(&record))
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict(Conflict::IdempotencyKey))),
        "{again:?}"
    );
    assert!(
        p.control
            .api_key_by_hash(&key("k9").key_hash)
            .await
            .expect("read")
            .is_none(),
        "nothing written twice"
    );
    assert_eq!(
        p.control
            .idempotency("admin", &record.key)
            .await
            .expect("read")
            .map(|r| r.key),
        Some(record.key.clone())
    );
    assert_eq!(
        p.control.tenant(&tenant.tenant_id).await.expect("read"),
        Some(tenant.clone())
    );
    p.control
        .add_api_key(&key("k2"), None)
        .await
        .expect("second key");
    let found = p
        .control
        .api_key_by_hash(&key("k2").key_hash)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(found.tenant_id, tenant.tenant_id);
    assert!(!found.revoked);
    assert!(p
        .control
        .revoke_api_key(&key("k2").key_id)
        .await
        .expect("revoke"));
    assert!(
        p.control
            .api_key_by_hash(&key("k2").key_hash)
            .await
            .expect("read")
            .expect("present")
            .revoked
    );
    assert!(!p
        .control
        .revoke_api_key("no-such-key")
        .await
        .expect("revoke"));
}

pub async fn usage_counts_add_up_per_tenant_and_day(p: Ports) {
    let (a, b) = (unique("a"), unique("b"));
    // Sequential on purpose: concurrent increments are atomic in DynamoDB (ADD) and SQLite (single writer),
    // but the AWS emulator does not promise it, and a flaky contract protects nothing.
    for _ in 0..10 {
        p.usage
            .record(&a, "2026-11-22", "clearance.approved", 1)
            .await
            .expect("record");
    }
    p.usage
        .record(&a, "2026-11-22", "token.consumed", 3)
        .await
        .expect("record");
    p.usage
        .record(&a, "2026-11-23", "clearance.approved", 1)
        .await
        .expect("record");
    p.usage
        .record(&b, "2026-11-22", "clearance.approved", 1)
        .await
        .expect("record");
    let day = p.usage.usage(&a, "2026-11-22").await.expect("read");
    assert_eq!(
        day,
        vec![
            ("clearance.approved".to_string(), 10),
            ("token.consumed".to_string(), 3)
        ]
    );
    assert_eq!(
        p.usage.usage(&b, "2026-11-22").await.expect("read"),
        vec![("clearance.approved".to_string(), 1)]
    );
    assert!(p
        .usage
        .usage(&b, "2026-11-23")
        .await
        .expect("read")
        .is_empty());
}

/// Generates one `#[tokio::test]` per contract case for an adapter. `$factory` is an async expression
/// returning `(Ports, guard)`; the guard keeps per-test resources (a temp dir, a database) alive. Extra
/// attributes after a comma (e.g. `#[ignore = "..."]`) apply to every generated test.
#[macro_export]
macro_rules! port_contract_tests {
    ($factory:expr) => {
        $crate::port_contract_tests!($factory, #[cfg(all())]);
    };
    ($factory:expr, $(#[$meta:meta])+) => {
        $crate::port_contract_tests!(@case [$(#[$meta])+] $factory,
            commit_is_all_or_nothing,
            seq_is_per_tenant_gapless_under_concurrency,
            unsequenced_leaves_are_the_unsealed_events_in_order,
            events_read_back_as_written_and_sealed_in_order,
            clearances_committed_with_their_event_read_back_as_written,
            jti_burns_exactly_once_under_concurrency,
            consume_answers_are_burned_with_the_jti_and_kept_apart,
            idempotency_keys_are_recorded_once_per_scope,
            clearance_updates_are_conditional_and_reads_isolated,
            policies_and_settings_round_trip,
            policy_chunks_are_kept_per_version_and_model,
            tenants_and_keys,
            keys_carry_roles_and_are_listed_per_tenant,
            tenant_key_answers_are_kept_apart_from_admin_answers,
            usage_counts_add_up_per_tenant_and_day,
            rate_limit_decides_every_concurrent_request,
            notification_settings_round_trip,
            deliveries_are_created_once_and_moved_conditionally,
            outbox_commits_with_its_decision_or_not_at_all);
    };
    (@case $attrs:tt $factory:expr, $($case:ident),+) => {
        $( $crate::port_contract_tests!(@one $attrs $factory, $case); )+
    };
    (@one [$(#[$meta:meta])*] $factory:expr, $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$meta])*
        async fn $case() {
            let (ports, _guard) = $factory.await;
            $crate::contract::$case(ports).await;
        }
    };
}
