variable "name_prefix" {
  description = "Prefix of resource names."
  type        = string
}

variable "aws_region" {
  description = "Region (dashboard widgets)."
  type        = string
}

variable "alarm_sns_topic_arn" {
  description = "Existing SNS topic for alarms, or null to create one."
  type        = string
}

variable "alarm_email" {
  description = "Optional e-mail subscription on the created topic."
  type        = string
}

variable "sns_kms_key_arn" {
  description = "Key encrypting the created topic."
  type        = string
}

variable "function_names" {
  description = "Function names by short name."
  type        = map(string)
}

variable "api_id" {
  description = "HTTP API id."
  type        = string
}

variable "judge_queue_name" {
  description = "Judge queue name."
  type        = string
}

variable "judge_dlq_name" {
  description = "Judge dead-letter queue name."
  type        = string
}

variable "api_5xx_alarm_threshold" {
  description = "5xx responses in 5 minutes before the alarm fires."
  type        = number
}

variable "anchor_interval_seconds" {
  description = "The anchor interval (VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS): the anchor-lag alarm fires above two of them."
  type        = number
}

variable "anchor_schedule_seconds" {
  description = "How often anchor-export is invoked (VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS): at least once in every period of the anchor-lag alarm."
  type        = number
}

variable "anchor_stalled_alarm_minutes" {
  description = "Minutes without a successful anchor-export invocation before the anchor-stalled alarm fires."
  type        = number
}

variable "judge_queue_age_alarm_seconds" {
  description = "Age of the oldest judge message before the alarm fires."
  type        = number
}

variable "notify_queue_name" {
  description = "Notify queue name."
  type        = string
}

variable "notify_dlq_name" {
  description = "Notify dead-letter queue name."
  type        = string
}

variable "notify_queue_age_alarm_seconds" {
  description = "Age of the oldest notification job before the alarm fires (retries wait up to 900 s on the queue by design)."
  type        = number
}
