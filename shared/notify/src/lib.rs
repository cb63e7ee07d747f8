//! The outbound webhook adapter: `HttpWebhookSender` implements `ledgix_core::notify::WebhookSender` over
//! hyper with rustls. The development email senders (SMTP to a catcher, the log) are in `email`.
//!
//! Every address a webhook's host resolves to is checked against the `UrlPolicy`, and a connection is made only
//! to addresses just checked: the check runs in the connector, for every new connection (pooled reconnections
//! included), so a name rebound to an internal address after registration is refused (DNS rebinding). TLS
//! still verifies the certificate against the URL's host name (SNI is the name, not the address). Redirects are
//! never followed, no proxy is used, and errors carry neither the request's headers (they hold the signature)
//! nor its body, nor the URL's path and query (webhook URLs often embed a token).
//!
//! TLS uses the ring provider and the system's trust roots, falling back to the bundled web PKI roots where the
//! system has none, as the judges' HTTP client does.

mod connector;
pub mod email;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::header::{HeaderName, HeaderValue};
use http::Uri;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ledgix_core::notify::address::{check_url, UrlPolicy};
use ledgix_core::notify::{OutboundPost, SendError, WebhookSender};
use tokio::time::Instant;

use crate::connector::{port_of, resolve_checked, CheckedConnector, ConnectError};

/// The default deadline of one attempt: connect, TLS, send, and the answer's status and headers.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a response body read (64 KiB), and thrown away, so that the connection can be reused.
pub const MAX_DRAINED_BYTES: usize = 64 * 1024;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest error text returned (it becomes a delivery's `last_error`).
const MAX_ERROR_CHARS: usize = 300;

/// Name resolution for webhook hosts: the system's resolver in production, a fake one in tests.
#[async_trait]
pub trait Resolve: Send + Sync {
    /// The addresses `host` resolves to (with `port`).
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The system's resolver (`getaddrinfo`, through `tokio::net::lookup_host`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

type Inner = Client<HttpsConnector<CheckedConnector>, Full<Bytes>>;

/// The webhook sender: one per process; its connection pool is shared by every delivery.
pub struct HttpWebhookSender {
    client: Inner,
    resolver: Arc<dyn Resolve>,
    policy: UrlPolicy,
    timeout: Duration,
}

impl std::fmt::Debug for HttpWebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpWebhookSender")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpWebhookSender {
    /// A sender resolving names with the system's resolver. Reads the trust roots once; fails only when TLS
    /// cannot be set up at all.
    pub fn new(policy: UrlPolicy) -> Result<Self, String> {
        Self::with_resolver(policy, Arc::new(SystemResolver))
    }

    /// A sender resolving names with `resolver` (tests use a fake one).
    pub fn with_resolver(policy: UrlPolicy, resolver: Arc<dyn Resolve>) -> Result<Self, String> {
        let provider = rustls::crypto::ring::default_provider();
        let builder =
            match HttpsConnectorBuilder::new().with_provider_and_native_roots(provider.clone()) {
                Ok(builder) => builder,
                Err(_) => HttpsConnectorBuilder::new().with_tls_config(web_pki_config(provider)?),
            };
        // Plain http only where the policy can allow it at all (loopback, under the development flag);
        // `check_url` narrows it to loopback hosts.
        let builder = if policy.allow_loopback {
            builder.https_or_http()
        } else {
            builder.https_only()
        };
        let https = builder.enable_http1().wrap_connector(CheckedConnector {
            resolver: Arc::clone(&resolver),
            policy,
        });
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(https);
        Ok(HttpWebhookSender {
            client,
            resolver,
            policy,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same sender with another deadline per attempt (and per check); `DEFAULT_TIMEOUT` otherwise.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL checked, then its host resolved and every address checked, by `deadline`.
    async fn checked(&self, raw: &str, deadline: Instant) -> Result<Target, SendError> {
        let mut url = check_url(raw, self.policy).map_err(SendError::Refused)?;
        url.set_fragment(None);
        // The normalized URL, so that the host checked is the host connected to.
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|e| SendError::Refused(format!("the URL cannot be requested ({e})")))?;
        let host = uri
            .host()
            .ok_or_else(|| SendError::Refused("the URL has no host".into()))?
            .to_string();
        let port = port_of(&uri);
        let endpoint = format!("{}://{host}:{port}", url.scheme());
        let resolving = resolve_checked(self.resolver.as_ref(), self.policy, &host, port);
        match tokio::time::timeout_at(deadline, resolving).await {
            Ok(Ok(_)) => Ok(Target { uri, endpoint }),
            Ok(Err(e)) => Err(send_error(e)),
            Err(_) => Err(SendError::Transport(format!(
                "cannot resolve {host} within {:?}",
                self.timeout
            ))),
        }
    }
}

/// A checked URL: the URI requested, and what messages name of it (scheme, host and port only).
struct Target {
    uri: Uri,
    endpoint: String,
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn check(&self, url: &str) -> Result<(), SendError> {
        self.checked(url, Instant::now() + self.timeout)
            .await
            .map(|_| ())
    }

    async fn post(&self, request: &OutboundPost) -> Result<u16, SendError> {
        let deadline = Instant::now() + self.timeout;
        let Target { uri, endpoint } = self.checked(&request.url, deadline).await?;
        let mut outbound = http::Request::post(uri)
            .body(Full::new(Bytes::from(request.body.clone())))
            .map_err(|_| SendError::Transport(format!("cannot build a request to {endpoint}")))?;
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SendError::Transport("a header has an invalid name".into()))?;
            // The value is never named: the signature is one.
            let value = HeaderValue::from_str(value)
                .map_err(|_| SendError::Transport(format!("header {name} has an invalid value")))?;
            outbound.headers_mut().append(name, value);
        }
        let response = match tokio::time::timeout_at(deadline, self.client.request(outbound)).await
        {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(client_error(&e, &endpoint)),
            Err(_) => {
                return Err(SendError::Transport(format!(
                    "no answer from {endpoint} within {:?}",
                    self.timeout
                )))
            }
        };
        let status = response.status().as_u16();
        // The status is what counts: draining only lets the connection be reused, within the same deadline.
        let _ = tokio::time::timeout_at(deadline, drain(response.into_body())).await;
        Ok(status)
    }
}

/// Read and discard up to `MAX_DRAINED_BYTES` of a body; stop early on more, or on an error.
async fn drain(mut body: Incoming) {
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return };
        if let Some(data) = frame.data_ref() {
            read = read.saturating_add(data.len());
            if read > MAX_DRAINED_BYTES {
                return;
            }
        }
    }
}

fn send_error(e: ConnectError) -> SendError {
    match e {
        ConnectError::Refused(reason) => SendError::Refused(reason),
        ConnectError::Transport(message) => SendError::Transport(message),
    }
}

/// A client error as a `SendError`: the connector's own refusal stays a refusal; anything else is a transport
/// failure described by its error chain (which holds no request data).
fn client_error(e: &hyper_util::client::legacy::Error, endpoint: &str) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refusal) = err.downcast_ref::<ConnectError>() {
            return match refusal {
                ConnectError::Refused(reason) => SendError::Refused(reason.clone()),
                ConnectError::Transport(message) => SendError::Transport(truncate(message.clone())),
            };
        }
        source = err.source();
    }
    let what = if e.is_connect() {
        "cannot connect to"
    } else {
        "no answer from"
    };
    SendError::Transport(truncate(format!("{what} {endpoint}: {}", chain(e))))
}

/// The error's sources, as one line (the outermost, "client error (Connect)", says little).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut source = error.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

fn truncate(text: String) -> String {
    if text.chars().count() <= MAX_ERROR_CHARS {
        text
    } else {
        text.chars().take(MAX_ERROR_CHARS).collect()
    }
}

fn web_pki_config(
    provider: rustls::crypto::CryptoProvider,
) -> Result<rustls::ClientConfig, String> {
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth(),
    )
}
