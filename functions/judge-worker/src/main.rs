//! judge-worker Lambda: an SQS FIFO batch, decided in order. Processing stops at the first failure; that
//! message and every later one are reported as batch item failures, so SQS redelivers them in order.
//! Redelivery is safe: a request already decided writes nothing.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use ledgix_wiring::{build, lambda, load_config, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let mut config = load_config(false).await?;
    // Serving requests never exports anchors: no S3 access (anchor-export does that).
    config.exports_anchors = false;
    let vault = build(&config, None).await?.vault;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let vault = Arc::clone(&vault);
        async move { Ok::<_, Error>(lambda::judge_batch(&vault, event.payload).await) }
    }))
    .await
}
