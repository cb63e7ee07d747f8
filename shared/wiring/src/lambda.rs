//! Lambda event handlers shared by the functions (and fed the sample events in `events/` by tests).

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use ledgix_core::ports::JudgeJob;
use ledgix_core::Vault;
use serde_json::{json, Value};

use crate::config::Config;
use crate::telemetry::emf;

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
    batch_failures(failed)
}

/// notifier: attempt each message's delivery; report the messages to redeliver (store or queue failures; a
/// failed webhook is not one: it is rescheduled with its backoff and its message deleted).
pub async fn notify_batch(
    notifier: &std::sync::Arc<ledgix_core::notify::Notifier>,
    event: SqsEvent,
) -> SqsBatchResponse {
    let messages = event
        .records
        .into_iter()
        .map(|m| (m.message_id.unwrap_or_default(), m.body))
        .collect();
    batch_failures(ledgix_aws::notify_queue::deliver_messages(notifier, messages).await)
}

fn batch_failures(failed: Vec<String>) -> SqsBatchResponse {
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

/// When and how anchor rounds run, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct AnchorPlan {
    /// VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS.
    pub interval: Duration,
    /// VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS: how often anchor-export is invoked.
    pub schedule: Duration,
    /// Emit the anchor-lag metrics as EMF lines (VAULT_METRICS).
    pub emf: bool,
}

impl AnchorPlan {
    pub fn from_config(config: &Config) -> Self {
        AnchorPlan {
            interval: config.anchor_interval,
            schedule: config.anchor_schedule,
            emf: config.emf_metrics,
        }
    }

    /// Rounds one invocation runs: one per interval in the schedule's period (EventBridge Scheduler cannot
    /// invoke more often than once a minute, so a 30 s interval takes two rounds per invocation).
    pub fn rounds(&self) -> u32 {
        let per = self.schedule.as_secs() / self.interval.as_secs().max(1);
        u32::try_from(per).unwrap_or(u32::MAX).clamp(1, 10)
    }
}

/// One anchor round, reported: each tenant's lag as EMF metrics (when on) and a log line per active tenant.
/// Returns the active tenants' summaries.
pub async fn anchor_round(vault: &Vault, emf: bool) -> Result<Vec<Value>, ledgix_core::VaultError> {
    let reports = vault.anchor_round().await?;
    let now_ms = emf::now_ms();
    let mut summaries = Vec::new();
    for (tenant_id, report) in reports.iter().filter(|(_, r)| !r.is_idle()) {
        if emf {
            emf::emit(&emf::anchor_lag_line(tenant_id, report, now_ms));
        }
        tracing::info!(tenant_id, sequenced = report.sequenced, checkpoint_id = ?report.checkpoint_id,
            exported = report.exported, export_failed = report.export_failed,
            events_behind = report.lag.events_behind, lag_seconds = report.lag.lag_seconds, "anchor round");
        summaries.push(
            json!({"tenant_id": tenant_id, "sequenced": report.sequenced,
            "checkpoint_id": report.checkpoint_id, "exported": report.exported,
            "export_failed": report.export_failed, "seal_failed": report.seal_failed,
            "events_behind": report.lag.events_behind,
            "lag_seconds": report.lag.lag_seconds}),
        );
    }
    if emf && summaries.is_empty() {
        emf::emit(&emf::idle_round_line(now_ms));
    }
    Ok(summaries)
}

/// anchor-export: `plan.rounds()` anchor rounds, `plan.interval` apart; the summary is the invocation's result.
pub async fn anchor_export(
    vault: &Vault,
    plan: AnchorPlan,
) -> Result<Value, ledgix_core::VaultError> {
    let started = tokio::time::Instant::now();
    let mut rounds = Vec::new();
    for round in 0..plan.rounds() {
        if round > 0 {
            tokio::time::sleep_until(started + plan.interval * round).await;
        }
        rounds.push(json!({"round": round + 1, "tenants": anchor_round(vault, plan.emf).await?}));
    }
    Ok(json!({"rounds": rounds}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_30_second_interval_runs_two_rounds_per_minute_invocation() {
        let plan = |interval, schedule| AnchorPlan {
            interval: Duration::from_secs(interval),
            schedule: Duration::from_secs(schedule),
            emf: false,
        };
        assert_eq!(plan(30, 60).rounds(), 2);
        assert_eq!(plan(60, 60).rounds(), 1);
        assert_eq!(plan(300, 300).rounds(), 1);
        assert_eq!(plan(120, 60).rounds(), 1, "never zero rounds");
        assert_eq!(plan(1, 3600).rounds(), 10, "bounded");
    }
}
