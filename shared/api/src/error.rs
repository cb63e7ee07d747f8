//! Every error leaves as `{"error": {"code", "message", "request_id"}}` with the right status.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledgix_core::VaultError;
use serde_json::json;

use crate::request_id::current_request_id;

#[derive(Debug)]
pub enum ApiError {
    Vault(VaultError),
    InvalidJson(String),
    PayloadTooLarge,
    UnsupportedMediaType,
    BadHeader(String),
    /// A path segment that cannot be decoded (e.g. percent-encoded bytes that are not UTF-8).
    InvalidPath(String),
    RouteNotFound,
    MethodNotAllowed,
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        ApiError::Vault(e)
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        use VaultError as V;
        match self {
            ApiError::InvalidJson(m) => (StatusCode::BAD_REQUEST, "invalid_json", m.clone()),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body exceeds 256 KiB".into(),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "request body must be application/json".into(),
            ),
            ApiError::BadHeader(m) => (StatusCode::BAD_REQUEST, "invalid_header", m.clone()),
            ApiError::InvalidPath(m) => (StatusCode::BAD_REQUEST, "invalid_path", m.clone()),
            ApiError::RouteNotFound => (
                StatusCode::NOT_FOUND,
                "route_not_found",
                "no such route".into(),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route".into(),
            ),
            ApiError::Vault(e) => match e {
                V::InvalidRequest(m) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    m.clone(),
                ),
                V::InvalidPolicy(m) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_policy",
                    m.clone(),
                ),
                V::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()),
                V::ForbiddenRole(_) => (StatusCode::FORBIDDEN, "forbidden_role", e.to_string()),
                V::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone()),
                V::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token", e.to_string()),
                V::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", e.to_string()),
                V::TokenReplayed => (StatusCode::CONFLICT, "token_replayed", e.to_string()),
                V::NotPending(_) => (StatusCode::CONFLICT, "not_pending", e.to_string()),
                V::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
                V::PolicyLimitReached(_) => {
                    (StatusCode::CONFLICT, "policy_limit_reached", e.to_string())
                }
                V::ToolArgsMismatch(m) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "tool_args_mismatch",
                    m.clone(),
                ),
                V::IdempotencyKeyReused => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    e.to_string(),
                ),
                V::IdempotencyInProgress => (
                    StatusCode::CONFLICT,
                    "idempotency_in_progress",
                    e.to_string(),
                ),
                V::RateLimited { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string())
                }
                V::StoreUnavailable(_)
                | V::SignerUnavailable(_)
                | V::QueueUnavailable(_)
                | V::AnchorUnavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the vault cannot decide right now; retry later".into(),
                ),
                V::Internal(_) | V::Replay(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error".into(),
                ),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Vault(VaultError::Replay(record)) = self {
            return replay_response(&record);
        }
        let (status, code, message) = self.parts();
        if status.is_server_error() {
            // Full detail goes to the log only; the client gets a generic message.
            tracing::error!(error = ?self, "request failed");
        }
        let request_id = current_request_id();
        let mut response = (
            status,
            axum::Json(
                json!({"error": {"code": code, "message": message, "request_id": request_id}}),
            ),
        )
            .into_response();
        if let ApiError::Vault(VaultError::RateLimited {
            retry_after_seconds,
        }) = self
        {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(retry_after_seconds));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        response
    }
}

/// The stored answer to an earlier request with the same idempotency key.
fn replay_response(record: &ledgix_core::model::IdempotencyRecord) -> Response {
    let status = StatusCode::from_u16(record.status_code).unwrap_or(StatusCode::OK);
    let mut response = (status, record.response_body.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
