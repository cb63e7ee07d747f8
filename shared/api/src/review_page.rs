//! The reviewer web page (`GET /review`): static HTML, script and style compiled into the binary, so `ledgix dev`
//! and the clearance-api function serve it with no build step. The page holds no data and no secret: the reviewer
//! signs in with their own API key, which the browser keeps in `sessionStorage` and sends on every data call
//! (`GET /reviews`, `POST /reviews/{id}/decision`, `GET /ledger`, `GET /ledger/proof/inclusion`).
//!
//! Everything a pending request shows was written by the agent, so the page renders it as text only, and every
//! answer here carries a Content-Security-Policy without inline script or style: a string that slipped into the
//! markup still could not run, load anything from elsewhere or send the key away.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../assets/review/index.html");
const REVIEW_JS: &str = include_str!("../assets/review/review.js");
const REVIEW_CSS: &str = include_str!("../assets/review/review.css");

/// Same-origin script, style and calls only; no inline code, no plugins, no framing, no forms posting anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str, cache: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 8] = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (CACHE_CONTROL, HeaderValue::from_static(cache)),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (StatusCode::OK, headers, body).into_response()
}

pub async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8", "no-store")
}

pub async fn script() -> Response {
    asset(REVIEW_JS, "text/javascript; charset=utf-8", "no-cache")
}

pub async fn style() -> Response {
    asset(REVIEW_CSS, "text/css; charset=utf-8", "no-cache")
}
