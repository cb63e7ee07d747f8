//! JSON bodies with the brief's error shapes (400 malformed, 422 wrong types, 413 too large, 415 not JSON)
//! and the `Idempotency-Key` bound to a hash of the exact request.

use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, Limited};
use ledgix_core::service::Idempotency;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

pub const MAX_BODY_BYTES: usize = 256 * 1024;
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A parsed JSON body plus the request's `Idempotency-Key` (bound to a hash of the exact request), if it sent one.
pub struct JsonBody<T> {
    pub value: T,
    pub idempotency: Option<Idempotency>,
}

fn is_json(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let key = match parts.headers.get("idempotency-key") {
            None => None,
            Some(v) => {
                let text = v
                    .to_str()
                    .ok()
                    .map(str::trim)
                    .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
                    .ok_or_else(|| {
                        ApiError::BadHeader(
                            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                        )
                    })?;
                Some(text.to_string())
            }
        };
        let bytes = limited_bytes(&parts.headers, body, || {
            ApiError::InvalidJson("could not read the request body".into())
        })
        .await?;
        let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        if !bytes.is_empty() {
            let content_type = parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !is_json(content_type) {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
        let value = serde_json::from_slice::<T>(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ApiError::Vault(
                ledgix_core::VaultError::InvalidRequest(format!("invalid request body: {e}")),
            ),
            // Well-formed JSON whose number has no finite double (`1e400`): a value the vault refuses, not
            // a syntax error.
            serde_json::error::Category::Syntax if is_number_out_of_range(&e) => {
                ApiError::Vault(ledgix_core::VaultError::InvalidRequest(format!(
                    "invalid request body: numbers must be finite: {e}"
                )))
            }
            _ => ApiError::InvalidJson(format!("malformed JSON: {e}")),
        })?;
        // serde also reads a struct from a JSON array (`[]` fills every defaulted field, `["acme"]` the first
        // one): every body this API takes is an object, so anything else is refused.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::Vault(ledgix_core::VaultError::InvalidRequest(
                "invalid request body: expected a JSON object".into(),
            )));
        }
        let idempotency = key.map(|key| {
            let mut hash = Sha256::new();
            hash.update(parts.method.as_str().as_bytes());
            hash.update(b" ");
            hash.update(parts.uri.path().as_bytes());
            hash.update(b"\n");
            hash.update(&bytes);
            Idempotency {
                key,
                request_hash: hex::encode(hash.finalize()),
            }
        });
        Ok(JsonBody { value, idempotency })
    }
}

/// The exact bytes of a body, for a route that checks a signature over them (`POST /slack/interactions`): the
/// same 256 KiB limit (413 `payload_too_large`), any content type (the route reads its own format).
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = limited_bytes(&parts.headers, body, || {
            ApiError::Vault(ledgix_core::VaultError::InvalidRequest(
                "could not read the request body".into(),
            ))
        })
        .await?;
        Ok(RawBody(bytes))
    }
}

/// The body's bytes: 413 `payload_too_large` beyond `MAX_BODY_BYTES`, by the declared length before reading
/// anything or by counting while reading; `unreadable` is the error for a body that cannot be read.
async fn limited_bytes(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    unreadable: impl FnOnce() -> ApiError,
) -> Result<axum::body::Bytes, ApiError> {
    let declared_len = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared_len.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::PayloadTooLarge)
        }
        Err(_) => Err(unreadable()),
    }
}

/// serde_json's error for a number literal beyond the range of a double (it has no error code to match).
fn is_number_out_of_range(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("number out of range")
}

/// Query parameters whose parse errors use the brief's error shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded_from_str(query).map(ApiQuery).map_err(|e| {
            ApiError::Vault(ledgix_core::VaultError::InvalidRequest(format!(
                "invalid query: {e}"
            )))
        })
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|e: axum::http::uri::InvalidUri| e.to_string())?,
    )
    .map(|q| q.0)
    .map_err(|e| e.body_text())
}

/// Path parameters whose parse errors (e.g. percent-encoded bytes that are not UTF-8) use the brief's shape.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|e| ApiError::InvalidPath(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::is_number_out_of_range;

    #[test]
    fn only_an_overflowing_number_is_out_of_range() {
        let overflow = serde_json::from_str::<serde_json::Value>(r#"{"a": 1e400}"#).unwrap_err();
        assert!(is_number_out_of_range(&overflow), "{overflow}");
        let negative = serde_json::from_str::<serde_json::Value>("[-1e400]").unwrap_err();
        assert!(is_number_out_of_range(&negative), "{negative}");
        for text in [r#"{"a": NaN}"#, r#"{"a": 1e}"#, r#"{"a": "#] {
            let e = serde_json::from_str::<serde_json::Value>(text).unwrap_err();
            assert!(!is_number_out_of_range(&e), "{text}: {e}");
        }
    }
}
