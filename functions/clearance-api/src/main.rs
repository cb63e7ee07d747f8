//! clearance-api Lambda: API Gateway HTTP API → the shared axum router. Adapters are built once per cold
//! start; each invocation is one request through the same path `ledgix dev` serves.

use ledgix_api::{admin_key_hash, build, load_config, router, telemetry, AppState};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init_logging();
    let mut config = load_config(false).await?;
    // Serving requests never exports anchors: no S3 access (anchor-export does that).
    config.exports_anchors = false;
    let admin_key_hash = config.admin_api_key.as_deref().map(admin_key_hash);
    let wired = build(&config, admin_key_hash).await?;
    let cors = config
        .cors_allowed_origin
        .as_deref()
        .and_then(|o| o.parse().ok());
    let (app, _) = router(AppState {
        vault: wired.vault.clone(),
        cors_allowed_origin: cors,
        emf_metrics: config.emf_metrics,
    });
    lambda_http::run(app).await
}
