# Alarms (to one SNS topic) and a dashboard.

resource "aws_sns_topic" "alarms" {
  count = var.alarm_sns_topic_arn == null ? 1 : 0

  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = var.sns_kms_key_arn
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_sns_topic_arn == null && var.alarm_email != null ? 1 : 0

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  alarm_topic_arn = coalesce(var.alarm_sns_topic_arn, try(aws_sns_topic.alarms[0].arn, null))
  alarm_actions   = [local.alarm_topic_arn]
}

# A message in the DLQ is a clearance request that was never decided: it needs a human (inspect, then redrive).
resource "aws_cloudwatch_metric_alarm" "judge_dlq_not_empty" {
  alarm_name          = "${var.name_prefix}-judge-dlq-not-empty"
  alarm_description   = "Judge requests were moved to the dead-letter queue ${var.judge_dlq_name} undecided. Inspect them, fix the cause, then redrive (docs/deploy.md)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = var.judge_dlq_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "judge_queue_age" {
  alarm_name          = "${var.name_prefix}-judge-queue-backlog"
  alarm_description   = "The oldest judge request in ${var.judge_queue_name} has waited too long: judge-worker is failing, throttled or too slow."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = var.judge_queue_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.judge_queue_age_alarm_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# A message in the notify DLQ is a delivery whose job failed on the store or the queue at every receive (a failed
# webhook is retried by the notifier itself, never dead-lettered by SQS): it is not attempted again until redriven.
resource "aws_cloudwatch_metric_alarm" "notify_dlq_not_empty" {
  alarm_name          = "${var.name_prefix}-notify-dlq-not-empty"
  alarm_description   = "Notification jobs were moved to the dead-letter queue ${var.notify_dlq_name}: the notifier failed on DynamoDB, KMS or SQS, or crashed or timed out, at every receive (a failed webhook is retried by the notifier, never dead-lettered here). Fix the cause, then redrive (docs/deploy.md, Notifications)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = var.notify_dlq_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "notify_queue_age" {
  alarm_name          = "${var.name_prefix}-notify-queue-backlog"
  alarm_description   = "The oldest notification job in ${var.notify_queue_name} has waited more than ${var.notify_queue_age_alarm_seconds} s (a retry waits at most 15 minutes by design): the notifier is failing, throttled or too slow, and webhooks go out late."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = var.notify_queue_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.notify_queue_age_alarm_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "api_5xx" {
  alarm_name          = "${var.name_prefix}-api-5xx"
  alarm_description   = "The HTTP API answered 5xx (the vault itself never should: look for function errors, timeouts or throttles)."
  namespace           = "AWS/ApiGateway"
  metric_name         = "5xx"
  dimensions          = { ApiId = var.api_id }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.api_5xx_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each = var.function_names

  alarm_name          = "${each.value}-errors"
  alarm_description   = "${each.value} failed invocations (crashes, timeouts, start-up configuration errors)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "function_throttles" {
  for_each = var.function_names

  alarm_name          = "${each.value}-throttles"
  alarm_description   = "${each.value} invocations were throttled (concurrency quota or reserved concurrency)."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Anchor stalled: no anchor-export invocation finished without error within the window. Missing data (the
# schedule stopped, or the function is never invoked) counts as stalled too.
resource "aws_cloudwatch_metric_alarm" "anchor_stalled" {
  alarm_name          = "${var.name_prefix}-anchor-stalled"
  alarm_description   = "No successful anchor-export invocation in ${var.anchor_stalled_alarm_minutes} minutes: new decisions are not being sealed into checkpoints or exported to S3 (docs/deploy.md, Anchoring)."
  evaluation_periods  = 1
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "successes"
    expression  = "FILL(invocations, 0) - FILL(errors, 0)"
    label       = "Successful anchor-export invocations"
    return_data = true
  }

  metric_query {
    id = "invocations"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Invocations"
      dimensions  = { FunctionName = var.function_names["anchor-export"] }
      stat        = "Sum"
      period      = var.anchor_stalled_alarm_minutes * 60
    }
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Errors"
      dimensions  = { FunctionName = var.function_names["anchor-export"] }
      stat        = "Sum"
      period      = var.anchor_stalled_alarm_minutes * 60
    }
  }
}

locals {
  # Every anchor round reports each tenant's lag as EMF (shared/wiring/src/telemetry.rs): per TenantId and without
  # dimensions, so the dimensionless series' Maximum is the worst tenant's. A round with nothing to seal reports 0.
  anchor_metrics_namespace = "LedgixVault"
  anchor_lag_threshold     = 2 * var.anchor_interval_seconds
  # One period holds at least one round's report: a minute with sub-minute intervals (two rounds each), the
  # interval itself when anchor-export runs less often.
  anchor_lag_period = max(60, var.anchor_schedule_seconds)
}

# Anchor lag: anchor-export runs but does not keep up. The bar is the issue's and GET /ledger/status's within_bound:
# every tenant's oldest unsealed event at most two intervals old. Missing data is not breaching: without a round
# there is no report, which is the anchor-stalled alarm's case (it treats silence as breaching), and a breaching
# default here would only page twice for one cause.
resource "aws_cloudwatch_metric_alarm" "anchor_lag" {
  alarm_name          = "${var.name_prefix}-anchor-lag"
  alarm_description   = "A tenant's oldest unsealed ledger event has been more than ${local.anchor_lag_threshold} s (two anchor intervals) old for 3 periods in a row: anchor rounds run but do not keep up (AnchorEventsBehind shows the backlog; docs/deploy.md, Anchoring). No data is not breaching: a stopped anchor-export is the anchor-stalled alarm's."
  namespace           = local.anchor_metrics_namespace
  metric_name         = "AnchorLagSeconds"
  statistic           = "Maximum"
  period              = local.anchor_lag_period
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.anchor_lag_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

locals {
  lambda_metric = { for metric in ["Invocations", "Errors", "Throttles"] : metric => [
    for name, fn in var.function_names : ["AWS/Lambda", metric, "FunctionName", fn, { label = name }]
  ] }
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = "${var.name_prefix}-vault"
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title = "HTTP API requests and errors", region = var.aws_region, stat = "Sum", period = 60, view = "timeSeries"
          metrics = [
            ["AWS/ApiGateway", "Count", "ApiId", var.api_id, { label = "requests" }],
            ["AWS/ApiGateway", "4xx", "ApiId", var.api_id, { label = "4xx" }],
            ["AWS/ApiGateway", "5xx", "ApiId", var.api_id, { label = "5xx" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title = "HTTP API latency (ms)", region = var.aws_region, period = 60, view = "timeSeries"
          metrics = [
            ["AWS/ApiGateway", "Latency", "ApiId", var.api_id, { stat = "p50", label = "p50" }],
            ["AWS/ApiGateway", "Latency", "ApiId", var.api_id, { stat = "p99", label = "p99" }],
            ["AWS/ApiGateway", "IntegrationLatency", "ApiId", var.api_id, { stat = "p99", label = "integration p99" }],
          ]
        }
      },
      {
        type       = "metric", x = 0, y = 6, width = 8, height = 6
        properties = { title = "Function invocations", region = var.aws_region, stat = "Sum", period = 60, view = "timeSeries", metrics = local.lambda_metric["Invocations"] }
      },
      {
        type       = "metric", x = 8, y = 6, width = 8, height = 6
        properties = { title = "Function errors", region = var.aws_region, stat = "Sum", period = 60, view = "timeSeries", metrics = local.lambda_metric["Errors"] }
      },
      {
        type       = "metric", x = 16, y = 6, width = 8, height = 6
        properties = { title = "Function throttles", region = var.aws_region, stat = "Sum", period = 60, view = "timeSeries", metrics = local.lambda_metric["Throttles"] }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title = "Judge queue", region = var.aws_region, stat = "Maximum", period = 60, view = "timeSeries"
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.judge_queue_name, { label = "waiting" }],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", var.judge_queue_name, { label = "oldest (s)", yAxis = "right" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.judge_dlq_name, { label = "dead-letter" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title = "anchor-export invocations", region = var.aws_region, period = 300, view = "timeSeries"
          metrics = [
            ["AWS/Lambda", "Invocations", "FunctionName", var.function_names["anchor-export"], { stat = "Sum", label = "invocations" }],
            ["AWS/Lambda", "Errors", "FunctionName", var.function_names["anchor-export"], { stat = "Sum", label = "failed" }],
            ["AWS/Lambda", "Duration", "FunctionName", var.function_names["anchor-export"], { stat = "Maximum", label = "duration max (ms)", yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 18, width = 12, height = 6
        properties = {
          title = "Anchor lag, worst tenant", region = var.aws_region, stat = "Maximum", period = local.anchor_lag_period, view = "timeSeries"
          metrics = [
            [local.anchor_metrics_namespace, "AnchorLagSeconds", { label = "lag (s)" }],
            [local.anchor_metrics_namespace, "AnchorEventsBehind", { label = "events behind", yAxis = "right" }],
          ]
          annotations = { horizontal = [{ label = "anchor-lag alarm", value = local.anchor_lag_threshold }] }
        }
      },
      {
        type = "metric", x = 12, y = 18, width = 12, height = 6
        properties = {
          title = "Anchor lag by tenant (s)", region = var.aws_region, stat = "Maximum", period = local.anchor_lag_period, view = "timeSeries"
          metrics = [
            [{ id = "lag", expression = "SEARCH('{${local.anchor_metrics_namespace},TenantId} MetricName=\"AnchorLagSeconds\"', 'Maximum', ${local.anchor_lag_period})", label = "$${PROP('Dim.TenantId')}" }],
          ]
          annotations = { horizontal = [{ label = "anchor-lag alarm", value = local.anchor_lag_threshold }] }
        }
      },
      {
        type = "metric", x = 0, y = 24, width = 12, height = 6
        properties = {
          title = "Notify queue", region = var.aws_region, stat = "Maximum", period = 60, view = "timeSeries"
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.notify_queue_name, { label = "waiting" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesDelayed", "QueueName", var.notify_queue_name, { label = "retries waiting (delayed)" }],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", var.notify_queue_name, { label = "oldest (s)", yAxis = "right" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.notify_dlq_name, { label = "dead-letter" }],
          ]
        }
      },
    ]
  })
}
