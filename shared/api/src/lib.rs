//! The Ledgix Vault HTTP API: one axum router used by `ledgix dev` and the `clearance-api` Lambda.
//! handler → `ledgix_core::Vault` → ports → adapters, and back; errors map to the brief's JSON shape here.
//! Modules depend one way: routes → admin, client_limit → middleware → error → request_id, with `state` and
//! `extract` beside them.

pub mod admin;
pub mod client_limit;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod request_id;
pub mod review_page;
pub mod routes;
pub mod state;

pub use routes::{router, RouteTable};
pub use state::AppState;
