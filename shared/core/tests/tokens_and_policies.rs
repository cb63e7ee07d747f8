use ed25519_dalek::{Signer as _, SigningKey};
use ledgix_core::hashing::tool_args_hash;
use ledgix_core::model::PolicyVersion;
use ledgix_core::policy::{select, CompiledPolicy, PolicyRegistration, RegoDecision, RegoPolicy};
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
    CompiledPolicy::new(PolicyVersion {
        tenant_id: "t".into(),
        policy_id: policy_id.into(),
        version: 1,
        version_id: format!("v-{policy_id}"),
        content_hash: String::new(),
        description: String::new(),
        rules: vec!["rule".into()],
        tools: tools.iter().map(|t| t.to_string()).collect(),
        rego: None,
        created_at: created_at.into(),
    })
}

#[test]
fn selection_prefers_explicit_policy_then_tool_match_then_wildcard() {
    let policies = vec![
        version("all", &[], "2026-01-03"),
        version("refunds", &["refund"], "2026-01-01"),
        version("refunds2", &["refund"], "2026-01-02"),
    ];
    assert_eq!(
        select(&policies, "refund", &json!({})).map(|p| p.version.policy_id.as_str()),
        Some("refunds2")
    );
    assert_eq!(
        select(&policies, "email", &json!({})).map(|p| p.version.policy_id.as_str()),
        Some("all")
    );
    let explicit = json!({"policy_id": "refunds"});
    assert_eq!(
        select(&policies, "refund", &explicit).map(|p| p.version.policy_id.as_str()),
        Some("refunds")
    );
    assert!(
        select(&policies[1..], "email", &json!({})).is_none(),
        "no policy applies: fail closed"
    );
    assert!(
        select(&policies, "email", &explicit).is_none(),
        "an explicit policy that does not cover the tool"
    );
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
