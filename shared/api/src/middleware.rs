//! Request id, tenant authentication and roles, per-key rate limiting (admin routes: crate::admin; the
//! per-client-address limit: crate::client_limit).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::header::CONNECTION;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use ledgix_core::ratelimit::RateDecision;
use ledgix_core::roles::Role;
use ledgix_core::service::Principal;
use ledgix_core::VaultError;
use tracing::Instrument;

use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::request_id::{request_id_from, REQUEST_ID};
use crate::state::AppState;

pub async fn request_context(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let request_id = request_id_from(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let origin = request.headers().get("origin").cloned();
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %request_id, %method, %path);
    let mut response = REQUEST_ID
        .scope(
            request_id.clone(),
            next.run(request).instrument(span.clone()),
        )
        .await;
    let status = response.status().as_u16();
    let latency = started.elapsed();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_us = latency.as_micros() as u64,
            "request served"
        );
    });
    if state.emf_metrics {
        let now_ms = crate::metrics::now_ms();
        crate::metrics::emit(&crate::metrics::request_line(
            &route,
            method.as_str(),
            status,
            latency.as_secs_f64() * 1e3,
            now_ms,
        ));
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    if let (Some(allowed), Some(origin)) = (&state.cors_allowed_origin, origin) {
        if origin.as_bytes() == allowed.as_bytes() {
            headers.insert("access-control-allow-origin", origin);
            headers.insert("vary", HeaderValue::from_static("Origin"));
            headers.insert(
                "access-control-expose-headers",
                HeaderValue::from_static(CORS_EXPOSE_HEADERS),
            );
        }
    }
    response
}

/// What a browser page on VAULT_CORS_ALLOWED_ORIGIN may send to the tenant routes (never to `/admin/*`).
pub const CORS_ALLOW_METHODS: &str = "GET, POST, PUT, DELETE";
pub const CORS_ALLOW_HEADERS: &str =
    "X-Vault-API-Key, Authorization, Content-Type, Idempotency-Key, X-Request-ID";
/// Seconds a browser may reuse a preflight answer.
pub const CORS_MAX_AGE: &str = "600";
/// Response headers such a page may read besides the CORS-safelisted ones.
const CORS_EXPOSE_HEADERS: &str = "X-Request-ID, X-RateLimit-Limit, X-RateLimit-Remaining, \
     X-RateLimit-Reset, Retry-After, Idempotent-Replayed";

/// The CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) of a browser on VAULT_CORS_ALLOWED_ORIGIN:
/// 204 with the methods and headers the tenant routes take (the key header among them) and a max-age. It grants
/// nothing by itself: the request that follows is authenticated as any other. Any other origin, no origin
/// configured, or an `/admin/*` path: passed on (and answered 405 like any unserved method).
pub async fn cors_preflight(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let admitted = request.method() == Method::OPTIONS
        && headers.contains_key("access-control-request-method")
        && !request.uri().path().starts_with("/admin/")
        && matches!(
            (&state.cors_allowed_origin, headers.get("origin")),
            (Some(allowed), Some(origin)) if origin.as_bytes() == allowed.as_bytes()
        );
    if !admitted {
        return next.run(request).await;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    if let Some(origin) = request.headers().get("origin") {
        out.insert("access-control-allow-origin", origin.clone());
    }
    out.insert(
        "access-control-allow-methods",
        HeaderValue::from_static(CORS_ALLOW_METHODS),
    );
    out.insert(
        "access-control-allow-headers",
        HeaderValue::from_static(CORS_ALLOW_HEADERS),
    );
    out.insert(
        "access-control-max-age",
        HeaderValue::from_static(CORS_MAX_AGE),
    );
    out.insert("vary", HeaderValue::from_static("Origin"));
    response
}

/// The key from `X-Vault-API-Key` (or `header`), else from `Authorization: Bearer`.
pub(crate) fn presented_key<'a>(headers: &'a HeaderMap, header: &str) -> Option<&'a str> {
    if let Some(key) = headers.get(header).and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let auth = headers.get("authorization")?.to_str().ok()?;
    let (scheme, key) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// Tenant routes: authenticate the API key, apply its rate limit, expose the `Principal` to handlers.
pub async fn tenant_auth(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(key) = presented_key(request.headers(), "x-vault-api-key") else {
        return refuse(request, ApiError::Vault(VaultError::Unauthorized)).await;
    };
    let principal = match state.vault.authenticate(key).await {
        Ok(p) => p,
        Err(e) => return refuse(request, ApiError::Vault(e)).await,
    };
    let decision = match state.vault.rate_limit(&principal).await {
        Ok(d) => d,
        Err(e) => return refuse(request, ApiError::Vault(e)).await,
    };
    if !decision.allowed {
        return refuse(request, rate_limited(&decision)).await;
    }
    tracing::Span::current().record("tenant_id", principal.tenant_id.as_str());
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    rate_headers(response.headers_mut(), &decision);
    response
}

/// 429 `rate_limited` with Retry-After and the limit's X-RateLimit-* headers.
pub(crate) fn rate_limited(decision: &RateDecision) -> Response {
    let mut response = ApiError::Vault(VaultError::RateLimited {
        retry_after_seconds: decision.retry_after_seconds,
    })
    .into_response();
    rate_headers(response.headers_mut(), decision);
    response
}

pub(crate) fn rate_headers(headers: &mut HeaderMap, decision: &RateDecision) {
    if decision.limit == 0 {
        return;
    }
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    headers.insert(
        "x-ratelimit-reset",
        HeaderValue::from(decision.reset_seconds),
    );
}

/// Tenant routes: refuse a key holding none of the route's roles (403 `forbidden_role`, naming them).
pub async fn require_roles(
    State(roles): State<&'static [Role]>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = match request.extensions().get::<Principal>() {
        Some(principal) => principal.require_any(roles),
        None => Err(VaultError::Unauthorized),
    };
    match allowed {
        Ok(()) => next.run(request).await,
        Err(e) => refuse(request, ApiError::Vault(e)).await,
    }
}

/// Answer a request its handler will never see. Its body is read and dropped first (up to what a handler would
/// accept): hyper closes a connection whose request body was left unread, and a client that sends its next request
/// on it would find it gone. A body past that size closes the connection, saying so.
pub(crate) async fn refuse(request: Request, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    let drained = Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await;
    if drained.is_err() {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
