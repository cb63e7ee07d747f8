//! What every handler and middleware shares: the vault and the per-process HTTP settings.

use std::sync::Arc;

use axum::http::HeaderValue;
use ledgix_core::Vault;
use ledgix_wiring::config::AdminAuth;
use ledgix_wiring::Config;

use crate::client_limit::ClientLimit;

#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub cors_allowed_origin: Option<HeaderValue>,
    /// Emit a CloudWatch EMF line per request (VAULT_METRICS=emf).
    pub emf_metrics: bool,
    /// Per-client-address limit in front of key lookup (VAULT_CLIENT_RATE_LIMIT_*); `None` when off.
    pub client_limit: Option<ClientLimit>,
    /// How administration routes are admitted (VAULT_ADMIN_AUTH).
    pub admin_auth: AdminAuth,
}

impl AppState {
    /// The state for `vault` with the HTTP settings of `config` (VAULT_CORS_ALLOWED_ORIGIN, VAULT_METRICS,
    /// VAULT_CLIENT_RATE_LIMIT_*, VAULT_ADMIN_AUTH). Client buckets live in this process's memory.
    pub fn new(vault: Arc<Vault>, config: &Config) -> Self {
        AppState {
            vault,
            cors_allowed_origin: config
                .cors_allowed_origin
                .as_deref()
                .and_then(|origin| origin.parse().ok()),
            emf_metrics: config.emf_metrics,
            client_limit: ClientLimit::new(
                Arc::new(ledgix_wiring::MemoryRateLimiter::default()),
                config.client_rate_limit,
            ),
            admin_auth: config.admin_auth,
        }
    }
}
