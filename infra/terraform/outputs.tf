output "api_url" {
  description = "HTTPS endpoint of the vault (the SDK's base URL)."
  value       = module.api.api_url
}

output "jwks_url" {
  description = "Public keys of the approval tokens, receipts and checkpoints."
  value       = "${trimsuffix(module.api.api_url, "/")}/.well-known/jwks.json"
}

output "function_names" {
  description = "Deployed Lambda function names by short name."
  value       = module.functions.function_names
}

output "judge_queue_url" {
  description = "SQS FIFO queue of judge work."
  value       = module.state.judge_queue_url
}

output "judge_dlq_url" {
  description = "Dead-letter queue of the judge queue (the DLQ depth alarm watches it)."
  value       = module.state.judge_dlq_url
}

output "notify_queue_url" {
  description = "SQS standard queue of notification jobs (VAULT_NOTIFY_SQS_QUEUE_URL), consumed by the notifier."
  value       = module.state.notify_queue_url
}

output "notify_dlq_url" {
  description = "Dead-letter queue of the notify queue (the notify DLQ alarm watches it)."
  value       = module.state.notify_dlq_url
}

output "dynamodb_table_name" {
  description = "Hot key-value table."
  value       = module.state.dynamodb_table_name
}

output "anchor_bucket_name" {
  description = "S3 bucket holding each tenant's checkpoints and tiles under <anchor_prefix>/<tenant_id>/."
  value       = module.state.anchor_bucket_name
}

output "signing_key_arn" {
  description = "The root: the KMS Ed25519 key of the last signing key generation. It signs checkpoints and key certificates, and with signing_mode = \"direct\" approval tokens and receipts."
  value       = module.state.signing_key_arn
}

output "signing_keys" {
  description = "Every signing key generation kept: its KMS key ARN, its kid, and whether it is the active root."
  value = {
    for generation, arn in module.state.signing_key_arns : generation => {
      arn    = arn
      kid    = local.signing_key_kids[generation]
      active = generation == local.active_signing_generation
    }
  }
}

output "envelope_key_arn" {
  description = "KMS key wrapping the data keys of ledger payloads at rest."
  value       = module.state.envelope_key_arn
}

output "platform_key_arn" {
  description = "KMS key encrypting the stack's own resources (secrets, table, bucket, logs)."
  value       = module.state.platform_key_arn
}

output "bootstrap_secret_name" {
  description = "Set its value after apply: a JSON object with DATABASE_URL and LEDGIX_ADMIN_API_KEY, and VAULT_JUDGE_API_KEY for the openai/http judges (docs/deploy.md)."
  value       = module.state.bootstrap_secret_name
}

output "tenant_secret_prefix" {
  description = "Secrets Manager prefix of the tenant database secrets the vault creates."
  value       = module.state.tenant_secret_prefix
}

output "database_endpoint" {
  description = "Aurora cluster writer endpoint (null with an existing database)."
  value       = try(module.database[0].cluster_endpoint, null)
}

output "database_cluster_arn" {
  description = "Aurora cluster ARN, for the bootstrap SQL through the Data API (null with an existing database)."
  value       = try(module.database[0].cluster_arn, null)
}

output "database_master_secret_arn" {
  description = "RDS-managed secret of the Aurora master user (null with an existing database)."
  value       = try(module.database[0].master_user_secret_arn, null)
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the deployment."
  value       = module.observability.dashboard_name
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = module.observability.alarm_topic_arn
}

output "admin_execute_arn" {
  description = "execute-api ARN of the administration routes (/admin/*) when admin_auth is iam, else null."
  value       = module.api.admin_execute_arn
}

output "admin_invoke_policy_arn" {
  description = "IAM policy granting execute-api:Invoke on the administration routes: attach it to the operators' roles or users (admin_auth = iam; else null)."
  value       = try(aws_iam_policy.admin_invoke[0].arn, null)
}

output "network" {
  description = "The private network, for what the operator attaches to it (a NAT gateway route or a PrivateLink endpoint for the openai/http judge): VPC, private subnets, their route table, the functions' security group."
  value = {
    vpc_id                   = module.network.vpc_id
    private_subnet_ids       = module.network.private_subnet_ids
    private_route_table_id   = module.network.private_route_table_id
    lambda_security_group_id = module.network.lambda_security_group_id
  }
}

output "email_dkim_records" {
  description = "Per domain of email_identities, the DKIM CNAME records to publish in its DNS (Easy DKIM): SES verifies the domain, and may send from it, once it finds them. Known after apply. Address identities have none: SES mails each address a verification link."
  value = {
    for domain in local.email_domain_identities : domain => [
      for token in try(aws_sesv2_email_identity.sender[domain].dkim_signing_attributes[0].tokens, []) : {
        name  = "${token}._domainkey.${domain}"
        type  = "CNAME"
        value = "${token}.dkim.amazonses.com"
      }
    ]
  }
}
