//! A per-client-address token bucket in front of everything else, key lookup included: unauthenticated
//! traffic (wrong keys too) from one address cannot make the vault hash and look up keys without bound.
//!
//! The address is the socket peer (`ConnectInfo<SocketAddr>`), which only a server with a socket has:
//! `ledgix dev` serves with `into_make_service_with_connect_info`. In Lambda there is no socket and the layer
//! passes requests through; there the limit is API Gateway's stage throttling (infra/terraform, module api).
//! Forwarded-for headers are never trusted: a client could name any address in them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use ledgix_core::ports::RateLimiter;
use ledgix_core::ratelimit::RateLimit;
use ledgix_core::VaultError;

use crate::error::ApiError;
use crate::middleware::{rate_limited, refuse};
use crate::state::AppState;

/// The limiter (the same token buckets as the per-key limit, in process memory) and its rate.
#[derive(Clone)]
pub struct ClientLimit {
    limiter: Arc<dyn RateLimiter>,
    limit: RateLimit,
}

impl ClientLimit {
    /// `None` when `limit` is off (VAULT_CLIENT_RATE_LIMIT_RPS=0).
    pub fn new(limiter: Arc<dyn RateLimiter>, limit: RateLimit) -> Option<Self> {
        limit.enabled().then_some(ClientLimit { limiter, limit })
    }
}

/// The bucket of an address. IPv6 clients are keyed by their /64, which one host usually holds whole.
pub fn bucket_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("client#{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("client#{v4}"),
            None => {
                let s = v6.segments();
                format!("client#{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Takes a token for the request's client address; 429 `rate_limited` with Retry-After and X-RateLimit-*
/// when its bucket is empty. Requests without a socket address (Lambda) and a disabled limit pass.
pub async fn client_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(limit) = &state.client_limit else {
        return next.run(request).await;
    };
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() else {
        return next.run(request).await;
    };
    let decision = match limit
        .limiter
        .take(&bucket_key(peer.ip()), limit.limit)
        .await
    {
        Ok(d) => d,
        Err(e) => return refuse(request, ApiError::Vault(VaultError::from(e))).await,
    };
    if !decision.allowed {
        return refuse(request, rate_limited(&decision)).await;
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_key_their_buckets() {
        let v4: IpAddr = "203.0.113.9".parse().expect("ip");
        assert_eq!(bucket_key(v4), "client#203.0.113.9");
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().expect("ip");
        assert_eq!(bucket_key(mapped), "client#203.0.113.9");
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(bucket_key(a), bucket_key(b), "one /64, one bucket");
        assert_ne!(bucket_key(a), bucket_key(c));
    }
}
