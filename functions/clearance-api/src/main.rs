//! clearance-api Lambda: API Gateway HTTP API → the shared axum router. Adapters are built once per cold
//! start; each invocation is one request through the same path `ledgix dev` serves.

use ledgix_api::AppState;
use ledgix_wiring::{admin_key_hash, build, load_config, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init_logging();
    let mut config = load_config(false).await?;
    // Serving requests never exports anchors: no S3 access (anchor-export does that).
    config.exports_anchors = false;
    let admin_key_hash = config.admin_api_key.as_deref().map(admin_key_hash);
    let wired = build(&config, admin_key_hash).await?;
    // The router behind the layer that turns API Gateway's IAM authorizer into the admin routes' marker.
    lambda_http::run(clearance_api::app(AppState::new(wired.vault, &config))).await
}
