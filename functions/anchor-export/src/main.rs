//! anchor-export Lambda (EventBridge Scheduler): anchor rounds over every tenant — sequence committed events,
//! sign chained checkpoints, export checkpoints, C2SP notes and tiles to S3, report each tenant's anchor lag.
//! One invocation runs one round per anchor interval in the schedule's period (two for 30 s every minute).

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use ledgix_wiring::{build, lambda, load_config, telemetry};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let config = load_config(false).await?;
    let vault = build(&config, None).await?.vault;
    let plan = lambda::AnchorPlan::from_config(&config);
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| {
        let vault = Arc::clone(&vault);
        async move { Ok::<_, Error>(lambda::anchor_export(&vault, plan).await?) }
    }))
    .await
}
