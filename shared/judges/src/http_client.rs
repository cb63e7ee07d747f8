//! The one HTTP client of the HTTP-speaking judges (`openai`, `http`): JSON POSTs over hyper with rustls, a
//! per-call deadline and a cap on how much of an answer is read, with transport failures already sorted into
//! `ModelError`s so both adapters retry, and give up, alike.
//!
//! TLS uses the ring provider (the AWS SDK links aws-lc-rs too, so rustls cannot pick one by itself) and the
//! system's trust roots, as `ledgix verify` does; where the system has none (minimal containers) it falls back to
//! the bundled web PKI roots rather than refusing to start.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use ledgix_core::ports::ModelError;

use crate::ConfigError;

/// The most of a response body read (1 MiB): a verdict or a batch of embeddings is far smaller, and a larger
/// answer is not one.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// How much of an unparsable error body goes into an error message.
const MAX_DETAIL_CHARS: usize = 300;

type Inner = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// http and https, kept-alive connections; cheap to clone (clones share the connection pool).
#[derive(Clone)]
pub struct HttpClient {
    inner: Inner,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

/// A response read whole (within `MAX_RESPONSE_BYTES`), whatever its status.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

impl HttpClient {
    /// Reads the trust roots once; fails only when rustls cannot be set up at all.
    pub fn new() -> Result<Self, ConfigError> {
        let provider = rustls::crypto::ring::default_provider();
        let builder =
            match HttpsConnectorBuilder::new().with_provider_and_native_roots(provider.clone()) {
                Ok(builder) => builder,
                Err(_) => HttpsConnectorBuilder::new().with_tls_config(web_pki_config(provider)?),
            };
        let https = builder.https_or_http().enable_http1().build();
        let inner =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https);
        Ok(HttpClient { inner })
    }

    /// POST `body` as JSON to `url` with `headers`, and read the answer, all within `timeout`.
    pub(crate) async fn post_json(
        &self,
        url: &Uri,
        headers: &HeaderMap,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<Response, ModelError> {
        let endpoint = endpoint(url);
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ModelError::Rejected(format!("cannot encode the request: {e}")))?;
        let mut request = http::Request::post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| {
                ModelError::Rejected(format!("cannot build a request to {endpoint}: {e}"))
            })?;
        request.headers_mut().extend(headers.clone());
        let exchange = async {
            let response = self.inner.request(request).await.map_err(|e| {
                let what = if e.is_connect() {
                    "cannot connect to"
                } else {
                    "no answer from"
                };
                ModelError::Unavailable(format!("{what} {endpoint}: {}", chain(&e)))
            })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<LengthLimitError>().is_some() {
                        ModelError::InvalidOutput(format!(
                            "{endpoint} answered with more than {MAX_RESPONSE_BYTES} bytes"
                        ))
                    } else {
                        ModelError::Unavailable(format!(
                            "the answer from {endpoint} broke off: {}",
                            chain(e.as_ref())
                        ))
                    }
                })?
                .to_bytes();
            Ok(Response { status, body })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ModelError::Timeout(format!(
                "no answer from {endpoint} within {timeout:?}"
            ))),
        }
    }
}

fn web_pki_config(
    provider: rustls::crypto::CryptoProvider,
) -> Result<rustls::ClientConfig, ConfigError> {
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError(format!("TLS: {e}")))?
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth(),
    )
}

/// `url` parsed and checked to be an absolute http(s) URL.
pub(crate) fn parse_url(url: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| ConfigError(format!("{url:?} is not a URL: {e}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(uri),
        _ => Err(ConfigError(format!(
            "{url:?} is not an http:// or https:// URL"
        ))),
    }
}

/// `base` (an OpenAI-style API root such as `http://127.0.0.1:11434/v1`, trailing slash or not) and `path`.
pub(crate) fn join_url(base: &str, path: &str) -> Result<Uri, ConfigError> {
    parse_url(&format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    ))
}

/// What error messages name: scheme, host, port and path; never user info or a query.
fn endpoint(url: &Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("http");
    let host = url.host().unwrap_or("");
    match url.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}{}", url.path()),
        None => format!("{scheme}://{host}{}", url.path()),
    }
}

/// The error and its sources, as one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// A non-2xx status as the judge's error: 429 throttled, 408/504 timed out, other 5xx unavailable (all retried),
/// anything else refused (not retried). `detail` is what the server said.
pub(crate) fn status_error(status: StatusCode, detail: &str) -> ModelError {
    let message = format!("HTTP {}: {detail}", status.as_u16());
    match status.as_u16() {
        429 => ModelError::Throttled(message),
        408 | 504 => ModelError::Timeout(message),
        500..=599 => ModelError::Unavailable(message),
        _ => ModelError::Rejected(message),
    }
}

/// The message of an error body: OpenAI's `{"error": {"message"}}`, `{"error": "..."}`, `{"message"}` or
/// `{"detail"}`, else the start of the body. `secret` (the API key) is blanked wherever it appears.
pub(crate) fn error_detail(body: &[u8], secret: Option<&str>) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        let error = v.get("error");
        error
            .and_then(|e| e.get("message"))
            .or_else(|| error.filter(|e| e.is_string()))
            .or_else(|| v.get("message"))
            .or_else(|| v.get("detail"))
            .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
    });
    let text = from_json.unwrap_or_else(|| {
        let raw = String::from_utf8_lossy(body);
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            "(empty body)".to_string()
        } else {
            trimmed.chars().take(MAX_DETAIL_CHARS).collect()
        }
    });
    redact(text, secret)
}

pub(crate) fn redact(text: String, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() && text.contains(secret) => {
            text.replace(secret, "[redacted]")
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_model_errors() {
        let kind = |code: u16| match status_error(StatusCode::from_u16(code).unwrap(), "x") {
            ModelError::Throttled(_) => "throttled",
            ModelError::Timeout(_) => "timeout",
            ModelError::Unavailable(_) => "unavailable",
            ModelError::Rejected(_) => "rejected",
            ModelError::InvalidOutput(_) => "invalid",
        };
        assert_eq!(kind(429), "throttled");
        assert_eq!(kind(408), "timeout");
        assert_eq!(kind(504), "timeout");
        assert_eq!(kind(500), "unavailable");
        assert_eq!(kind(502), "unavailable");
        assert_eq!(kind(503), "unavailable");
        assert_eq!(kind(400), "rejected");
        assert_eq!(kind(401), "rejected");
        assert_eq!(kind(403), "rejected");
        assert_eq!(kind(404), "rejected");
        assert_eq!(kind(422), "rejected");
        assert_eq!(kind(302), "rejected");
    }

    #[test]
    fn urls_join_with_or_without_a_trailing_slash() {
        for base in ["http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1/"] {
            assert_eq!(
                join_url(base, "chat/completions").unwrap().to_string(),
                "http://127.0.0.1:11434/v1/chat/completions"
            );
            assert_eq!(
                join_url(base, "/embeddings").unwrap().to_string(),
                "http://127.0.0.1:11434/v1/embeddings"
            );
        }
        assert_eq!(
            join_url("https://api.openai.com/v1", "chat/completions")
                .unwrap()
                .to_string(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert!(join_url("not a url", "chat/completions").is_err());
        assert!(parse_url("ftp://example.com/judge").is_err());
        assert!(parse_url("/judge").is_err());
        assert!(parse_url("https://judge.example.com/v1/judge").is_ok());
    }

    #[test]
    fn endpoints_in_messages_leave_out_credentials_and_queries() {
        let url: Uri = "https://user:pw@judge.example.com:8443/judge?key=s3cret"
            .parse()
            .unwrap();
        assert_eq!(endpoint(&url), "https://judge.example.com:8443/judge");
    }

    #[test]
    fn error_details_come_from_the_usual_shapes_and_never_show_the_key() {
        let openai = br#"{"error": {"message": "Incorrect API key provided: sk-abc123", "type": "invalid_request_error"}}"#;
        assert_eq!(
            error_detail(openai, Some("sk-abc123")),
            "Incorrect API key provided: [redacted]"
        );
        assert_eq!(error_detail(br#"{"error": "bad key"}"#, None), "bad key");
        assert_eq!(
            error_detail(br#"{"message": "too many"}"#, None),
            "too many"
        );
        assert_eq!(
            error_detail(br#"{"detail": "no such judge"}"#, None),
            "no such judge"
        );
        assert_eq!(error_detail(b"  Bad Gateway \n", None), "Bad Gateway");
        assert_eq!(error_detail(b"", None), "(empty body)");
        let long = "x".repeat(1000);
        assert_eq!(error_detail(long.as_bytes(), None).len(), MAX_DETAIL_CHARS);
    }
}
