variable "name_prefix" {
  description = "Prefix of resource names."
  type        = string
}

variable "aws_region" {
  description = "Region of the stack."
  type        = string
}

variable "account_id" {
  description = "AWS account id (key policies, bucket name)."
  type        = string
}

variable "partition" {
  description = "AWS partition (aws, aws-cn, aws-us-gov)."
  type        = string
}

variable "dynamodb_table_name" {
  description = "Name of the hot key-value table."
  type        = string
}

variable "deletion_protection" {
  description = "Deletion protection on the DynamoDB table."
  type        = bool
}

variable "judge_worker_timeout_seconds" {
  description = "Timeout of the function consuming the judge queue."
  type        = number
}

variable "judge_queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the judge queue (at least 6 x the worker timeout)."
  type        = number
}

variable "judge_queue_max_receive_count" {
  description = "Deliveries before a message moves to the dead-letter queue."
  type        = number
}

variable "anchor_bucket_name" {
  description = "Anchor bucket name, or null for <prefix>-anchors-<account>-<region>."
  type        = string
}

variable "anchor_object_lock_enabled" {
  description = "Create the anchor bucket with object lock and a default retention."
  type        = bool
}

variable "anchor_object_lock_mode" {
  description = "Default retention mode (GOVERNANCE or COMPLIANCE)."
  type        = string
}

variable "anchor_object_lock_days" {
  description = "Default retention in days."
  type        = number
}

variable "anchor_noncurrent_transition_days" {
  description = "Days before noncurrent anchor versions move to STANDARD_IA."
  type        = number
}

variable "signing_key_generations" {
  description = "Generations of the Ed25519 signing key, oldest first: one KMS key each; the last is the active root."
  type        = list(string)
}

variable "kms_deletion_window_days" {
  description = "Deletion window of the KMS keys."
  type        = number
}

variable "secret_recovery_window_days" {
  description = "Recovery window of the bootstrap secret."
  type        = number
}

variable "notifier_timeout_seconds" {
  description = "Timeout of the function consuming the notify queue."
  type        = number
}

variable "notify_queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the notify queue (at least 6 x the notifier timeout)."
  type        = number
}
