//! judge-worker Lambda: an SQS FIFO batch, decided in order. Processing stops at the first failure; that
//! message and every later one are reported as batch item failures, so SQS redelivers them in order.
//! Redelivery is safe: a request already decided writes nothing.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use ledgix_api::{build, load_config, parse_job, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let config = load_config(false).await?;
    let vault = build(&config, None).await?.vault;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let vault = Arc::clone(&vault);
        async move { Ok::<_, Error>(handle(&vault, event.payload).await) }
    }))
    .await
}

async fn handle(vault: &ledgix_api::bootstrap::VaultHandle, event: SqsEvent) -> SqsBatchResponse {
    let batch = event
        .records
        .into_iter()
        .map(|m| (m.message_id.unwrap_or_default(), m.body.as_deref().and_then(parse_job)))
        .collect();
    let failed = vault.process_judge_batch(batch).await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}
