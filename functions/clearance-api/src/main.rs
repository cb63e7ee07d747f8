//! clearance-api Lambda: API Gateway HTTP API → the shared axum router. Adapters are built once per cold
//! start; each invocation is one request through the same path `ledgix dev` serves.

use ledgix_api::{build_embedded, router, telemetry, AppState, Config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    telemetry::init_logging();
    let config = Config::from_env()?;
    let admin_key_hash = config.admin_api_key.as_deref().map(ledgix_api::admin_key_hash);
    let mut vault = build_embedded(&config, admin_key_hash)?;
    vault.start_judge_workers().await?;
    let cors = config.cors_allowed_origin.as_deref().and_then(|o| o.parse().ok());
    let (app, _) = router(AppState { vault: vault.vault.clone(), cors_allowed_origin: cors, emf_metrics: config.emf_metrics });
    lambda_http::run(app).await
}

