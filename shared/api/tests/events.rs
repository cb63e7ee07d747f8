//! Every sample event in `events/` through the real handlers: API Gateway HTTP API v2 requests through the
//! router (exactly as `lambda_http` hands them over), the SQS FIFO batch through the judge-worker handler,
//! the scheduler event through anchor-export. On the embedded adapters always; on the AWS adapters with
//! LEDGIX_TEST_BACKEND=aws (scripts/test.sh), whose environment configures PostgreSQL and the emulator.

use std::path::PathBuf;

use aws_lambda_events::event::sqs::SqsEvent;
use http_body_util::BodyExt;
use ledgix_api::AppState;
use ledgix_core::model::{now_rfc3339, Tenant};
// The sample events exercise every route with one key, as a key made before roles existed would.
use ledgix_core::roles::Role;
use ledgix_wiring::{build, lambda, Backend, Config};
use serde_json::Value;
use tower::ServiceExt;

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(events_dir().join(path))
        .unwrap_or_else(|e| panic!("events/{path}: {e}"))
}

async fn vault(dir: &tempfile::TempDir) -> std::sync::Arc<ledgix_core::Vault> {
    let aws = std::env::var("LEDGIX_TEST_BACKEND").as_deref() == Ok("aws");
    let mut config = Config::from_lookup(|name| std::env::var(name).ok(), true).expect("config");
    config.data_dir = dir.path().to_path_buf();
    config.backend = if aws { Backend::Aws } else { Backend::Embedded };
    config.rate_limit.rps = 0;
    let expectations: Value = serde_json::from_str(&read("apigw/expectations.json")).expect("json");
    let admin = expectations["admin_api_key"].as_str().expect("admin key");
    let wired = build(&config, Some(ledgix_wiring::admin_key_hash(admin)))
        .await
        .expect("vault");
    // The sample events carry a fixed tenant key; give it a fresh tenant in this run.
    let key = expectations["api_key"].as_str().expect("api key");
    let tenant = |id: &str| Tenant {
        tenant_id: id.into(),
        name: "events".into(),
        created_at: now_rfc3339(),
    };
    // The SQS sample names tenant `tn_events`; the API Gateway samples carry a fixed key.
    if wired
        .vault
        .tenant("tn_events")
        .await
        .expect("read")
        .is_none()
    {
        let fresh_key = if wired.vault.authenticate(key).await.is_err() {
            key.to_string()
        } else {
            ledgix_core::apikey::generate("lvk_")
        };
        wired
            .vault
            .create_tenant_with_key(tenant("tn_events"), &fresh_key, Role::ALL.to_vec())
            .await
            .expect("tenant");
    }
    if wired.vault.authenticate(key).await.is_err() {
        wired
            .vault
            .create_tenant_with_key(
                tenant(&ledgix_core::apikey::new_id("tn_")),
                key,
                Role::ALL.to_vec(),
            )
            .await
            .expect("tenant");
    }
    wired.vault
}

/// One test, run in sequence: on AWS the scenarios share one tenant in one control plane.
#[tokio::test]
async fn sample_events_through_the_real_handlers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vault = vault(&dir).await;
    api_gateway_events(&vault).await;
    sqs_batch_in_order(&vault).await;
    scheduled_anchor_round(&vault).await;
    if std::env::var("LEDGIX_TEST_BACKEND").as_deref() == Ok("aws") {
        notifier_batch().await;
    }
}

/// The notifier function's handler on its sample event (AWS only: the function exists only there). Jobs for
/// deliveries that do not exist and a body that is not a job are dropped, not redelivered.
async fn notifier_batch() {
    let notifier = std::sync::Arc::new(ledgix_wiring::notifier_from_env().await.expect("notifier"));
    let event: SqsEvent = serde_json::from_str(&read("sqs/notifier.json")).expect("SQS event");
    assert_eq!(event.records.len(), 3);
    let response = lambda::notify_batch(&notifier, event).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
}

async fn api_gateway_events(vault: &std::sync::Arc<ledgix_core::Vault>) {
    // The application exactly as the clearance-api function serves it (router + request-context layer).
    let state = |admin_auth| AppState {
        vault: vault.clone(),
        cors_allowed_origin: None,
        emf_metrics: false,
        client_limit: None,
        admin_auth,
    };
    let app = clearance_api::app(state(ledgix_wiring::config::AdminAuth::Header));
    let expectations: Value = serde_json::from_str(&read("apigw/expectations.json")).expect("json");
    let mut names: Vec<(&String, &Value)> = expectations["expected_status"]
        .as_object()
        .expect("map")
        .iter()
        .collect();
    names.sort_by_key(|(name, _)| name.as_str());
    assert!(names.len() >= 20, "a sample event per route");
    for (name, expected) in names {
        let request = lambda_http::request::from_str(&read(&format!("apigw/{name}.json")))
            .unwrap_or_else(|e| panic!("{name}: not an API Gateway event: {e}"));
        let response = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let request_id = response.headers().get("x-request-id").cloned();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(
            u64::from(status),
            expected.as_u64().expect("status"),
            "{name}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(request_id.is_some(), "{name} has X-Request-ID");
        if status >= 400 {
            let error: Value = serde_json::from_slice(&body).expect("JSON error");
            assert!(error["error"]["code"].is_string(), "{name}: error shape");
        }
    }
    // VAULT_ADMIN_AUTH=iam (what Terraform sets): API Gateway's IAM authorizer admits, the admin key does not.
    let iam_app = clearance_api::app(state(ledgix_wiring::config::AdminAuth::Iam));
    let iam_expectations = expectations["expected_status_admin_iam"]
        .as_object()
        .expect("expected_status_admin_iam");
    assert!(!iam_expectations.is_empty());
    for (name, expected) in iam_expectations {
        let request = lambda_http::request::from_str(&read(&format!("apigw/{name}.json")))
            .unwrap_or_else(|e| panic!("{name}: not an API Gateway event: {e}"));
        let caller = clearance_api::iam_caller(request.extensions());
        let response = iam_app.clone().oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        assert_eq!(
            u64::from(status),
            expected.as_u64().expect("status"),
            "{name} with VAULT_ADMIN_AUTH=iam (IAM caller {caller:?})"
        );
    }
    let request =
        lambda_http::request::from_str(&read("apigw/admin-create-tenant-iam.json")).expect("event");
    assert_eq!(
        clearance_api::iam_caller(request.extensions()).map(|c| c.arn),
        Some("arn:aws:sts::123456789012:assumed-role/ledgix-operator/operator-session".into()),
        "the IAM authorizer's userArn names the caller"
    );
    let request =
        lambda_http::request::from_str(&read("apigw/admin-create-tenant.json")).expect("event");
    assert_eq!(clearance_api::iam_caller(request.extensions()), None);
}

async fn sqs_batch_in_order(vault: &ledgix_core::Vault) {
    let event: SqsEvent = serde_json::from_str(&read("sqs/judge-batch.json")).expect("SQS event");
    let ids: Vec<String> = event
        .records
        .iter()
        .map(|m| m.message_id.clone().unwrap_or_default())
        .collect();
    // Jobs for unknown requests are acknowledged; the malformed last message is reported.
    let response = lambda::judge_batch(vault, event.clone()).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec![ids[2].as_str()]);
    // With the bad message first, it and everything after it go back to the queue, in order.
    let mut reordered = event;
    reordered.records.rotate_right(1);
    let response = lambda::judge_batch(vault, reordered).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        vec![ids[2].as_str(), ids[0].as_str(), ids[1].as_str()]
    );
}

async fn scheduled_anchor_round(vault: &ledgix_core::Vault) {
    let _event: Value =
        serde_json::from_str(&read("scheduler/anchor-export.json")).expect("scheduler event");
    let key = "lvk_events_sample_key_0000000000000000000000";
    let principal = vault.authenticate(key).await.expect("principal");
    let request =
        serde_json::from_value(serde_json::json!({"tool_name": "anything", "tool_args": {}}))
            .expect("request");
    vault
        .request_clearance(&principal, request, None)
        .await
        .expect("decided");
    let plan = lambda::AnchorPlan {
        interval: std::time::Duration::from_secs(30),
        schedule: std::time::Duration::from_secs(30),
        emf: true,
    };
    let summary = lambda::anchor_export(vault, plan)
        .await
        .expect("anchor round");
    assert_eq!(summary["rounds"].as_array().map(Vec::len), Some(1));
    let mine = summary["rounds"][0]["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .find(|t| t["tenant_id"] == principal.tenant_id.as_str())
        .cloned();
    let mine = mine.expect("the tenant was sealed");
    assert!(mine["sequenced"].as_u64().expect("count") >= 1);
    assert!(mine["checkpoint_id"].as_i64().is_some());
    assert_eq!(mine["export_failed"], false);
}
