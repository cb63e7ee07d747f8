# The anchor cadence (docs/deploy.md, "Anchoring"): how often anchor-export is invoked, how many anchor rounds one
# invocation runs, and the checks that involve several inputs. environment.tf passes the settings to the
# functions, main.tf gives the schedule to modules/functions and the interval to modules/observability (the anchor-lag
# and anchor-stalled alarms).

locals {
  # EventBridge Scheduler's rate() counts whole minutes, so it invokes anchor-export at most once a minute. An
  # interval below a minute (30 s) is run as several rounds per invocation, an interval apart
  # (shared/wiring/src/lambda.rs, AnchorPlan): VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS / the interval of them.
  anchor_schedule_seconds      = max(60, var.anchor_interval_seconds)
  anchor_schedule_minutes      = local.anchor_schedule_seconds / 60
  anchor_schedule_expression   = "rate(${local.anchor_schedule_minutes} ${local.anchor_schedule_minutes == 1 ? "minute" : "minutes"})"
  anchor_rounds_per_invocation = max(1, floor(local.anchor_schedule_seconds / var.anchor_interval_seconds))

  # A round keeps sealing a tenant's backlog for at most half the interval, and never more than two minutes
  # (shared/core/src/sealing.rs, Vault::anchor_round); every tenant in flight then finishes its batch and exports
  # it. The reserve covers that, the S3 exports, the lag measurement and a cold start (secrets, database pools).
  anchor_round_budget_seconds  = min(floor(var.anchor_interval_seconds / 2), 120)
  anchor_round_reserve_seconds = 60
  # The last round starts (rounds - 1) intervals after the invocation.
  anchor_invocation_seconds = ((local.anchor_rounds_per_invocation - 1) * var.anchor_interval_seconds
  + local.anchor_round_budget_seconds + local.anchor_round_reserve_seconds)
}

# Holds the anchor cadence (shown in the plan) and refuses combinations of inputs that cannot work.
resource "terraform_data" "anchor" {
  input = {
    interval_seconds      = var.anchor_interval_seconds
    schedule              = local.anchor_schedule_expression
    rounds_per_invocation = local.anchor_rounds_per_invocation
    concurrency           = var.anchor_concurrency
  }

  lifecycle {
    precondition {
      condition     = local.anchor_invocation_seconds <= var.anchor_export_timeout_seconds
      error_message = "anchor-export runs ${local.anchor_rounds_per_invocation} anchor round(s) per invocation, ${var.anchor_interval_seconds} s apart, each sealing for up to ${local.anchor_round_budget_seconds} s, plus ${local.anchor_round_reserve_seconds} s for the rest: ${local.anchor_invocation_seconds} s, more than anchor_export_timeout_seconds (${var.anchor_export_timeout_seconds}). Raise the timeout."
    }
    precondition {
      condition     = var.anchor_stalled_alarm_minutes * 60 >= 2 * local.anchor_schedule_seconds
      error_message = "anchor_stalled_alarm_minutes (${var.anchor_stalled_alarm_minutes}) must span at least two anchor-export invocations (${2 * local.anchor_schedule_minutes} minutes with anchor_interval_seconds = ${var.anchor_interval_seconds}), or the anchor-stalled alarm fires between them."
    }
  }
}
