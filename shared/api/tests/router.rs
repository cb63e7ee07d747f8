//! The router in-process: every route is documented in docs/openapi.yaml, every route answers, and
//! transport-level errors use the brief's JSON shape.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::send;
use ledgix_api::routes::Access;
use ledgix_core::roles::Role;
use serde_json::Value;

struct TestVault {
    app: axum::Router,
    table: ledgix_api::RouteTable,
    api_key: String,
    vault: std::sync::Arc<ledgix_core::Vault>,
    tenant_id: String,
    _dir: tempfile::TempDir,
}

async fn vault() -> TestVault {
    // Every role, so each route is reached past its role check.
    let tv = common::tenant_vault(Role::ALL.to_vec(), |_| {}).await;
    let (app, table) = common::app(&tv.vault, None);
    TestVault {
        app,
        table,
        api_key: tv.api_key,
        vault: tv.vault,
        tenant_id: tv.tenant_id,
        _dir: tv.dir,
    }
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

/// `x-required-roles` of each documented operation, by `(METHOD, path)`.
fn documented_roles() -> std::collections::BTreeMap<(String, String), BTreeSet<String>> {
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi.yaml"
    ))
    .expect("docs/openapi.yaml exists");
    let mut roles = std::collections::BTreeMap::new();
    let (mut path, mut method) = (String::new(), String::new());
    for line in spec.lines() {
        if let Some(p) = line.strip_prefix("  /") {
            path = format!("/{}", p.trim_end().trim_end_matches(':'));
        } else if let Some(m) = line.strip_prefix("    ").filter(|l| !l.starts_with(' ')) {
            method = m.trim_end().trim_end_matches(':').to_uppercase();
        } else if let Some(list) = line.trim().strip_prefix("x-required-roles:") {
            let names = list
                .trim()
                .trim_matches(['[', ']'])
                .split(',')
                .map(|r| r.trim().to_string())
                .collect();
            roles.insert((method.clone(), path.clone()), names);
        }
    }
    roles
}

#[tokio::test]
async fn the_openapi_document_states_each_routes_roles() {
    let v = vault().await;
    let documented = documented_roles();
    for (method, path, access) in &v.table.0 {
        let key = (method.to_string(), path.to_string());
        match access {
            Access::Tenant(roles) => {
                let served: BTreeSet<String> =
                    roles.iter().map(|r| r.as_str().to_string()).collect();
                assert_eq!(
                    documented.get(&key),
                    Some(&served),
                    "{method} {path}: x-required-roles"
                );
            }
            Access::Public | Access::Admin => {
                assert!(
                    !documented.contains_key(&key),
                    "{method} {path} needs no tenant role"
                )
            }
        }
    }
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
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
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
    for (method, path, _) in &v.table.0 {
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
async fn every_tenant_route_refuses_a_key_without_its_roles() {
    let v = vault().await;
    for role in Role::ALL {
        let request = ledgix_core::service::ApiKeyRequest {
            roles: Some(vec![role.as_str().to_string()]),
            name: String::new(),
        };
        let created = v
            .vault
            .create_api_key(&v.tenant_id, None, &request, None)
            .await
            .expect("key");
        let key = created.api_key.expect("shown once");
        for (method, path, access) in &v.table.0 {
            let Access::Tenant(roles) = access else {
                continue;
            };
            assert!(!roles.is_empty(), "{method} {path} names its roles");
            let uri = path.replace("{request_id}", "r").replace("{key_id}", "k");
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .header("x-vault-api-key", &key)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .expect("request");
            let (status, _, body) = send(&v.app, request).await;
            if roles.contains(&role) {
                assert_ne!(
                    body["error"]["code"], "forbidden_role",
                    "{method} {path} admits {role:?}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} refuses {role:?}"
                );
                assert_eq!(body["error"]["code"], "forbidden_role");
                let message = body["error"]["message"].as_str().expect("message");
                for needed in roles.iter() {
                    assert!(
                        message.contains(needed.as_str()),
                        "{message} names {needed:?}"
                    );
                }
            }
        }
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

/// What the contract fuzzing found: a limit outside the documented bounds was clamped, and serde read a JSON array as
/// a struct (`[]` as an empty key request). Both are refused with 422 invalid_request.
#[tokio::test]
async fn out_of_contract_input_is_refused_not_coerced() {
    let v = vault().await;
    let request = |method: Method, uri: &str, body: &'static [u8]| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("x-vault-api-key", &v.api_key)
            .body(Body::from(body))
            .expect("request")
    };
    let cases = [
        request(Method::GET, "/ledger?limit=0", b""),
        request(Method::GET, "/ledger?limit=501", b""),
        request(Method::GET, "/ledger/checkpoints?limit=0", b""),
        request(Method::GET, "/ledger/checkpoints?limit=10001", b""),
        request(Method::GET, "/reviews?limit=0", b""),
        request(Method::GET, "/reviews?limit=501", b""),
        request(Method::POST, "/api-keys", b"[]"),
        request(Method::POST, "/api-keys", b" [[\"agent\"]]"),
        request(Method::POST, "/request-clearance", b"[\"x\", {}]"),
        request(Method::PUT, "/review-settings", b"[\"low\"]"),
    ];
    for request in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (status, _, body) = send(&v.app, request).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{what}");
    }
    for ok in [
        "/ledger?limit=1",
        "/ledger?limit=500",
        "/ledger/checkpoints?limit=10000",
        "/reviews?limit=500",
    ] {
        let (status, _, body) = send(&v.app, request(Method::GET, ok, b"")).await;
        assert_eq!(status, StatusCode::OK, "{ok}: {body}");
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
