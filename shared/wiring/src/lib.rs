//! Wiring of a Ledgix Vault process: configuration from the environment (and the AWS_SECRET_NAME bootstrap
//! secret), assembly of the embedded or AWS adapters behind the domain's ports, the background work a
//! long-lived process runs (anchor timer, judge workers), and the Lambda event handlers the functions share.
//! The HTTP crate and the functions depend on this crate; it knows nothing of HTTP.

pub mod assemble;
pub mod config;
pub mod judge;
pub mod lambda;
pub mod telemetry;

pub use assemble::{
    admin_key_hash, build, build_embedded, jwks_document, load_config, load_config_with,
    local_signer_from_config, notifier_from_env, signer_from_config, WiredVault,
};
pub use config::{Backend, Config, ConfigError, SignerBackend};
/// Token buckets in process memory: the per-client-address limit of the HTTP layer uses them in every backend.
pub use ledgix_embedded::MemoryRateLimiter;
