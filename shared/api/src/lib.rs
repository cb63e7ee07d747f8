//! The Ledgix Vault HTTP API: one axum router used by `ledgix dev` and the `clearance-api` Lambda.
//! handler → `ledgix_core::Vault` → ports → adapters, and back; errors map to the brief's JSON shape here.

pub mod bootstrap;
pub mod config;
pub mod error;
pub mod extract;
pub mod lambda;
pub mod metrics;
pub mod middleware;
pub mod routes;
pub mod telemetry;

pub use bootstrap::{
    admin_key_hash, build, build_embedded, jwks_document, load_config, local_signer_from_config,
    parse_job, signer_from_config, EmbeddedVault,
};
pub use config::{Backend, Config};
pub use routes::{router, AppState, RouteTable};
