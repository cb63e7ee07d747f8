//! The reviewer page (`GET /review` and its assets): served with a strict Content-Security-Policy and the right
//! content types, free of inline script and style, never putting agent data into markup; and the CORS preflight a
//! page on VAULT_CORS_ALLOWED_ORIGIN needs before it calls the review routes with its key.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::send;
use ledgix_api::review_page::CONTENT_SECURITY_POLICY;
use ledgix_core::roles::Role;

const ORIGIN: &str = "https://dashboard.example";

struct TestVault {
    app: axum::Router,
    reviewer_key: String,
    _dir: tempfile::TempDir,
}

async fn vault(cors_allowed_origin: Option<&str>) -> TestVault {
    let tv = common::tenant_vault(vec![Role::Reviewer], |_| {}).await;
    let (app, _) = common::app(&tv.vault, cors_allowed_origin);
    TestVault {
        app,
        reviewer_key: tv.api_key,
        _dir: tv.dir,
    }
}

async fn get_text(app: &axum::Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let request = Request::builder()
        .uri(path)
        .body(Body::empty())
        .expect("request");
    let (status, headers, bytes) = common::send_raw(app, request).await;
    (
        status,
        headers,
        String::from_utf8(bytes.to_vec()).expect("utf-8"),
    )
}

fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("{name} is set"))
        .to_str()
        .expect("ascii")
}

#[tokio::test]
async fn the_page_and_its_assets_carry_a_strict_csp_and_their_content_types() {
    let v = vault(None).await;
    for (path, content_type, cache) in [
        ("/review", "text/html; charset=utf-8", "no-store"),
        (
            "/review/review.js",
            "text/javascript; charset=utf-8",
            "no-cache",
        ),
        ("/review/review.css", "text/css; charset=utf-8", "no-cache"),
    ] {
        let (status, headers, body) = get_text(&v.app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.is_empty(), "{path} has a body");
        assert_eq!(header(&headers, "content-type"), content_type, "{path}");
        assert_eq!(header(&headers, "cache-control"), cache, "{path}");
        let csp = header(&headers, "content-security-policy");
        assert_eq!(csp, CONTENT_SECURITY_POLICY, "{path}");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {directive} in {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: nothing unsafe-* in {csp}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
        assert_eq!(header(&headers, "x-frame-options"), "DENY");
        assert!(headers.contains_key("x-request-id"), "{path}");
    }
}

#[tokio::test]
async fn the_page_has_no_inline_code_and_never_writes_markup_from_data() {
    let v = vault(None).await;
    let (_, _, html) = get_text(&v.app, "/review").await;
    let lower = html.to_ascii_lowercase();
    // Every <script> loads a file; no <style> block, no style="" or on*="" attribute, no javascript: URL.
    for (at, _) in lower.match_indices("<script") {
        let tag = &lower[at..at + lower[at..].find('>').expect("tag ends")];
        assert!(tag.contains(" src="), "inline script: {tag}");
    }
    assert!(!lower.contains("<style"), "no inline style element");
    assert!(!lower.contains(" style="), "no style attribute");
    assert!(!lower.contains("javascript:"), "no javascript: URL");
    for attribute in [
        " onclick=",
        " onload=",
        " onerror=",
        " onsubmit=",
        " oninput=",
    ] {
        assert!(!lower.contains(attribute), "no inline handler {attribute}");
    }
    let (_, _, js) = get_text(&v.app, "/review/review.js").await;
    for sink in [
        ".innerHTML",
        ".outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "localStorage",
        "setAttribute('style'",
    ] {
        assert!(!js.contains(sink), "review.js must not use {sink}");
    }
    assert!(
        js.contains("sessionStorage"),
        "the key lives in sessionStorage"
    );
}

#[tokio::test]
async fn the_allowed_origin_gets_a_preflight_answer_for_the_review_routes() {
    let v = vault(Some(ORIGIN)).await;
    for (path, method) in [
        ("/reviews?status=pending", "GET"),
        ("/reviews/r/decision", "POST"),
        ("/ledger?limit=500", "GET"),
        ("/ledger/proof/inclusion?request_id=r", "GET"),
        ("/clearance-status/r", "GET"),
    ] {
        let request = Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header("origin", ORIGIN)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "x-vault-api-key,content-type,idempotency-key",
            )
            .body(Body::empty())
            .expect("request");
        let (status, headers, _) = send(&v.app, request).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(header(&headers, "access-control-allow-origin"), ORIGIN);
        let methods = header(&headers, "access-control-allow-methods");
        assert!(methods.contains(method), "{path}: {methods}");
        let allowed = header(&headers, "access-control-allow-headers").to_ascii_lowercase();
        for needed in ["x-vault-api-key", "content-type", "idempotency-key"] {
            assert!(allowed.contains(needed), "{path}: {needed} in {allowed}");
        }
        let max_age: u64 = header(&headers, "access-control-max-age")
            .parse()
            .expect("seconds");
        assert!(max_age > 0);
        assert!(header(&headers, "vary").contains("Origin"));
        assert!(headers.contains_key("x-request-id"));
    }

    // The call that follows is authenticated as any other, and its answer is readable by that origin.
    let request = Request::builder()
        .uri("/reviews?status=pending")
        .header("origin", ORIGIN)
        .header("x-vault-api-key", &v.reviewer_key)
        .body(Body::empty())
        .expect("request");
    let (status, headers, body) = send(&v.app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "access-control-allow-origin"), ORIGIN);
    assert!(header(&headers, "access-control-expose-headers").contains("X-Request-ID"));
    let request = Request::builder()
        .uri("/reviews?status=pending")
        .header("origin", ORIGIN)
        .body(Body::empty())
        .expect("request");
    let (status, headers, _) = send(&v.app, request).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a preflight grants nothing"
    );
    assert_eq!(header(&headers, "access-control-allow-origin"), ORIGIN);
}

#[tokio::test]
async fn other_origins_admin_routes_and_unconfigured_vaults_get_no_preflight() {
    let preflight = |path: &str, origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .expect("request")
    };
    let v = vault(Some(ORIGIN)).await;
    for request in [
        preflight("/reviews/r/decision", "https://evil.example"),
        preflight("/admin/tenants", ORIGIN),
    ] {
        let (status, headers, body) = send(&v.app, request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
        assert!(!headers.contains_key("access-control-allow-methods"));
        assert!(!headers.contains_key("access-control-allow-headers"));
    }
    let (_, headers, _) = send(
        &v.app,
        preflight("/reviews/r/decision", "https://evil.example"),
    )
    .await;
    assert!(!headers.contains_key("access-control-allow-origin"));
    let unconfigured = vault(None).await;
    let (status, headers, _) = send(&unconfigured.app, preflight("/reviews", ORIGIN)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!headers.contains_key("access-control-allow-origin"));
}
