//! Lambda event handlers shared by the functions (and fed the sample events in `events/` by tests).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use ledgix_core::ports::JudgeJob;
use ledgix_core::Vault;
use serde_json::{json, Value};

/// judge-worker: decide an SQS FIFO batch in order; report the first failure and everything after it.
pub async fn judge_batch(vault: &Vault, event: SqsEvent) -> SqsBatchResponse {
    let batch = event
        .records
        .into_iter()
        .map(|m| {
            (
                m.message_id.unwrap_or_default(),
                m.body.as_deref().and_then(JudgeJob::from_message),
            )
        })
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

/// anchor-export: one anchor round over every tenant; the summary is the invocation's result.
pub async fn anchor_export(vault: &Vault) -> Result<Value, ledgix_core::VaultError> {
    let reports = vault.anchor_round().await?;
    let tenants: Vec<Value> = reports
        .iter()
        .map(|(tenant_id, r)| {
            json!({"tenant_id": tenant_id, "sequenced": r.sequenced, "checkpoint_id": r.checkpoint_id,
                   "exported": r.exported, "export_failed": r.export_failed})
        })
        .collect();
    Ok(json!({"tenants": tenants}))
}
