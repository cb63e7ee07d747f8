//! The router in-process: every route is documented in docs/openapi.yaml, every route answers, and
//! transport-level errors use the brief's JSON shape.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use ledgix_api::{build_embedded, router, AppState, Config};
use serde_json::Value;
use tower::ServiceExt;

struct TestVault {
    app: axum::Router,
    table: ledgix_api::RouteTable,
    api_key: String,
    _dir: tempfile::TempDir,
}

async fn vault() -> TestVault {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::from_lookup(|_| None, true).expect("defaults");
    config.data_dir = dir.path().to_path_buf();
    let embedded =
        build_embedded(&config, Some(ledgix_api::admin_key_hash("admin-key"))).expect("vault");
    let created = embedded
        .vault
        .create_tenant("t", None)
        .await
        .expect("tenant");
    let (app, table) = router(AppState {
        vault: embedded.vault.clone(),
        cors_allowed_origin: None,
        emf_metrics: false,
    });
    TestVault {
        app,
        table,
        api_key: created.api_key,
        _dir: dir,
    }
}

async fn send(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

/// `(method, path)` pairs declared under `paths:` in docs/openapi.yaml (two-space indented YAML).
fn documented_routes() -> BTreeSet<(String, String)> {
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.yaml"
    ))
    .expect("docs/openapi.yaml exists");
    let mut routes = BTreeSet::new();
    let mut in_paths = false;
    let mut current: Option<String> = None;
    for line in spec.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_paths = line.trim_end() == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(path) = line.strip_prefix("  ").filter(|l| l.starts_with('/')) {
            current = Some(
                path.trim_end()
                    .trim_end_matches(':')
                    .trim_matches(['"', '\''])
                    .to_string(),
            );
        } else if let (Some(path), Some(method)) = (&current, line.strip_prefix("    ")) {
            let method = method.trim_end().trim_end_matches(':');
            if ["get", "put", "post", "delete", "patch"].contains(&method) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document() {
    let v = vault().await;
    let documented = documented_routes();
    assert!(!documented.is_empty(), "openapi.yaml lists routes");
    let missing: Vec<_> = v
        .table
        .0
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .filter(|route| !documented.contains(route))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/openapi.yaml: {missing:?}"
    );
}

#[tokio::test]
async fn every_route_in_the_table_is_served() {
    let v = vault().await;
    for (method, path) in &v.table.0 {
        let uri = path
            .replace("{request_id}", "r")
            .replace("{tenant_id}", "t")
            .replace("{key_id}", "k");
        let request = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .body(Body::empty())
            .expect("request");
        let (status, headers, body) = send(&v.app, request).await;
        assert_ne!(
            body["error"]["code"], "route_not_found",
            "{method} {path} is routed"
        );
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            headers.contains_key("x-request-id"),
            "{method} {path} has X-Request-ID"
        );
    }
}

#[tokio::test]
async fn transport_errors_use_the_json_error_shape() {
    let v = vault().await;
    let post = |body: Vec<u8>, content_type: &str, key: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/request-clearance")
            .header("content-type", content_type)
            .header("x-vault-api-key", key)
            .body(Body::from(body))
            .expect("request")
    };
    let cases = [
        (
            post(b"{not json".to_vec(), "application/json", &v.api_key),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            post(
                br#"{"tool_name": 5}"#.to_vec(),
                "application/json",
                &v.api_key,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            post(
                br#"{"tool_name":"x","tool_args":"x"}"#.to_vec(),
                "application/json",
                &v.api_key,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            post(vec![b' '; 300 * 1024], "application/json", &v.api_key),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            post(b"{}".to_vec(), "text/plain", &v.api_key),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post(b"{}".to_vec(), "application/json", "wrong"),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Request::builder()
                .uri("/nope")
                .body(Body::empty())
                .expect("request"),
            StatusCode::NOT_FOUND,
            "route_not_found",
        ),
    ];
    for (request, expected_status, expected_code) in cases {
        let (status, headers, body) = send(&v.app, request).await;
        assert_eq!(status, expected_status, "{body}");
        assert_eq!(body["error"]["code"], expected_code);
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        let request_id = headers
            .get("x-request-id")
            .and_then(|h| h.to_str().ok())
            .expect("X-Request-ID");
        assert_eq!(body["error"]["request_id"], request_id);
    }
}

#[tokio::test]
async fn a_rego_approval_returns_a_token_and_a_ledger_entry() {
    let v = vault().await;
    let json_post = |uri: &str, body: Value| {
        Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("content-type", "application/json")
            .header("x-vault-api-key", &v.api_key)
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let rego = "package p\ndefault decision := \"deny\"\ndecision := \"approve\" if { input.tool_args.amount < 10 }";
    let (status, _, _) = send(
        &v.app,
        json_post(
            "/register-policy",
            serde_json::json!({"policy_id": "p", "tools": ["pay"], "rego": rego}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = send(
        &v.app,
        json_post(
            "/request-clearance",
            serde_json::json!({"tool_name": "pay", "tool_args": {"amount": 5}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "approved");
    assert!(body["token"]
        .as_str()
        .is_some_and(|t| t.split('.').count() == 3));
    let request = Request::builder()
        .uri("/ledger")
        .header("x-vault-api-key", &v.api_key)
        .body(Body::empty())
        .expect("req");
    let (_, _, ledger) = send(&v.app, request).await;
    assert_eq!(ledger["entries"][0]["request_id"], body["request_id"]);
    assert_eq!(ledger["entries"][0]["seq"], 1);
}
