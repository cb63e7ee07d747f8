use ed25519_dalek::{Signer as _, SigningKey};
use ledgix_core::hashing::tool_args_hash;
use ledgix_core::model::{ConsultedPolicy, PolicyVersion};
use ledgix_core::policy::{
    applicable, evaluate, Applies, CompiledPolicy, PolicyRegistration, RegoDecision, RegoPolicy,
    Verdict,
};
use ledgix_core::token::{self, ApprovalClaims, PublicKey};
use ledgix_core::VaultError;
use serde_json::json;

fn key() -> (SigningKey, PublicKey) {
    let signing = SigningKey::from_bytes(&[7u8; 32]);
    let public = PublicKey {
        kid: "vault-key-001".into(),
        ed25519: signing.verifying_key().to_bytes(),
    };
    (signing, public)
}

fn claims(exp_offset: i64) -> ApprovalClaims {
    let now = chrono::Utc::now().timestamp();
    ApprovalClaims {
        iss: "alcv-vault".into(),
        aud: "ledgix-sdk".into(),
        sub: "clearance".into(),
        iat: now,
        exp: now + exp_offset,
        jti: "jti-1".into(),
        tool: "refund".into(),
        agent_id: "a".into(),
        session_id: "s".into(),
        policy_id: "p".into(),
        decision: "approved".into(),
        tool_args_hash: tool_args_hash(&json!({"amount": 1})).expect("hashable"),
        tenant_id: "t".into(),
        request_id: "r".into(),
    }
}

fn sign(signing: &SigningKey, claims: &ApprovalClaims) -> String {
    let input = token::signing_input("vault-key-001", claims).expect("serialisable");
    token::assemble(&input, &signing.sign(input.as_bytes()).to_bytes())
}

#[test]
fn tokens_verify_and_reject_tampering_expiry_and_wrong_audience() {
    let (signing, public) = key();
    let good = sign(&signing, &claims(300));
    let verified = token::verify(
        &good,
        std::slice::from_ref(&public),
        "alcv-vault",
        "ledgix-sdk",
    )
    .expect("valid token");
    assert_eq!(verified, claims(300).clone_with(verified.iat, verified.exp));

    let mut tampered = good.clone();
    let last = tampered.pop().expect("non-empty");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(matches!(
        token::verify(
            &tampered,
            std::slice::from_ref(&public),
            "alcv-vault",
            "ledgix-sdk"
        ),
        Err(VaultError::InvalidToken)
    ));

    let expired = sign(&signing, &claims(-10));
    assert!(matches!(
        token::verify(
            &expired,
            std::slice::from_ref(&public),
            "alcv-vault",
            "ledgix-sdk"
        ),
        Err(VaultError::InvalidToken)
    ));
    assert!(matches!(
        token::verify(&good, std::slice::from_ref(&public), "alcv-vault", "other"),
        Err(VaultError::InvalidToken)
    ));

    let other = SigningKey::from_bytes(&[9u8; 32]);
    let forged = sign(&other, &claims(300));
    assert!(matches!(
        token::verify(&forged, &[public], "alcv-vault", "ledgix-sdk"),
        Err(VaultError::InvalidToken)
    ));
}

trait CloneWith {
    fn clone_with(&self, iat: i64, exp: i64) -> Self;
}

impl CloneWith for ApprovalClaims {
    fn clone_with(&self, iat: i64, exp: i64) -> Self {
        ApprovalClaims {
            iat,
            exp,
            ..self.clone()
        }
    }
}

#[test]
fn tool_args_hash_is_jcs_sha256() {
    // RFC 8785: keys sorted, no whitespace, numbers in ECMAScript form.
    let args = json!({"b": 1.0, "a": "é", "c": [1e21, 0.1]});
    let canonical = r#"{"a":"é","b":1,"c":[1e+21,0.1]}"#;
    let expected = format!(
        "sha256:{}",
        ledgix_core::hashing::sha256_hex(canonical.as_bytes())
    );
    assert_eq!(tool_args_hash(&args).expect("hashable"), expected);
}

const REFUNDS: &str = r#"
package refunds
default decision := "deny"
decision := "approve" if { input.tool_args.amount <= 100 }
decision := "review" if { input.tool_args.amount > 100; input.tool_args.amount <= 1000 }
reason := "large refund" if { input.tool_args.amount > 1000 }
reason_code := "over_limit" if { input.tool_args.amount > 1000 }
"#;

#[test]
fn rego_decides_approve_review_and_deny_with_reasons() {
    let policy = RegoPolicy::compile(REFUNDS).expect("compiles");
    let decide = |amount: i64| {
        policy
            .evaluate(&json!({"tool_args": {"amount": amount}}))
            .expect("evaluates")
    };
    assert_eq!(decide(50).decision, RegoDecision::Approve);
    assert_eq!(decide(500).decision, RegoDecision::Review);
    let denied = decide(5000);
    assert_eq!(denied.decision, RegoDecision::Deny);
    assert_eq!(denied.reason.as_deref(), Some("large refund"));
    assert_eq!(denied.reason_code.as_deref(), Some("over_limit"));
}

#[test]
fn rego_without_a_decision_is_undefined_and_bad_modules_are_refused() {
    let partial = RegoPolicy::compile("package p\ndecision := \"approve\" if { input.ok }")
        .expect("compiles");
    assert_eq!(
        partial.evaluate(&json!({})).expect("evaluates").decision,
        RegoDecision::Undefined
    );
    assert!(matches!(
        RegoPolicy::compile("package p\ndecision := "),
        Err(VaultError::InvalidPolicy(_))
    ));
    let bogus = RegoPolicy::compile("package p\ndecision := \"maybe\"");
    assert!(
        matches!(bogus, Err(VaultError::InvalidPolicy(_))),
        "a decision outside the four values is refused"
    );
}

fn version(policy_id: &str, tools: &[&str], created_at: &str) -> CompiledPolicy {
    policy(policy_id, tools, created_at, None)
}

fn policy(policy_id: &str, tools: &[&str], created_at: &str, rego: Option<&str>) -> CompiledPolicy {
    CompiledPolicy::new(PolicyVersion {
        tenant_id: "t".into(),
        policy_id: policy_id.into(),
        version: 1,
        version_id: format!("v-{policy_id}"),
        content_hash: String::new(),
        description: String::new(),
        rules: if rego.is_some() {
            vec![]
        } else {
            vec!["rule".into()]
        },
        tools: tools.iter().map(|t| t.to_string()).collect(),
        rego: rego.map(str::to_string),
        created_at: created_at.into(),
    })
}

fn rego(decision: &str) -> String {
    format!("package p\ndecision := \"{decision}\"")
}

fn ids(found: &[(&CompiledPolicy, Applies)]) -> Vec<(String, Applies)> {
    let mut ids: Vec<_> = found
        .iter()
        .map(|(p, a)| (p.version.policy_id.clone(), *a))
        .collect();
    ids.sort();
    ids
}

#[test]
fn every_policy_for_the_tool_and_every_catch_all_applies() {
    let policies = vec![
        version("all", &[], "2026-01-03"),
        version("refunds", &["refund"], "2026-01-01"),
        version("refunds2", &["refund", "wire"], "2026-01-02"),
        version("emails", &["email"], "2026-01-04"),
    ];
    assert_eq!(
        ids(&applicable(&policies, "refund", &json!({}))),
        vec![
            ("all".to_string(), Applies::CatchAll),
            ("refunds".to_string(), Applies::ToolSpecific),
            ("refunds2".to_string(), Applies::ToolSpecific),
        ]
    );
    assert_eq!(
        ids(&applicable(&policies, "sms", &json!({}))),
        vec![("all".to_string(), Applies::CatchAll)]
    );
    // context.policy_id adds a policy, never removes one.
    assert_eq!(
        ids(&applicable(
            &policies,
            "refund",
            &json!({"policy_id": "refunds"})
        )),
        ids(&applicable(&policies, "refund", &json!({})))
    );
    assert_eq!(
        ids(&applicable(
            &policies,
            "sms",
            &json!({"policy_id": "emails"})
        )),
        vec![
            ("all".to_string(), Applies::CatchAll),
            ("emails".to_string(), Applies::Named),
        ]
    );
    assert_eq!(
        ids(&applicable(&policies, "sms", &json!({"policy_id": "nope"}))),
        vec![("all".to_string(), Applies::CatchAll)],
        "a name that does not exist adds nothing"
    );
    assert!(
        applicable(&policies[1..], "sms", &json!({})).is_empty(),
        "no policy applies: fail closed"
    );
    assert!(
        applicable(&policies[1..], "sms", &json!({"policy_id": "refunds"})).is_empty(),
        "a named policy alone never makes a tool decidable"
    );
}

/// The deciding policy and verdict for a call to `wire`, and every policy consulted.
async fn decide(
    policies: &[CompiledPolicy],
    context: serde_json::Value,
) -> (Option<(String, Verdict)>, Vec<ConsultedPolicy>) {
    let input = json!({"tool_name": "wire", "tool_args": {}});
    let evaluation = evaluate(policies, "wire", &context, &input).await;
    let deciding = evaluation
        .deciding()
        .map(|v| (v.policy.version.policy_id.clone(), v.verdict));
    (deciding, evaluation.consulted())
}

#[tokio::test]
async fn the_most_restrictive_verdict_wins() {
    let approve = rego("approve");
    let deny = rego("deny");
    let review = rego("review");
    let judge = rego("judge");
    // An agent naming a lenient catch-all cannot beat a tool freeze.
    let policies = vec![
        policy("lenient", &[], "2026-01-09", Some(&approve)),
        policy("freeze", &["wire"], "2026-01-01", Some(&deny)),
    ];
    let (deciding, consulted) = decide(&policies, json!({"policy_id": "lenient"})).await;
    assert_eq!(deciding, Some(("freeze".to_string(), Verdict::Deny)));
    assert_eq!(consulted.len(), 2);
    assert_eq!(
        (
            consulted[0].policy_id.as_str(),
            consulted[0].decision.as_str()
        ),
        ("freeze", "deny")
    );
    assert_eq!(
        (
            consulted[1].policy_id.as_str(),
            consulted[1].policy_version_id.as_str(),
            consulted[1].version,
            consulted[1].decision.as_str()
        ),
        ("lenient", "v-lenient", 1, "approve")
    );
    // deny > review > judge > approve, whatever the registration order.
    for (first, second, winner) in [
        (&approve, &review, Verdict::Review),
        (&judge, &approve, Verdict::Judge),
        (&review, &judge, Verdict::Review),
        (&deny, &review, Verdict::Deny),
        (&judge, &deny, Verdict::Deny),
    ] {
        let policies = vec![
            policy("a", &["wire"], "2026-01-01", Some(first)),
            policy("b", &["wire"], "2026-01-02", Some(second)),
        ];
        assert_eq!(
            decide(&policies, json!({})).await.0.map(|d| d.1),
            Some(winner)
        );
        let reversed: Vec<_> = policies.into_iter().rev().collect();
        assert_eq!(
            decide(&reversed, json!({})).await.0.map(|d| d.1),
            Some(winner)
        );
    }
    // Plain-English rules only: the judge.
    assert_eq!(
        decide(&[version("english", &["wire"], "2026-01-01")], json!({}))
            .await
            .0,
        Some(("english".to_string(), Verdict::Judge))
    );
    // Among equals: tool-specific over catch-all, then the smallest policy_id; never the newest.
    let policies = vec![
        policy("a-all", &[], "2026-01-09", Some(&approve)),
        policy("z-wire", &["wire"], "2026-01-01", Some(&approve)),
        policy("m-wire", &["wire"], "2026-01-05", Some(&approve)),
    ];
    assert_eq!(
        decide(&policies, json!({})).await.0,
        Some(("m-wire".to_string(), Verdict::Approve))
    );
    // A named policy that does not cover the tool may restrict, never widen.
    let policies = vec![
        policy("wires", &["wire"], "2026-01-01", Some(&approve)),
        policy("strict", &["email"], "2026-01-01", Some(&review)),
    ];
    assert_eq!(
        decide(&policies, json!({"policy_id": "strict"})).await.0,
        Some(("strict".to_string(), Verdict::Review))
    );
    assert!(decide(&policies[1..], json!({"policy_id": "strict"}))
        .await
        .0
        .is_none());
}

#[tokio::test]
async fn a_policy_that_cannot_be_evaluated_denies() {
    let input = json!({"tool_name": "wire", "tool_args": {"z": 1}});
    // `decision` is an object for this input: the module errs at evaluation.
    let broken = "package p\ndefault decision := \"approve\"\ndecision := input.tool_args if { input.tool_args.z == 1 }";
    let undecided = "package p\ndecision := \"approve\" if { input.tool_args.z == 2 }";
    let approve = rego("approve");
    for (module, code) in [
        (broken, "policy_evaluation_error"),
        (undecided, "policy_undecided"),
    ] {
        let policies = vec![
            policy("ok", &["wire"], "2026-01-01", Some(&approve)),
            policy("bad", &[], "2026-01-01", Some(module)),
        ];
        let evaluation = evaluate(&policies, "wire", &json!({}), &input).await;
        let deciding = evaluation.deciding().expect("a policy applies");
        assert_eq!(deciding.policy.version.policy_id, "bad");
        assert_eq!(deciding.verdict, Verdict::Deny);
        assert_eq!(deciding.reason_code.as_deref(), Some(code));
        assert!(deciding.fail_closed);
    }
    let deny_only = [policy("d", &["wire"], "2026-01-01", Some(&rego("deny")))];
    let denied = evaluate(&deny_only, "wire", &json!({}), &input).await;
    let deciding = denied.deciding().expect("applies");
    assert_eq!(deciding.reason_code.as_deref(), Some("policy_denied"));
    assert!(!deciding.fail_closed, "a rule's deny is not a failure");
}

#[test]
fn content_hash_covers_everything_that_decides() {
    let reg = |rules: Vec<&str>| PolicyRegistration {
        policy_id: "p".into(),
        description: "d".into(),
        rules: rules.into_iter().map(String::from).collect(),
        tools: vec!["t".into()],
        rego: None,
    };
    assert_eq!(
        reg(vec!["a"]).content_hash().expect("hash"),
        reg(vec!["a"]).content_hash().expect("hash")
    );
    assert_ne!(
        reg(vec!["a"]).content_hash().expect("hash"),
        reg(vec!["b"]).content_hash().expect("hash")
    );
    assert!(
        reg(vec![]).validate().is_err(),
        "a policy with neither rules nor rego decides nothing"
    );
}

#[test]
fn a_runaway_rego_module_is_stopped_by_the_time_budget() {
    // Sixteen million interpreter steps take far longer than the evaluation budget.
    let slow = "package slow\ndecision := \"approve\" if { count([[x, y] | some x in numbers.range(1, 4000); some y in numbers.range(1, 4000)]) > 0 }";
    match RegoPolicy::compile(slow) {
        Err(VaultError::InvalidPolicy(message)) => {
            assert!(message.contains("time limit"), "{message}")
        }
        other => panic!(
            "a runaway module must be refused at registration, got {:?}",
            other.map(|_| ())
        ),
    }
}
