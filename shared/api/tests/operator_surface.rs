//! The operator surface of the router: the per-client-address limit in front of key lookup, and how
//! administration routes are admitted (VAULT_ADMIN_AUTH = header | iam | off).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::send;
use ledgix_api::admin::IamCaller;
use ledgix_api::client_limit::ClientLimit;
use ledgix_api::{router, AppState};
use ledgix_core::ratelimit::RateLimit;
use ledgix_wiring::config::AdminAuth;
use ledgix_wiring::{build_embedded, Config, MemoryRateLimiter};

const ADMIN_KEY: &str = "lva_operator_surface_test_key_0123456789";

struct TestVault {
    vault: Arc<ledgix_core::Vault>,
    _dir: tempfile::TempDir,
}

fn test_vault() -> TestVault {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::from_lookup(|_| None, true).expect("defaults");
    config.data_dir = dir.path().to_path_buf();
    let wired =
        build_embedded(&config, Some(ledgix_wiring::admin_key_hash(ADMIN_KEY))).expect("vault");
    TestVault {
        vault: wired.vault,
        _dir: dir,
    }
}

fn app(vault: &TestVault, client: Option<RateLimit>, admin_auth: AdminAuth) -> axum::Router {
    router(AppState {
        vault: vault.vault.clone(),
        cors_allowed_origin: None,
        emf_metrics: false,
        client_limit: client
            .and_then(|limit| ClientLimit::new(Arc::new(MemoryRateLimiter::default()), limit)),
        admin_auth,
    })
    .0
}

/// A tenant route with a wrong key, from `peer` (as `into_make_service_with_connect_info` would tell).
fn wrong_key_from(peer: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/policies")
        .header(
            "x-vault-api-key",
            "lvk_not_a_key_of_anyone_0000000000000000",
        )
        .body(Body::empty())
        .expect("request");
    if let Some(peer) = peer {
        let addr: SocketAddr = peer.parse().expect("address");
        request.extensions_mut().insert(ConnectInfo(addr));
    }
    request
}

#[tokio::test]
async fn wrong_keys_from_one_address_are_throttled_before_key_lookup() {
    let vault = test_vault();
    let app = app(
        &vault,
        Some(RateLimit { rps: 1, burst: 2 }),
        AdminAuth::Header,
    );
    for _ in 0..2 {
        let (status, _, body) = send(&app, wrong_key_from(Some("203.0.113.9:40000"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // The bucket of 203.0.113.9 is empty: answered before the key is looked up (which would say 401).
    let (status, headers, body) = send(&app, wrong_key_from(Some("203.0.113.9:40001"))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["request_id"].is_string(), "{body}");
    assert!(headers.get("x-request-id").is_some());
    let retry: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry >= 1);
    assert_eq!(headers["x-ratelimit-limit"], "2");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    // Another address has its own bucket.
    let (status, _, _) = send(&app, wrong_key_from(Some("198.51.100.7:40000"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Public routes count too: the address is throttled whatever it asks for.
    let healthz = {
        let mut r = Request::get("/healthz")
            .body(Body::empty())
            .expect("request");
        r.extensions_mut().insert(ConnectInfo(
            "203.0.113.9:40002".parse::<SocketAddr>().expect("addr"),
        ));
        r
    };
    assert_eq!(send(&app, healthz).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn without_a_socket_address_or_with_the_limit_off_nothing_is_throttled() {
    let vault = test_vault();
    // Lambda: no ConnectInfo, so API Gateway's throttling is the limit.
    let app_with_limit = app(
        &vault,
        Some(RateLimit { rps: 1, burst: 1 }),
        AdminAuth::Header,
    );
    for _ in 0..5 {
        assert_eq!(
            send(&app_with_limit, wrong_key_from(None)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // VAULT_CLIENT_RATE_LIMIT_RPS=0.
    assert!(ClientLimit::new(
        Arc::new(MemoryRateLimiter::default()),
        RateLimit { rps: 0, burst: 5 }
    )
    .is_none());
    let app_without = app(
        &vault,
        Some(RateLimit { rps: 0, burst: 1 }),
        AdminAuth::Header,
    );
    for _ in 0..5 {
        let (status, _, _) = send(&app_without, wrong_key_from(Some("203.0.113.9:1"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

fn create_tenant(admin_key: Option<&str>, iam: Option<&str>, idempotency: &str) -> Request<Body> {
    let mut builder = Request::post("/admin/tenants")
        .header("content-type", "application/json")
        .header("idempotency-key", idempotency);
    if let Some(key) = admin_key {
        builder = builder.header("x-admin-api-key", key);
    }
    let mut request = builder
        .body(Body::from(r#"{"name": "operator-surface"}"#))
        .expect("request");
    if let Some(arn) = iam {
        request
            .extensions_mut()
            .insert(IamCaller { arn: arn.into() });
    }
    request
}

const OPERATOR: &str = "arn:aws:iam::123456789012:role/ledgix-operator";

#[tokio::test]
async fn header_mode_admits_the_admin_key_only() {
    let vault = test_vault();
    let app = app(&vault, None, AdminAuth::Header);
    assert_eq!(
        send(&app, create_tenant(Some(ADMIN_KEY), None, "h1"))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        send(
            &app,
            create_tenant(Some("lva_wrong_0000000000000000000000000000"), None, "h2")
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    // An IAM marker is not a credential in header mode.
    assert_eq!(
        send(&app, create_tenant(None, Some(OPERATOR), "h3"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn iam_mode_admits_only_iam_authorised_requests_and_ignores_the_key() {
    let vault = test_vault();
    let app = app(&vault, None, AdminAuth::Iam);
    let (status, _, body) = send(&app, create_tenant(Some(ADMIN_KEY), None, "i1")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the admin key alone is refused: {body}"
    );
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, _, body) = send(&app, create_tenant(None, Some(OPERATOR), "i2")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["tenant_id"].is_string() || body["tenant"].is_object(),
        "{body}"
    );
    // Tenant routes are unaffected by the admin mode.
    assert_eq!(
        send(&app, wrong_key_from(None)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn off_mode_serves_no_admin_routes() {
    let vault = test_vault();
    let app = app(&vault, None, AdminAuth::Off);
    for request in [
        create_tenant(Some(ADMIN_KEY), None, "o1"),
        create_tenant(None, Some(OPERATOR), "o2"),
    ] {
        let (status, _, body) = send(&app, request).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(body["error"]["code"].is_string());
    }
}
