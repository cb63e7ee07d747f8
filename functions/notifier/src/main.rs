//! notifier Lambda: a batch of delivery jobs from the SQS notify queue, each one webhook attempt. A failed
//! webhook is rescheduled on the queue with its backoff (the message is done); only store or queue failures
//! are reported as batch item failures, so SQS redelivers those (and dead-letters them after its
//! maxReceiveCount). Runs outside the VPC: it reads nothing but DynamoDB, SQS and KMS.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use ledgix_wiring::{lambda, notifier_from_env, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let notifier = Arc::new(notifier_from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let notifier = Arc::clone(&notifier);
        async move { Ok::<_, Error>(lambda::notify_batch(&notifier, event.payload).await) }
    }))
    .await
}
