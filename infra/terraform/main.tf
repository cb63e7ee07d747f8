# Ledgix Vault on AWS: five Lambda functions (an HTTP API, its JWKS, the judge worker, anchor rounds and the webhook
# notifier), with their state (DynamoDB, SQS, S3, KMS, Secrets Manager, Aurora PostgreSQL) in a private VPC; the
# notifier alone runs outside it. README.md has the picture.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Short name (the cargo package under functions/) => deployed function name.
  function_names = {
    "clearance-api" = "${var.name_prefix}-clearance-api"
    "jwks"          = "${var.name_prefix}-jwks"
    "judge-worker"  = "${var.name_prefix}-judge-worker"
    "anchor-export" = "${var.name_prefix}-anchor-export"
    "notifier"      = "${var.name_prefix}-notifier"
  }

  function_descriptions = {
    "clearance-api" = "Ledgix Vault clearance HTTP API (API Gateway HTTP API)"
    "jwks"          = "Ledgix Vault JWKS document (GET /.well-known/jwks.json)"
    "judge-worker"  = "Ledgix Vault judge worker (SQS FIFO)"
    "anchor-export" = "Ledgix Vault anchor rounds (EventBridge Scheduler)"
    "notifier"      = "Ledgix Vault webhook notifications (SQS notify queue)"
  }

  # Functions that reach PostgreSQL run in the private subnets. jwks needs only KMS and DynamoDB. The notifier reads
  # only DynamoDB, SQS and KMS, and posts to the webhook URLs tenants register, on the internet: in the VPC (no NAT,
  # no internet route) it could reach none of them, and outside it there is nothing private for a tenant's URL to
  # reach (the sender refuses private and link-local addresses besides; docs/notifications.md).
  vpc_functions = ["clearance-api", "judge-worker", "anchor-export"]

  function_timeouts = {
    "clearance-api" = var.api_timeout_seconds
    "jwks"          = var.api_timeout_seconds
    "judge-worker"  = var.judge_worker_timeout_seconds
    "anchor-export" = var.anchor_export_timeout_seconds
    "notifier"      = var.notifier_timeout_seconds
  }

  # Deterministic ARNs, so IAM policies do not wait for (or cycle with) the resources they grant access to.
  function_arns = {
    for name, function_name in local.function_names :
    name => "arn:${local.partition}:lambda:${var.aws_region}:${local.account_id}:function:${function_name}"
  }
  function_log_group_arns = {
    for name, function_name in local.function_names :
    name => "arn:${local.partition}:logs:${var.aws_region}:${local.account_id}:log-group:/aws/lambda/${function_name}"
  }
  flow_log_group_arn = "arn:${local.partition}:logs:${var.aws_region}:${local.account_id}:log-group:/aws/vpc/${var.name_prefix}-flow-logs"

  # The interface endpoints of the in-VPC functions: the input's services, and Bedrock Runtime for the bedrock
  # judge (judge-worker calls it from the private subnets like every other AWS API).
  interface_endpoint_services = distinct(concat(var.interface_endpoint_services, var.judge_backend == "bedrock" ? ["bedrock-runtime"] : []))

  # AWS's guidance for SQS event sources: visibility timeout >= 6 x the function timeout.
  judge_queue_visibility_timeout_seconds  = coalesce(var.judge_queue_visibility_timeout_seconds, 6 * var.judge_worker_timeout_seconds)
  notify_queue_visibility_timeout_seconds = 6 * var.notifier_timeout_seconds
  # A healthy notify queue holds retries for up to 900 s (SQS's longest DelaySeconds, the backoff's cap), and a job
  # whose attempt failed on the store reappears after a visibility timeout: the backlog alarm allows both, twice.
  notify_queue_age_alarm_seconds = 900 + 2 * local.notify_queue_visibility_timeout_seconds
}

module "network" {
  source = "./modules/network"

  name_prefix                   = var.name_prefix
  aws_region                    = var.aws_region
  vpc_cidr                      = var.vpc_cidr
  availability_zone_count       = var.availability_zone_count
  interface_endpoint_services   = local.interface_endpoint_services
  existing_database_cidr_blocks = var.create_database ? [] : var.existing_database_cidr_blocks
  judge_egress_cidr_blocks      = contains(["openai", "http"], var.judge_backend) ? var.judge_egress_cidr_blocks : []
  enable_flow_logs              = var.enable_vpc_flow_logs
  flow_logs_role_arn            = aws_iam_role.flow_logs.arn
  log_retention_days            = var.log_retention_days
  logs_kms_key_arn              = module.state.platform_key_arn
}

module "state" {
  source = "./modules/state"

  name_prefix                             = var.name_prefix
  aws_region                              = var.aws_region
  account_id                              = local.account_id
  partition                               = local.partition
  dynamodb_table_name                     = var.dynamodb_table_name
  deletion_protection                     = var.deletion_protection
  judge_worker_timeout_seconds            = var.judge_worker_timeout_seconds
  judge_queue_visibility_timeout_seconds  = local.judge_queue_visibility_timeout_seconds
  judge_queue_max_receive_count           = var.judge_queue_max_receive_count
  notifier_timeout_seconds                = var.notifier_timeout_seconds
  notify_queue_visibility_timeout_seconds = local.notify_queue_visibility_timeout_seconds
  anchor_bucket_name                      = var.anchor_bucket_name
  anchor_object_lock_enabled              = var.anchor_object_lock_enabled
  anchor_object_lock_mode                 = var.anchor_object_lock_mode
  anchor_object_lock_days                 = var.anchor_object_lock_days
  anchor_noncurrent_transition_days       = var.anchor_noncurrent_transition_days
  signing_key_generations                 = var.signing_key_generations
  kms_deletion_window_days                = var.kms_deletion_window_days
  secret_recovery_window_days             = var.secret_recovery_window_days
}

module "database" {
  source = "./modules/database"
  count  = var.create_database ? 1 : 0

  name_prefix              = var.name_prefix
  subnet_ids               = module.network.private_subnet_ids
  security_group_id        = module.network.database_security_group_id
  kms_key_arn              = module.state.platform_key_arn
  engine_version           = var.aurora_engine_version
  min_capacity             = var.aurora_min_capacity
  max_capacity             = var.aurora_max_capacity
  seconds_until_auto_pause = var.aurora_seconds_until_auto_pause
  instance_count           = var.aurora_instance_count
  backup_retention_days    = var.aurora_backup_retention_days
  deletion_protection      = var.deletion_protection
  require_tls              = var.aurora_require_tls
  enable_data_api          = var.enable_data_api
  log_retention_days       = var.log_retention_days
  create_proxy             = var.create_db_proxy
  proxy_role_arn           = try(aws_iam_role.db_proxy[0].arn, null)
  proxy_auth_secret_arn    = var.db_proxy_auth_secret_arn
}

module "functions" {
  source = "./modules/functions"

  functions = {
    for name, function_name in local.function_names : name => {
      function_name        = function_name
      description          = local.function_descriptions[name]
      role_arn             = aws_iam_role.function[name].arn
      memory_mb            = lookup(var.function_memory_mb, name, 512)
      timeout_seconds      = local.function_timeouts[name]
      environment          = local.function_environment[name]
      in_vpc               = contains(local.vpc_functions, name)
      reserved_concurrency = lookup(var.reserved_concurrency, name, null)
      package_path         = "${var.lambda_package_dir}/${name}/bootstrap.zip"
      package_hash         = lookup(var.package_hashes, name, null)
    }
  }

  subnet_ids                   = module.network.private_subnet_ids
  security_group_ids           = [module.network.lambda_security_group_id]
  enable_xray_tracing          = var.enable_xray_tracing
  log_retention_days           = var.log_retention_days
  logs_kms_key_arn             = module.state.platform_key_arn
  judge_queue_arn              = module.state.judge_queue_arn
  judge_worker_batch_size      = var.judge_worker_batch_size
  judge_worker_max_concurrency = var.judge_worker_max_concurrency
  notify_queue_arn             = module.state.notify_queue_arn
  notifier_batch_size          = var.notifier_batch_size
  notifier_max_concurrency     = var.notifier_max_concurrency
  anchor_schedule_name         = "${var.name_prefix}-anchor-export"
  anchor_schedule_expression   = local.anchor_schedule_expression
  anchor_scheduler_role_arn    = aws_iam_role.anchor_scheduler.arn
  anchor_max_event_age_seconds = local.anchor_schedule_seconds

  # Lambda checks the role when it creates a VPC function or an SQS event source mapping: permissions first.
  depends_on = [aws_iam_role_policy.function, aws_iam_role_policy.anchor_scheduler]
}

module "api" {
  source = "./modules/api"

  name_prefix             = var.name_prefix
  clearance_function_name = module.functions.function_names["clearance-api"]
  clearance_invoke_arn    = module.functions.invoke_arns["clearance-api"]
  jwks_function_name      = module.functions.function_names["jwks"]
  jwks_invoke_arn         = module.functions.invoke_arns["jwks"]
  integration_timeout_ms  = 30000
  throttling_rate_limit   = var.api_throttling_rate_limit
  throttling_burst_limit  = var.api_throttling_burst_limit
  admin_iam_auth          = var.admin_auth == "iam"
  log_retention_days      = var.log_retention_days
  logs_kms_key_arn        = module.state.platform_key_arn
}

module "observability" {
  source = "./modules/observability"

  name_prefix                    = var.name_prefix
  aws_region                     = var.aws_region
  alarm_sns_topic_arn            = var.alarm_sns_topic_arn
  alarm_email                    = var.alarm_email
  sns_kms_key_arn                = module.state.platform_key_arn
  function_names                 = module.functions.function_names
  api_id                         = module.api.api_id
  judge_queue_name               = module.state.judge_queue_name
  judge_dlq_name                 = module.state.judge_dlq_name
  api_5xx_alarm_threshold        = var.api_5xx_alarm_threshold
  anchor_interval_seconds        = var.anchor_interval_seconds
  anchor_schedule_seconds        = local.anchor_schedule_seconds
  anchor_stalled_alarm_minutes   = var.anchor_stalled_alarm_minutes
  judge_queue_age_alarm_seconds  = local.judge_queue_visibility_timeout_seconds * 2
  notify_queue_name              = module.state.notify_queue_name
  notify_dlq_name                = module.state.notify_dlq_name
  notify_queue_age_alarm_seconds = local.notify_queue_age_alarm_seconds
}
