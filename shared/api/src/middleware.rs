//! Request id, tenant and admin authentication, rate limiting.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ledgix_core::ratelimit::RateDecision;
use ledgix_core::VaultError;
use tracing::Instrument;

use crate::error::ApiError;
use crate::routes::AppState;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served (empty outside a request).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// Accept a caller's `X-Request-ID` when it is short and plain, else mint one.
fn request_id_from(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .filter(|v| {
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

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
        let now_ms = chrono_now_ms();
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
        }
    }
    response
}

/// The key from `X-Vault-API-Key` (or `header`), else from `Authorization: Bearer`.
fn presented_key<'a>(headers: &'a HeaderMap, header: &str) -> Option<&'a str> {
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
        return ApiError::Vault(VaultError::Unauthorized).into_response();
    };
    let principal = match state.vault.authenticate(key).await {
        Ok(p) => p,
        Err(e) => return ApiError::Vault(e).into_response(),
    };
    let decision = match state.vault.rate_limit(&principal).await {
        Ok(d) => d,
        Err(e) => return ApiError::Vault(e).into_response(),
    };
    if !decision.allowed {
        let mut response = ApiError::Vault(VaultError::RateLimited {
            retry_after_seconds: decision.retry_after_seconds,
        })
        .into_response();
        rate_headers(response.headers_mut(), &decision);
        return response;
    }
    tracing::Span::current().record("tenant_id", principal.tenant_id.as_str());
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    rate_headers(response.headers_mut(), &decision);
    response
}

fn rate_headers(headers: &mut HeaderMap, decision: &RateDecision) {
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

/// Administration routes: the admin key, compared in constant time against its stored hash.
pub async fn admin_auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(key) = presented_key(request.headers(), "x-admin-api-key") else {
        return ApiError::Vault(VaultError::Unauthorized).into_response();
    };
    if let Err(e) = state.vault.authenticate_admin(key) {
        return ApiError::Vault(e).into_response();
    }
    next.run(request).await
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
