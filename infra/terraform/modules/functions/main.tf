# The five Lambda functions (cargo-lambda zips, arm64, provided.al2023), their log groups, the event source mappings
# of the judge queue and the notify queue, and the anchor-export schedule.

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (default 90); audit evidence lives in the ledger and the anchor bucket, not in logs
  for_each = var.functions

  name              = "/aws/lambda/${each.value.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:jwks reaches only KMS, Secrets Manager and DynamoDB, and the notifier only DynamoDB, SQS, KMS and tenants' public webhook URLs: neither needs anything in the VPC; the other three run in it (in_vpc)
  #checkov:skip=CKV_AWS_115:Reserved concurrency is the reserved_concurrency input: reserving fails on accounts with a low concurrency quota
  #checkov:skip=CKV_AWS_116:No asynchronous invocations to dead-letter: the API functions are synchronous, the judge and notify queues have their own DLQs, and a missed anchor round is redone by the next one (anchor lag alarm)
  #checkov:skip=CKV_AWS_173:The environment holds no secrets (they are in the bootstrap secret); Lambda encrypts it at rest with its own key
  #checkov:skip=CKV_AWS_272:cargo-lambda zips are not signed with AWS Signer; source_code_hash pins the deployed package
  for_each = var.functions

  function_name = each.value.function_name
  description   = each.value.description
  role          = each.value.role_arn
  runtime       = "provided.al2023"
  architectures = ["arm64"]
  handler       = "bootstrap" # ignored by the custom runtime; the zip's executable is named bootstrap
  memory_size   = each.value.memory_mb
  timeout       = each.value.timeout_seconds
  filename      = each.value.package_path
  # The hash of the zip (or an override for plans without built packages) decides when the code is updated.
  source_code_hash               = coalesce(each.value.package_hash, try(filebase64sha256(each.value.package_path), "missing"))
  reserved_concurrent_executions = coalesce(each.value.reserved_concurrency, -1)

  environment {
    variables = each.value.environment
  }

  tracing_config {
    mode = var.enable_xray_tracing ? "Active" : "PassThrough"
  }

  dynamic "vpc_config" {
    for_each = each.value.in_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  logging_config {
    log_format = "Text" # the functions already write JSON lines; "JSON" would wrap them again
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  lifecycle {
    precondition {
      condition     = each.value.package_hash != null || fileexists(each.value.package_path)
      error_message = "No package at ${each.value.package_path}: run scripts/package.sh first (or set lambda_package_dir)."
    }
  }
}

# ---------------------------------------------------------------------------------------------------------------
# judge-worker: SQS FIFO event source
# ---------------------------------------------------------------------------------------------------------------

resource "aws_lambda_event_source_mapping" "judge_worker" {
  event_source_arn = var.judge_queue_arn
  function_name    = aws_lambda_function.this["judge-worker"].arn
  batch_size       = var.judge_worker_batch_size
  enabled          = true
  # The worker stops at the first failure and reports it and every later message, so SQS redelivers only those,
  # in order; without this a single failure would redeliver the whole batch.
  function_response_types = ["ReportBatchItemFailures"]

  dynamic "scaling_config" {
    for_each = var.judge_worker_max_concurrency == null ? [] : [1]
    content {
      maximum_concurrency = var.judge_worker_max_concurrency
    }
  }
}

# ---------------------------------------------------------------------------------------------------------------
# notifier: SQS standard event source
# ---------------------------------------------------------------------------------------------------------------

resource "aws_lambda_event_source_mapping" "notifier" {
  event_source_arn = var.notify_queue_arn
  function_name    = aws_lambda_function.this["notifier"].arn
  batch_size       = var.notifier_batch_size
  enabled          = true
  # The notifier attempts the batch's deliveries concurrently. A failed webhook is rescheduled on the queue by the
  # notifier itself (its message is done); only a job whose store or queue work failed is reported, so SQS
  # redelivers just those, and dead-letters them after the queue's maxReceiveCount.
  function_response_types = ["ReportBatchItemFailures"]

  dynamic "scaling_config" {
    for_each = var.notifier_max_concurrency == null ? [] : [1]
    content {
      maximum_concurrency = var.notifier_max_concurrency
    }
  }
}

# ---------------------------------------------------------------------------------------------------------------
# anchor-export: EventBridge Scheduler
# ---------------------------------------------------------------------------------------------------------------

resource "aws_scheduler_schedule" "anchor_export" {
  #checkov:skip=CKV_AWS_297:The schedule holds only a constant input ({"source": "ledgix.anchor-schedule"}); nothing confidential to encrypt with a customer key
  name                = var.anchor_schedule_name
  description         = "Ledgix Vault anchor round: seal new ledger events, sign checkpoints, export to S3"
  schedule_expression = var.anchor_schedule_expression
  state               = "ENABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this["anchor-export"].arn
    role_arn = var.anchor_scheduler_role_arn
    input    = jsonencode({ source = "ledgix.anchor-schedule" })

    retry_policy {
      # A failed round is not retried: the next one seals everything the failed one would have.
      maximum_retry_attempts       = 0
      maximum_event_age_in_seconds = var.anchor_max_event_age_seconds
    }
  }
}

# Scheduler invokes asynchronously; Lambda's own async retries would only pile rounds on top of the schedule.
resource "aws_lambda_function_event_invoke_config" "anchor_export" {
  function_name                = aws_lambda_function.this["anchor-export"].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = var.anchor_max_event_age_seconds
}
