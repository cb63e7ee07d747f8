//! The TCP connector under the TLS layer: it resolves the host, checks every address it resolves to, and
//! connects only to those exact addresses. Every new connection goes through it, pooled reconnections
//! included, so a name that resolves elsewhere by the time of the connection (DNS rebinding) is still refused.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use ledgix_core::notify::address::{check_address, UrlPolicy};
use tokio::net::TcpStream;

use crate::Resolve;

/// Why a connection was not made. Carries no request data: only the host, its addresses and the cause.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ConnectError {
    /// The host resolves to an address the policy refuses.
    #[error("refused: {0}")]
    Refused(String),
    /// DNS failed, resolved to nothing, or no address accepted the connection.
    #[error("{0}")]
    Transport(String),
}

/// Resolve `host` (an IP literal, brackets or not, needs no DNS) and check every address: one refused address
/// refuses the host. The addresses returned carry `port`.
pub(crate) async fn resolve_checked(
    resolver: &dyn Resolve,
    policy: UrlPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, ConnectError> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let mut addrs = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => resolver
            .resolve(host, port)
            .await
            .map_err(|e| ConnectError::Transport(format!("cannot resolve {host}: {e}")))?,
    };
    if addrs.is_empty() {
        return Err(ConnectError::Transport(format!(
            "{host} resolves to no address"
        )));
    }
    for addr in &mut addrs {
        check_address(addr.ip(), policy)
            .map_err(|reason| ConnectError::Refused(format!("{host}: {reason}")))?;
        addr.set_port(port);
    }
    Ok(addrs)
}

/// The port a URI names, or its scheme's default.
pub(crate) fn port_of(uri: &Uri) -> u16 {
    uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("http") => 80,
        _ => 443,
    })
}

/// A `tower::Service<Uri>` for hyper's client: resolve, check, connect to the checked addresses in order.
#[derive(Clone)]
pub(crate) struct CheckedConnector {
    pub(crate) resolver: Arc<dyn Resolve>,
    pub(crate) policy: UrlPolicy,
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, ConnectError>> + Send>>;

impl tower::Service<Uri> for CheckedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let resolver = Arc::clone(&self.resolver);
        let policy = self.policy;
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| ConnectError::Transport("the URL has no host".into()))?;
            let port = port_of(&uri);
            let addrs = match resolve_checked(resolver.as_ref(), policy, host, port).await {
                Ok(addrs) => addrs,
                Err(ConnectError::Refused(reason)) => {
                    tracing::warn!(%host, %reason, "webhook connection refused at connect time");
                    return Err(ConnectError::Refused(reason));
                }
                Err(e) => return Err(e),
            };
            let mut last = None;
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        // Only latency is lost if this fails.
                        let _ = stream.set_nodelay(true);
                        return Ok(TokioIo::new(stream));
                    }
                    Err(e) => last = Some(format!("{addr}: {e}")),
                }
            }
            Err(ConnectError::Transport(format!(
                "cannot connect to {host}:{port} ({})",
                last.unwrap_or_else(|| "no address".into())
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<IpAddr>);

    #[async_trait::async_trait]
    impl Resolve for Fixed {
        async fn resolve(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
            Ok(self.0.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
        }
    }

    const STRICT: UrlPolicy = UrlPolicy {
        allow_loopback: false,
    };

    #[tokio::test]
    async fn literals_skip_dns_and_every_resolved_address_is_checked() {
        let no_dns = Fixed(vec![]);
        assert_eq!(
            resolve_checked(&no_dns, STRICT, "93.184.216.34", 443).await,
            Ok(vec!["93.184.216.34:443".parse().unwrap()])
        );
        assert_eq!(
            resolve_checked(&no_dns, STRICT, "[2606:4700::1111]", 8443).await,
            Ok(vec!["[2606:4700::1111]:8443".parse().unwrap()])
        );
        assert!(matches!(
            resolve_checked(&no_dns, STRICT, "[::1]", 443).await,
            Err(ConnectError::Refused(_))
        ));
        assert!(matches!(
            resolve_checked(&no_dns, STRICT, "hooks.example.test", 443).await,
            Err(ConnectError::Transport(_))
        ));
        let mixed = Fixed(vec![
            "93.184.216.34".parse().unwrap(),
            "::ffff:10.0.0.1".parse().unwrap(),
        ]);
        assert!(matches!(
            resolve_checked(&mixed, STRICT, "hooks.example.test", 443).await,
            Err(ConnectError::Refused(_))
        ));
    }

    #[test]
    fn ports_default_by_scheme() {
        assert_eq!(port_of(&"https://a.test/x".parse().unwrap()), 443);
        assert_eq!(port_of(&"http://a.test/x".parse().unwrap()), 80);
        assert_eq!(port_of(&"https://a.test:8443/x".parse().unwrap()), 8443);
    }
}
