# Plan-level assertions on the whole stack with a mock AWS provider (no account, no credentials).
# Run by scripts/terraform_check.sh: `terraform test` in a temporary copy set up for the offline provider mirror.

mock_provider "aws" {
  # Mocked computed values (ARNs, URLs) are known at plan time, so plan-only runs can assert on them.
  override_during = plan

  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["us-east-1a", "us-east-1b", "us-east-1c"]
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:us-east-1:123456789012:mock.fifo"
      url = "https://sqs.us-east-1.amazonaws.com/123456789012/mock.fifo"
    }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ledgix/bootstrap-AbCdEf"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::ledgix-anchors-123456789012-us-east-1"
    }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = {
      arn = "arn:aws:dynamodb:us-east-1:123456789012:table/ledgix-hot"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/mock"
    }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:us-east-1:123456789012:function:mock"
      invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:mock/invocations"
    }
  }
  mock_resource "aws_apigatewayv2_api" {
    defaults = {
      execution_arn = "arn:aws:execute-api:us-east-1:123456789012:abc123"
    }
  }
  mock_resource "aws_apigatewayv2_stage" {
    defaults = {
      invoke_url = "https://abc123.execute-api.us-east-1.amazonaws.com/"
    }
  }
  mock_resource "aws_sns_topic" {
    defaults = {
      arn = "arn:aws:sns:us-east-1:123456789012:ledgix-alarms"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock"
    }
  }
}

variables {
  aws_region  = "us-east-1"
  name_prefix = "ledgix"
  # No zips in a plan test: the hashes stand in for scripts/package.sh's output.
  package_hashes = {
    "clearance-api" = "test"
    "jwks"          = "test"
    "judge-worker"  = "test"
    "anchor-export" = "test"
  }
}

run "functions" {
  command = plan

  assert {
    condition     = length(module.functions.function_names) == 4
    error_message = "four functions: clearance-api, jwks, judge-worker, anchor-export"
  }
  assert {
    condition = alltrue([for name in ["clearance-api", "jwks", "judge-worker", "anchor-export"] :
    module.functions.function_names[name] == "ledgix-${name}"])
    error_message = "functions are named <name_prefix>-<name>"
  }
  assert {
    condition     = output.jwks_url == "https://abc123.execute-api.us-east-1.amazonaws.com/.well-known/jwks.json"
    error_message = "jwks_url is the API URL + /.well-known/jwks.json"
  }
  assert {
    condition     = local.judge_queue_visibility_timeout_seconds >= 6 * var.judge_worker_timeout_seconds
    error_message = "judge queue visibility timeout must be at least 6x the worker timeout"
  }
  assert {
    condition     = local.anchor_schedule_expression == "rate(1 minute)"
    error_message = "anchor-export runs every anchor_interval_minutes (default 1)"
  }
  assert {
    condition     = local.function_environment["clearance-api"]["VAULT_SIGNER_BACKEND"] == "aws_kms" && local.function_environment["jwks"]["VAULT_BACKEND"] == "aws"
    error_message = "every function signs with KMS on the AWS backend"
  }
  assert {
    condition     = local.function_environment["anchor-export"]["VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS"] == "60"
    error_message = "mmd_seconds follows the schedule"
  }
  assert {
    condition     = !contains(keys(local.function_environment["clearance-api"]), "VAULT_LEDGER_ANCHOR_BUCKET") && !contains(keys(local.function_environment["judge-worker"]), "VAULT_LEDGER_ANCHOR_BUCKET")
    error_message = "only anchor-export knows the anchor bucket"
  }
  assert {
    condition     = alltrue([for name, env in local.function_environment : !contains(keys(env), "DATABASE_URL") && !contains(keys(env), "LEDGIX_ADMIN_API_KEY")])
    error_message = "secrets stay in the bootstrap secret, never in a function's environment"
  }
}

run "iam" {
  command = plan

  assert {
    condition     = length(aws_iam_role.function) == 4
    error_message = "one role per function"
  }
  assert {
    condition     = alltrue([for s in local.function_permissions["jwks"] : alltrue([for a in s.actions : contains(["secretsmanager:GetSecretValue", "kms:GetPublicKey"], a)])])
    error_message = "jwks may only read its settings and the public key"
  }
  assert {
    condition     = alltrue(flatten([for name in ["clearance-api", "judge-worker", "jwks"] : [for s in local.function_permissions[name] : [for a in s.actions : !startswith(a, "s3:")]]]))
    error_message = "only anchor-export touches the anchor bucket"
  }
  assert {
    condition     = alltrue(flatten([for name, statements in local.function_permissions : [for s in statements : [for a in s.actions : !strcontains(a, "*")]]]))
    error_message = "no wildcard actions in function permissions"
  }
  assert {
    condition     = alltrue(flatten([for name, statements in local.platform_permissions : [for s in statements : length(s.reason) > 20]]))
    error_message = "every platform permission says why"
  }
  assert {
    condition     = length([for s in local.platform_permissions["jwks"] : s if s.sid == "VpcNetworkInterfaces"]) == 0
    error_message = "jwks runs outside the VPC"
  }
}

run "state" {
  command = plan

  assert {
    condition     = module.state.signing_key_spec == "ECC_NIST_EDWARDS25519"
    error_message = "the signing key is Ed25519"
  }
  assert {
    condition     = module.state.tenant_secret_prefix == "ledgix/tenants"
    error_message = "tenant secrets live under <name_prefix>/tenants"
  }
}

run "existing_database" {
  command = plan

  variables {
    create_database               = false
    existing_database_cidr_blocks = ["10.20.0.0/16"]
  }

  assert {
    condition     = length(module.database) == 0 && output.database_endpoint == null
    error_message = "no Aurora cluster when an existing database is used"
  }
}

run "worker_batch_size_is_capped" {
  command = plan

  variables {
    judge_worker_batch_size = 11
  }

  expect_failures = [var.judge_worker_batch_size]
}

# The submodules, planned on their own so the assertions can see their resources.

run "state_module" {
  command = plan

  module {
    source = "./modules/state"
  }

  variables {
    account_id                             = "123456789012"
    partition                              = "aws"
    dynamodb_table_name                    = "ledgix-hot"
    deletion_protection                    = true
    judge_worker_timeout_seconds           = 60
    judge_queue_visibility_timeout_seconds = 360
    judge_queue_max_receive_count          = 5
    anchor_bucket_name                     = null
    anchor_object_lock_enabled             = true
    anchor_object_lock_mode                = "GOVERNANCE"
    anchor_object_lock_days                = 365
    anchor_noncurrent_transition_days      = 30
    kms_deletion_window_days               = 30
    secret_recovery_window_days            = 7
  }

  assert {
    condition     = aws_dynamodb_table.hot.billing_mode == "PAY_PER_REQUEST" && aws_dynamodb_table.hot.hash_key == "pk" && aws_dynamodb_table.hot.range_key == "sk"
    error_message = "the hot table is on-demand with keys pk/sk"
  }
  assert {
    condition     = aws_dynamodb_table.hot.ttl[0].enabled && aws_dynamodb_table.hot.ttl[0].attribute_name == "expires_at"
    error_message = "items expire through the expires_at TTL attribute"
  }
  assert {
    condition     = aws_dynamodb_table.hot.point_in_time_recovery[0].enabled && aws_dynamodb_table.hot.server_side_encryption[0].enabled
    error_message = "point-in-time recovery and encryption with the platform key"
  }
  assert {
    condition     = aws_sqs_queue.judge.fifo_queue && aws_sqs_queue.judge_dlq.fifo_queue && aws_sqs_queue.judge.visibility_timeout_seconds == 360
    error_message = "the judge queue and its DLQ are FIFO, visibility timeout as given"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.judge.redrive_policy).maxReceiveCount == 5 && !aws_sqs_queue.judge.content_based_deduplication
    error_message = "redrive to the DLQ after max receives; deduplication by the request id the code sets"
  }
  assert {
    condition     = aws_sqs_queue.judge.sqs_managed_sse_enabled && aws_sqs_queue.judge_dlq.sqs_managed_sse_enabled
    error_message = "queues are encrypted at rest"
  }
  assert {
    condition     = aws_s3_bucket_versioning.anchors.versioning_configuration[0].status == "Enabled"
    error_message = "the anchor bucket is versioned"
  }
  assert {
    condition     = aws_s3_bucket.anchors.object_lock_enabled && length(aws_s3_bucket_object_lock_configuration.anchors) == 1
    error_message = "object lock when anchor_object_lock_enabled"
  }
  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.anchors.block_public_acls,
      aws_s3_bucket_public_access_block.anchors.block_public_policy,
      aws_s3_bucket_public_access_block.anchors.ignore_public_acls,
      aws_s3_bucket_public_access_block.anchors.restrict_public_buckets,
    ])
    error_message = "public access is blocked"
  }
  assert {
    condition     = one([for r in aws_s3_bucket_server_side_encryption_configuration.anchors.rule : one(r.apply_server_side_encryption_by_default).sse_algorithm]) == "aws:kms"
    error_message = "the anchor bucket is SSE-KMS"
  }
  assert {
    condition     = jsondecode(aws_s3_bucket_policy.anchors.policy).Statement[0].Effect == "Deny" && jsondecode(aws_s3_bucket_policy.anchors.policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
    error_message = "the bucket policy denies requests without TLS"
  }
  assert {
    condition     = aws_kms_key.signing.key_usage == "SIGN_VERIFY" && local.signing_key_spec == "ECC_NIST_EDWARDS25519"
    error_message = "the signing key is an Ed25519 SIGN_VERIFY key"
  }
  assert {
    condition     = aws_kms_key.envelope.enable_key_rotation && aws_kms_key.envelope.key_usage == "ENCRYPT_DECRYPT"
    error_message = "the envelope key is symmetric with rotation"
  }
  assert {
    condition     = aws_secretsmanager_secret.bootstrap.name == "ledgix/bootstrap"
    error_message = "one bootstrap secret, <name_prefix>/bootstrap"
  }
}

run "visibility_timeout_too_short_is_refused" {
  command = plan

  module {
    source = "./modules/state"
  }

  variables {
    account_id                             = "123456789012"
    partition                              = "aws"
    dynamodb_table_name                    = "ledgix-hot"
    deletion_protection                    = true
    judge_worker_timeout_seconds           = 60
    judge_queue_visibility_timeout_seconds = 120
    judge_queue_max_receive_count          = 5
    anchor_bucket_name                     = null
    anchor_object_lock_enabled             = false
    anchor_object_lock_mode                = "GOVERNANCE"
    anchor_object_lock_days                = 365
    anchor_noncurrent_transition_days      = 30
    kms_deletion_window_days               = 30
    secret_recovery_window_days            = 7
  }

  expect_failures = [aws_sqs_queue.judge]
}

run "functions_module" {
  command = plan

  module {
    source = "./modules/functions"
  }

  variables {
    functions = {
      for name in ["clearance-api", "jwks", "judge-worker", "anchor-export"] : name => {
        function_name   = "ledgix-${name}"
        description     = name
        role_arn        = "arn:aws:iam::123456789012:role/ledgix-${name}-role"
        memory_mb       = 512
        timeout_seconds = name == "judge-worker" ? 60 : 10
        environment     = { VAULT_BACKEND = "aws" }
        in_vpc          = name != "jwks"
        package_path    = "missing/${name}/bootstrap.zip"
        package_hash    = "test"
      }
    }
    subnet_ids                   = ["subnet-1", "subnet-2"]
    security_group_ids           = ["sg-1"]
    enable_xray_tracing          = false
    log_retention_days           = 90
    logs_kms_key_arn             = "arn:aws:kms:us-east-1:123456789012:key/platform"
    judge_queue_arn              = "arn:aws:sqs:us-east-1:123456789012:ledgix-judge.fifo"
    judge_worker_batch_size      = 10
    judge_worker_max_concurrency = null
    anchor_schedule_name         = "ledgix-anchor-export"
    anchor_schedule_expression   = "rate(1 minute)"
    anchor_scheduler_role_arn    = "arn:aws:iam::123456789012:role/ledgix-anchor-scheduler"
    anchor_max_event_age_seconds = 60
  }

  assert {
    condition     = alltrue([for fn in aws_lambda_function.this : fn.runtime == "provided.al2023" && fn.architectures == tolist(["arm64"]) && fn.handler == "bootstrap"])
    error_message = "every function is a provided.al2023 arm64 custom runtime"
  }
  assert {
    condition     = length(aws_lambda_function.this["jwks"].vpc_config) == 0 && length(aws_lambda_function.this["clearance-api"].vpc_config) == 1
    error_message = "only the database-reaching functions run in the VPC"
  }
  assert {
    condition     = alltrue([for group in aws_cloudwatch_log_group.function : group.retention_in_days == 90])
    error_message = "log groups keep log_retention_days"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.judge_worker.batch_size <= 10 && contains(aws_lambda_event_source_mapping.judge_worker.function_response_types, "ReportBatchItemFailures")
    error_message = "the judge worker takes at most 10 messages and reports batch item failures"
  }
  assert {
    condition     = aws_scheduler_schedule.anchor_export.schedule_expression == "rate(1 minute)" && aws_scheduler_schedule.anchor_export.target[0].retry_policy[0].maximum_retry_attempts == 0
    error_message = "anchor-export runs on the schedule; a failed round is redone by the next one"
  }
}

run "api_module" {
  command = plan

  module {
    source = "./modules/api"
  }

  variables {
    clearance_function_name = "ledgix-clearance-api"
    clearance_invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:ledgix-clearance-api/invocations"
    jwks_function_name      = "ledgix-jwks"
    jwks_invoke_arn         = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:ledgix-jwks/invocations"
    integration_timeout_ms  = 30000
    throttling_rate_limit   = 100
    throttling_burst_limit  = 200
    log_retention_days      = 90
    logs_kms_key_arn        = "arn:aws:kms:us-east-1:123456789012:key/platform"
  }

  assert {
    condition     = aws_apigatewayv2_api.this.protocol_type == "HTTP"
    error_message = "an HTTP API"
  }
  assert {
    condition     = aws_apigatewayv2_route.jwks.route_key == "GET /.well-known/jwks.json" && aws_apigatewayv2_route.default.route_key == "$default"
    error_message = "the JWKS route goes to jwks, everything else to clearance-api"
  }
  assert {
    condition     = aws_apigatewayv2_integration.clearance.payload_format_version == "2.0" && aws_apigatewayv2_integration.jwks.payload_format_version == "2.0"
    error_message = "payload format 2.0, the events the functions parse"
  }
  assert {
    condition     = aws_apigatewayv2_route.admin[0].route_key == "ANY /admin/{proxy+}" && aws_apigatewayv2_route.admin[0].authorization_type == "AWS_IAM"
    error_message = "administration routes are AWS_IAM (SigV4) by default"
  }
  assert {
    condition     = aws_apigatewayv2_stage.default.default_route_settings[0].throttling_rate_limit == 100 && aws_apigatewayv2_stage.default.default_route_settings[0].throttling_burst_limit == 200
    error_message = "the stage throttles every route (the AWS stand-in for the per-client-address limit)"
  }
}

run "admin_routes_by_iam" {
  command = plan

  assert {
    condition     = local.function_environment["clearance-api"]["VAULT_ADMIN_AUTH"] == "iam"
    error_message = "clearance-api trusts API Gateway's IAM authorisation for /admin/* by default"
  }
  assert {
    condition     = length(aws_iam_policy.admin_invoke) == 1
    error_message = "an execute-api:Invoke policy for the operators to attach"
  }
  assert {
    condition     = !contains(keys(local.function_environment["clearance-api"]), "VAULT_DB_CA_BUNDLE")
    error_message = "no CA bundle unless db_ca_bundle_path is set"
  }
}

run "admin_routes_by_header" {
  command = plan

  variables {
    admin_auth        = "header"
    db_ca_bundle_path = "/var/task/rds-ca-bundle.pem"
  }

  assert {
    condition     = local.function_environment["clearance-api"]["VAULT_ADMIN_AUTH"] == "header" && length(aws_iam_policy.admin_invoke) == 0 && output.admin_invoke_policy_arn == null
    error_message = "with admin_auth = header there is no IAM route policy"
  }
  assert {
    condition = alltrue([for name in ["clearance-api", "judge-worker", "anchor-export"] :
    local.function_environment[name]["VAULT_DB_CA_BUNDLE"] == "/var/task/rds-ca-bundle.pem"])
    error_message = "every function that opens PostgreSQL connections gets the CA bundle"
  }
  assert {
    condition     = !contains(keys(local.function_environment["jwks"]), "VAULT_DB_CA_BUNDLE")
    error_message = "jwks opens no database connection"
  }
}

run "admin_auth_is_checked" {
  command = plan

  variables {
    admin_auth = "sigv4"
  }

  expect_failures = [var.admin_auth]
}

run "observability_module" {
  command = plan

  module {
    source = "./modules/observability"
  }

  variables {
    alarm_sns_topic_arn           = null
    alarm_email                   = null
    sns_kms_key_arn               = "arn:aws:kms:us-east-1:123456789012:key/platform"
    function_names                = { for name in ["clearance-api", "jwks", "judge-worker", "anchor-export"] : name => "ledgix-${name}" }
    api_id                        = "abc123"
    judge_queue_name              = "ledgix-judge.fifo"
    judge_dlq_name                = "ledgix-judge-dlq.fifo"
    api_5xx_alarm_threshold       = 5
    anchor_lag_alarm_minutes      = 10
    judge_queue_age_alarm_seconds = 720
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.judge_dlq_not_empty.metric_name == "ApproximateNumberOfMessagesVisible" && aws_cloudwatch_metric_alarm.judge_dlq_not_empty.dimensions["QueueName"] == "ledgix-judge-dlq.fifo"
    error_message = "an alarm on the DLQ depth"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.api_5xx.metric_name == "5xx" && length(aws_cloudwatch_metric_alarm.function_throttles) == 4
    error_message = "alarms on 5xx and on throttles of every function"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.anchor_lag.treat_missing_data == "breaching"
    error_message = "no anchor round at all is lag too"
  }
  assert {
    condition     = length(aws_sns_topic.alarms) == 1
    error_message = "a topic for the alarms when none is given"
  }
}

run "with_rds_proxy" {
  command = plan

  variables {
    create_db_proxy          = true
    db_proxy_auth_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ledgix/proxy-AbCdEf"
  }

  assert {
    condition     = length(aws_iam_role.db_proxy) == 1 && length(aws_iam_role_policy.db_proxy) == 1
    error_message = "the proxy gets a role that reads its auth secret"
  }
}
