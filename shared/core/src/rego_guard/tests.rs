//! The Rego limits under attack, and legitimate policies unaffected.

use super::*;
use crate::policy::{RegoDecision, RegoPolicy};
use serde_json::json;

const RANGE_ATTACK: &str =
    "package p\ndecision := \"approve\" if { count(numbers.range(1, input.tool_args.n)) > 0 }";

fn args(tool_args: serde_json::Value) -> serde_json::Value {
    json!({"tool_name": "t", "tool_args": tool_args, "agent_id": "a", "session_id": "s", "context": {}, "tenant_id": "x"})
}

/// A generous time limit, so that what ends these evaluations on a loaded test machine is the memory
/// limit under test, not the clock.
fn patient(module: &str) -> RegoPolicy {
    RegoPolicy::compile_with(
        module,
        RegoLimits {
            time: Duration::from_secs(20),
            ..RegoLimits::default()
        },
    )
    .expect("compiles")
}

fn refused(module: &str) -> String {
    match RegoPolicy::compile(module) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("module must be refused at registration:\n{module}"),
    }
}

#[test]
fn the_issue_numbers_range_attack_is_refused_before_it_allocates() {
    let policy = patient(RANGE_ATTACK);
    for n in [
        json!(1e15),
        json!(20_000_000),
        json!(1_000_000_000_000_000_000u128 as f64),
    ] {
        let err = policy
            .evaluate(&args(json!({ "n": n })))
            .expect_err("must fail closed");
        assert!(err.contains("memory limit"), "{err}");
    }
    // Small ranges are unaffected, and the process is still here to evaluate them.
    let ok = policy.evaluate(&args(json!({"n": 10}))).expect("evaluates");
    assert_eq!(ok.decision, RegoDecision::Approve);
}

#[test]
fn range_step_refuses_a_zero_step_instead_of_panicking() {
    let policy = patient(
        "package p\ndecision := \"approve\" if { count(numbers.range_step(1, 10, input.tool_args.step)) > 0 }",
    );
    let err = policy
        .evaluate(&args(json!({"step": 0})))
        .expect_err("zero step");
    assert!(err.contains("positive integer"), "{err}");
    let ok = policy
        .evaluate(&args(json!({"step": 3})))
        .expect("evaluates");
    assert_eq!(ok.decision, RegoDecision::Approve);
}

#[test]
fn doubling_strings_and_shared_values_hit_the_memory_limit() {
    // 2^40 copies of the input string by repeated concatenation.
    let mut concat = String::from("package p\ns0 := input.tool_args.s\n");
    for i in 1..=40 {
        concat.push_str(&format!("s{i} := concat(\"\", [s{p}, s{p}])\n", p = i - 1));
    }
    concat.push_str("decision := \"approve\" if { count(s40) > 0 }\n");
    // A value shared 2^40 times over (cheap to build), then formatted whole.
    let mut shared = String::from("package p\na0 := [input.tool_args.s]\n");
    for i in 1..=40 {
        shared.push_str(&format!("a{i} := [a{p}, a{p}]\n", p = i - 1));
    }
    shared.push_str("decision := \"approve\" if { sprintf(\"%v\", [a40]) != \"\" }\n");
    // Quadratic growth from one call: replace every character boundary with the whole input.
    let replace = "package p\ndecision := \"approve\" if { count(replace(input.tool_args.s, \"\", input.tool_args.s)) > 0 }";
    let big = "x".repeat(20_000);
    for module in [concat.as_str(), shared.as_str(), replace] {
        let policy = patient(module);
        let err = policy
            .evaluate(&args(json!({ "s": big })))
            .expect_err("must fail closed");
        assert!(err.contains("memory limit"), "{err}\n{module}");
        // The same module with a small input is fine (the limit is on what is built, not on the module).
        if module == replace {
            let ok = policy
                .evaluate(&args(json!({"s": "ab"})))
                .expect("evaluates");
            assert_eq!(ok.decision, RegoDecision::Approve);
        }
    }
}

#[test]
fn builtins_that_cannot_be_bounded_are_refused_at_registration() {
    for (module, builtin) in [
        ("package p\ndecision := \"approve\" if { json.marshal(input) != \"\" }", "json.marshal"),
        ("package p\ndecision := \"approve\" if { walk(input, [p, v]) }", "walk"),
        ("package p\ndecision := \"approve\" if { print(input) }", "print"),
        ("package p\ndecision := \"approve\" if { bits.lsh(1, input.tool_args.n) > 0 }", "bits.lsh"),
        ("package p\ndecision := \"approve\" if { product([1, 2]) > 0 }", "product"),
        ("package p\ndecision := \"approve\" if { strings.replace_n({\"a\": \"b\"}, \"a\") != \"\" }", "strings.replace_n"),
        // Named through brackets, or as the target of `with`.
        ("package p\ndecision := \"approve\" if { json[\"marshal\"](input) != \"\" }", "json.marshal"),
        ("package p\ndecision := \"approve\" if { json[\"m\\u0061rshal\"](input) != \"\" }", "json.marshal"),
        ("package p\nf(x) := x\ndecision := \"approve\" if { f(input) with f as json.marshal }", "json.marshal"),
    ] {
        let message = refused(module);
        assert!(message.contains(builtin), "{builtin}: {message}");
    }
    // A reference that merely contains a builtin's name, or a variable named like one, is not a call.
    RegoPolicy::compile("package p\ndecision := \"approve\" if { input.tool_args.walk == 1 }")
        .expect("input.walk is data, not the builtin");
    RegoPolicy::compile(
        "package p\nproduct := input.tool_args.product\ndecision := \"approve\" if { product == \"tea\" }",
    )
    .expect("a rule named like a refused builtin is not a call to it");
}

#[test]
fn builtins_outside_the_allow_list_fail_at_evaluation_even_if_unrecognised() {
    let mut engine = regorus::Engine::new();
    install(&mut engine).expect("installs");
    engine
        .add_policy(
            "p.rego".into(),
            "package p\nx := json.marshal(input)\ny := numbers.range(1, 3)".into(),
        )
        .expect("parses");
    engine.set_input(Value::from(serde_json::json!({"a": 1})));
    let err = engine
        .eval_query("data.p.x".into(), false)
        .expect_err("shadowed by a refusal");
    assert!(err.to_string().contains("not allowed"), "{err}");
    let ok = with_budget(DEFAULT_MEMORY_LIMIT_BYTES, || {
        engine.eval_query("data.p.y".into(), false)
    })
    .expect("allowed builtins run through their bounded form");
    assert_eq!(
        ok.result[0].expressions[0].value,
        Value::from(vec![
            Value::from(1u64),
            Value::from(2u64),
            Value::from(3u64)
        ])
    );
}

#[test]
fn recursive_rules_are_refused_without_a_crash() {
    refused("package p\nd := x if { x := d }\ndecision := d");
}

#[test]
fn recursive_functions_are_refused_without_a_crash() {
    refused("package p\nf(x) := f(x)\ndecision := f(1)");
}

#[test]
fn deep_nesting_is_refused_without_a_crash() {
    let deep = format!(
        "package p\ndecision := \"approve\" if {{ count({}1{}) > 0 }}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    refused(&deep);
}

#[test]
fn a_runaway_evaluation_stops_at_the_time_limit() {
    let policy = RegoPolicy::compile(
        "package p\ndecision := \"approve\" if { count([1 | some x in input.tool_args.items; some y in input.tool_args.items]) > 0 }",
    )
    .expect("compiles");
    let items: Vec<u32> = (0..5000).collect();
    let err = policy
        .evaluate(&args(json!({ "items": items })))
        .expect_err("twenty-five million steps do not fit the budget");
    assert!(err.contains("time limit"), "{err}");
}

#[test]
fn legitimate_policies_are_unaffected() {
    let policy = patient(
        r#"package refunds
default decision := "deny"
limits := {y | some x in numbers.range(1, 10); y := x * 100}
decision := "approve" if { input.tool_args.amount <= 100; startswith(lower(input.tool_args.currency), "us") }
decision := "review" if { input.tool_args.amount > 100; input.tool_args.amount in limits }
reason := sprintf("refund of %v %s", [input.tool_args.amount, upper(input.tool_args.currency)])
reason_code := concat("_", split(trim_space(" amount checked "), " "))
"#,
    );
    let ok = policy
        .evaluate(&args(json!({"amount": 50, "currency": "usd"})))
        .expect("evaluates");
    assert_eq!(ok.decision, RegoDecision::Approve);
    assert_eq!(ok.reason.as_deref(), Some("refund of 50 USD"));
    assert_eq!(ok.reason_code.as_deref(), Some("amount_checked"));
    let review = policy
        .evaluate(&args(json!({"amount": 300, "currency": "usd"})))
        .expect("evaluates");
    assert_eq!(review.decision, RegoDecision::Review);
}

#[tokio::test]
async fn bounded_evaluation_runs_on_the_rego_pool() {
    let policy = patient(RANGE_ATTACK);
    let err = policy
        .evaluate_bounded(&args(json!({"n": 1e15})))
        .await
        .expect_err("fails closed");
    assert!(err.contains("memory limit"), "{err}");
    let ok = policy
        .evaluate_bounded(&args(json!({"n": 3})))
        .await
        .expect("evaluates");
    assert_eq!(ok.decision, RegoDecision::Approve);
    let thread = evaluate_off_thread(Duration::from_secs(1), || {
        Ok(std::thread::current()
            .name()
            .unwrap_or_default()
            .to_string())
    })
    .await
    .expect("runs");
    assert!(thread.starts_with("rego-"), "{thread}");
}

#[test]
fn sizes_of_shared_values_are_measured_up_to_the_cap_only() {
    let mut v = Value::from(vec![Value::from("x")]);
    for _ in 0..60 {
        v = Value::from(vec![v.clone(), v]);
    }
    assert_eq!(size_of_values(&[v], 1 << 20), None);
    assert!(size_of_values(&[Value::from("abc")], 100).is_some());
}
