output "signing_key_arn" {
  description = "ARN of the active Ed25519 signing key (the last generation): the root."
  value       = aws_kms_key.signing[local.active_signing_generation].arn
}

output "signing_key_arns" {
  description = "ARN of every signing key generation kept, by generation."
  value       = { for generation, key in aws_kms_key.signing : generation => key.arn }
}

output "signing_key_alias" {
  description = "Alias of the active signing key."
  value       = aws_kms_alias.signing.name
}

output "signing_key_spec" {
  description = "Key spec the signing key is configured with."
  value       = local.signing_key_spec
}

output "envelope_key_arn" {
  description = "ARN of the envelope key."
  value       = aws_kms_key.envelope.arn
}

output "platform_key_arn" {
  description = "ARN of the key encrypting the stack's resources at rest."
  value       = aws_kms_key.platform.arn
}

output "dynamodb_table_name" {
  description = "Name of the hot table."
  value       = aws_dynamodb_table.hot.name
}

output "dynamodb_table_arn" {
  description = "ARN of the hot table."
  value       = aws_dynamodb_table.hot.arn
}

output "judge_queue_url" {
  description = "URL of the judge FIFO queue."
  value       = aws_sqs_queue.judge.url
}

output "judge_queue_arn" {
  description = "ARN of the judge FIFO queue."
  value       = aws_sqs_queue.judge.arn
}

output "judge_queue_name" {
  description = "Name of the judge FIFO queue."
  value       = aws_sqs_queue.judge.name
}

output "judge_dlq_url" {
  description = "URL of the judge dead-letter queue."
  value       = aws_sqs_queue.judge_dlq.url
}

output "judge_dlq_arn" {
  description = "ARN of the judge dead-letter queue."
  value       = aws_sqs_queue.judge_dlq.arn
}

output "judge_dlq_name" {
  description = "Name of the judge dead-letter queue."
  value       = aws_sqs_queue.judge_dlq.name
}

output "notify_queue_url" {
  description = "URL of the notify queue."
  value       = aws_sqs_queue.notify.url
}

output "notify_queue_arn" {
  description = "ARN of the notify queue."
  value       = aws_sqs_queue.notify.arn
}

output "notify_queue_name" {
  description = "Name of the notify queue."
  value       = aws_sqs_queue.notify.name
}

output "notify_dlq_url" {
  description = "URL of the notify dead-letter queue."
  value       = aws_sqs_queue.notify_dlq.url
}

output "notify_dlq_arn" {
  description = "ARN of the notify dead-letter queue."
  value       = aws_sqs_queue.notify_dlq.arn
}

output "notify_dlq_name" {
  description = "Name of the notify dead-letter queue."
  value       = aws_sqs_queue.notify_dlq.name
}

output "anchor_bucket_name" {
  description = "Name of the anchor bucket."
  value       = aws_s3_bucket.anchors.id
}

output "anchor_bucket_arn" {
  description = "ARN of the anchor bucket."
  value       = aws_s3_bucket.anchors.arn
}

output "bootstrap_secret_arn" {
  description = "ARN of the bootstrap secret."
  value       = aws_secretsmanager_secret.bootstrap.arn
}

output "bootstrap_secret_name" {
  description = "Name of the bootstrap secret (AWS_SECRET_NAME)."
  value       = aws_secretsmanager_secret.bootstrap.name
}

output "tenant_secret_prefix" {
  description = "TENANT_SECRET_PREFIX: tenant secrets are <prefix>/<tenant_id>."
  value       = local.tenant_secret_prefix
}
