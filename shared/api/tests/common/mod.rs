//! Helpers the router test files share.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Send one request through the router in-process: status, headers, and the body as JSON (`Null` if it is not).
pub async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, bytes) = send_raw(app, request).await;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

/// As `send`, with the body's bytes as they are.
pub async fn send_raw(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, HeaderMap, axum::body::Bytes) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, bytes)
}

/// An embedded vault on `ledgix dev`'s defaults (changed by `adjust`) in a temporary directory, with one tenant
/// whose key holds `roles`. The administration key is `admin-key`.
#[allow(dead_code)] // not every test file needs every helper
pub struct TenantVault {
    pub vault: std::sync::Arc<ledgix_core::Vault>,
    pub api_key: String,
    pub tenant_id: String,
    pub dir: tempfile::TempDir,
}

#[allow(dead_code)]
pub async fn tenant_vault(
    roles: Vec<ledgix_core::roles::Role>,
    adjust: impl FnOnce(&mut ledgix_wiring::Config),
) -> TenantVault {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ledgix_wiring::Config::from_lookup(|_| None, true).expect("defaults");
    config.data_dir = dir.path().to_path_buf();
    adjust(&mut config);
    let embedded =
        ledgix_wiring::build_embedded(&config, Some(ledgix_wiring::admin_key_hash("admin-key")))
            .expect("vault");
    let api_key = ledgix_core::apikey::generate(ledgix_core::apikey::TENANT_KEY_PREFIX);
    let tenant = ledgix_core::model::Tenant {
        tenant_id: ledgix_core::apikey::new_id("tn_"),
        name: "t".into(),
        created_at: ledgix_core::model::now_rfc3339(),
    };
    let tenant_id = tenant.tenant_id.clone();
    embedded
        .vault
        .create_tenant_with_key(tenant, &api_key, roles)
        .await
        .expect("tenant");
    TenantVault {
        vault: embedded.vault.clone(),
        api_key,
        tenant_id,
        dir,
    }
}

/// The router over `vault` as clearance-api serves it, answering cross-origin reads for `cors_allowed_origin`.
#[allow(dead_code)]
pub fn app(
    vault: &std::sync::Arc<ledgix_core::Vault>,
    cors_allowed_origin: Option<&str>,
) -> (axum::Router, ledgix_api::routes::RouteTable) {
    ledgix_api::router(ledgix_api::AppState {
        vault: vault.clone(),
        cors_allowed_origin: cors_allowed_origin.map(|o| o.parse().expect("origin")),
        emf_metrics: false,
        client_limit: None,
        admin_auth: ledgix_wiring::config::AdminAuth::Header,
    })
}
