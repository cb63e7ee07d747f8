//! The inline decision pipeline, stage by stage and end to end (no I/O):
//! Rego evaluation → token claims + Ed25519 signature → event hash → signed receipt.
//! Run: cargo bench -p ledgix-core --bench decision_pipeline

use criterion::{criterion_group, criterion_main, Criterion};
use ed25519_dalek::{Signer as _, SigningKey};
use ledgix_core::hashing::{intent_hash, tool_args_hash};
use ledgix_core::ledger::EventDraft;
use ledgix_core::policy::RegoPolicy;
use ledgix_core::token::{self, ApprovalClaims};
use serde_json::{json, Value};
use std::hint::black_box;

const POLICY: &str = r#"
package refunds
default decision := "deny"
decision := "approve" if { input.tool_args.amount <= 100; input.tool_args.currency == "usd" }
decision := "review" if { input.tool_args.amount > 100; input.tool_args.amount <= 1000 }
reason := "refund within the automatic limit" if { decision == "approve" }
"#;

fn args() -> Value {
    json!({"amount": 45, "currency": "usd", "customer": "cus_123", "note": "late delivery", "items": [1, 2, 3]})
}

fn claims(args: &Value) -> ApprovalClaims {
    ApprovalClaims {
        iss: "alcv-vault".into(),
        aud: "ledgix-sdk".into(),
        sub: "clearance".into(),
        iat: 1_800_000_000,
        exp: 1_800_000_300,
        jti: "0b9a7a3e-8a4f-4f7e-9d1e-2f1c3b4a5d6e".into(),
        tool: "stripe_refund".into(),
        agent_id: "agent-7".into(),
        session_id: "s-1".into(),
        policy_id: "refunds".into(),
        decision: "approved".into(),
        tool_args_hash: tool_args_hash(args).expect("hashable"),
        tenant_id: "tn_1".into(),
        request_id: "req-1".into(),
    }
}

fn draft(args: &Value) -> EventDraft {
    EventDraft {
        event_uuid: "e1".into(),
        request_id: "req-1".into(),
        agent_id: "agent-7".into(),
        policy_id: "refunds".into(),
        policy_version_id: "pv-1".into(),
        policy_content_hash: "sha256:abc".into(),
        intent_hash: intent_hash("stripe_refund", args, "agent-7", "s-1").expect("hashable"),
        tool_name: "stripe_refund".into(),
        tool_args: args.clone(),
        action_category: "clearance.decision".into(),
        action_metadata: json!({"status": "approved", "session_id": "s-1"}),
        reason: "refund within the automatic limit".into(),
        citations: vec![],
        evidence_chunks: vec![],
        confidence: 0.95,
        confidence_bucket: "extra_high".into(),
        decision_status: "approved".into(),
        approved: true,
        accepted_at: "2026-11-22T09:00:00.123456Z".into(),
    }
}

fn pipeline(c: &mut Criterion) {
    let policy = RegoPolicy::compile(POLICY).expect("compiles");
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let args = args();
    let input = json!({"tool_name": "stripe_refund", "tool_args": args, "agent_id": "agent-7", "session_id": "s-1",
                       "context": {}, "tenant_id": "tn_1"});

    c.bench_function("rego_evaluate", |b| {
        b.iter(|| policy.evaluate(black_box(&input)).expect("evaluates"))
    });
    c.bench_function("token_sign", |b| {
        b.iter(|| {
            let claims = claims(black_box(&args));
            let signing_input =
                token::signing_input("vault-key-001", &claims).expect("serialisable");
            token::assemble(
                &signing_input,
                &key.sign(signing_input.as_bytes()).to_bytes(),
            )
        })
    });
    c.bench_function("event_hash_and_receipt", |b| {
        b.iter(|| {
            let prepared = draft(black_box(&args))
                .prepare("vault-key-001")
                .expect("encodable");
            let signature = key.sign(&prepared.receipt_payload).to_bytes();
            prepared.seal(&signature)
        })
    });
    c.bench_function("inline_decision_end_to_end", |b| {
        b.iter(|| {
            let outcome = policy.evaluate(black_box(&input)).expect("evaluates");
            let claims = claims(&args);
            let signing_input =
                token::signing_input("vault-key-001", &claims).expect("serialisable");
            let token = token::assemble(
                &signing_input,
                &key.sign(signing_input.as_bytes()).to_bytes(),
            );
            let prepared = draft(&args).prepare("vault-key-001").expect("encodable");
            let signature = key.sign(&prepared.receipt_payload).to_bytes();
            (outcome, token, prepared.seal(&signature))
        })
    });
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
