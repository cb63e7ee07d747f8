output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = local.alarm_topic_arn
}

output "alarm_names" {
  description = "Names of every alarm."
  value = concat(
    [
      aws_cloudwatch_metric_alarm.judge_dlq_not_empty.alarm_name,
      aws_cloudwatch_metric_alarm.judge_queue_age.alarm_name,
      aws_cloudwatch_metric_alarm.notify_dlq_not_empty.alarm_name,
      aws_cloudwatch_metric_alarm.notify_queue_age.alarm_name,
      aws_cloudwatch_metric_alarm.api_5xx.alarm_name,
      aws_cloudwatch_metric_alarm.anchor_stalled.alarm_name,
      aws_cloudwatch_metric_alarm.anchor_lag.alarm_name,
    ],
    [for alarm in aws_cloudwatch_metric_alarm.function_errors : alarm.alarm_name],
    [for alarm in aws_cloudwatch_metric_alarm.function_throttles : alarm.alarm_name],
  )
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}
