# One role per function, holding only what that function's code calls (function_permissions; the judge's Bedrock
# models only when judge_backend = "bedrock") plus what AWS itself needs the role for (platform_permissions, each
# with its reason). tests/deploy/test_least_privilege.py runs every function binary against the AWS emulator,
# records the API operations each one calls (and the models judge-worker names), and checks that
# function_permissions grants exactly those actions on those models: nothing missing, nothing extra, in each
# signing_mode. Keep both maps literal so the test can read them. A statement with `signing_modes` is granted only
# in those modes (signing.tf): with delegated keys, tokens and receipts are signed in memory and only anchor-export
# calls kms:Sign.

locals {
  bootstrap_secret_arn = module.state.bootstrap_secret_arn
  # Tenant database secrets are created by the code (admin API: POST /admin/tenants) under this prefix.
  tenant_secrets_arn = "arn:${local.partition}:secretsmanager:${var.aws_region}:${local.account_id}:secret:${module.state.tenant_secret_prefix}/*"
  signing_key_arn    = module.state.signing_key_arn # the active root only: earlier generations are granted nothing
  envelope_key_arn   = module.state.envelope_key_arn
  platform_key_arn   = module.state.platform_key_arn
  hot_table_arn      = module.state.dynamodb_table_arn
  judge_queue_arn    = module.state.judge_queue_arn
  notify_queue_arn   = module.state.notify_queue_arn
  anchor_bucket_arn  = module.state.anchor_bucket_arn
  anchor_objects_arn = "${module.state.anchor_bucket_arn}/${var.anchor_prefix}/*"

  # The Bedrock models of the bedrock judge (judge.tf, local.bedrock_models; all empty with another backend). The
  # calls name these resources: a foundation model id is its ARN in this region, an inference-profile id the
  # profile's ARN in this region (the profile is called where judge-worker runs).
  judge_model_arns = [
    for id, model in local.bedrock_models : model.profile
    ? "arn:${local.partition}:bedrock:${var.aws_region}:${local.account_id}:inference-profile/${id}"
    : "arn:${local.partition}:bedrock:${var.aws_region}::foundation-model/${model.foundation_model}"
  ]
  judge_profile_arns = [
    for id, model in local.bedrock_models :
    "arn:${local.partition}:bedrock:${var.aws_region}:${local.account_id}:inference-profile/${id}" if model.profile
  ]
  # A profile passes each call on to the foundation model behind it in one of the regions it routes to, and
  # Bedrock authorises that invocation against this role too, with the destination region in the ARN. Which
  # regions a profile routes to is AWS's to change (and a global profile's model ARN has no region at all), so
  # only here the region is `*`; the condition on InferenceProfileArn keeps these grants to calls arriving
  # through the profiles above: the role still cannot call the model directly in another region.
  judge_routed_model_arns = distinct([
    for id, model in local.bedrock_models :
    "arn:${local.partition}:bedrock:*::foundation-model/${model.foundation_model}" if model.profile
  ])

  # Trust policies: each role may be assumed only by its AWS service, on behalf of this account.
  assume_role_policy = {
    for service in ["lambda", "scheduler", "vpc-flow-logs", "rds"] : service => jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Effect    = "Allow"
        Principal = { Service = "${service}.amazonaws.com" }
        Action    = "sts:AssumeRole"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      }]
    })
  }

  # What each function's code calls (shared/aws/src: bootstrap.rs, tenants.rs, kms.rs, dynamo.rs, sqs.rs, s3.rs,
  # notifications.rs, notify_queue.rs). Every function that commits decisions dispatches their notifications
  # (docs/notifications.md): it reads the tenant's notification settings (GetItem, sealed under the envelope key),
  # records a delivery per subscribed webhook in the delivery log (conditional PutItem, sealed; GetItem when it is
  # there already) and queues a job naming it on the notify queue (SendMessage).
  function_permissions = {
    "clearance-api" = [
      { sid = "BootstrapSettings", actions = ["secretsmanager:GetSecretValue"], resources = [local.bootstrap_secret_arn] },
      {
        sid       = "TenantDatabaseSecrets" # read per tenant (cached); created by POST /admin/tenants (PutSecretValue when it already exists)
        actions   = ["secretsmanager:CreateSecret", "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"]
        resources = [local.tenant_secrets_arn]
      },
      { sid = "SignTokensAndReceipts", signing_modes = ["direct"], actions = ["kms:GetPublicKey", "kms:Sign"], resources = [local.signing_key_arn] },
      { sid = "RootPublicKey", signing_modes = ["delegated"], actions = ["kms:GetPublicKey"], resources = [local.signing_key_arn] }, # cold start: the root that certifies the delegated keys
      { sid = "LedgerPayloadDataKeys", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resources = [local.envelope_key_arn] },     # Decrypt also opens each period's delegated key
      {
        sid       = "HotState" # burned token ids with their consume answer (one transaction), clearance status and idempotent answer copies, rate-limit buckets, usage counters (GET /usage), the signing-key registry (Query), notification settings (PUT /notification-settings) and the delivery log (dispatch; GET /notification-deliveries: Query)
        actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:TransactWriteItems", "dynamodb:UpdateItem"]
        resources = [local.hot_table_arn]
      },
      { sid = "QueueJudgeWork", actions = ["sqs:SendMessage"], resources = [local.judge_queue_arn] },
      { sid = "QueueNotifications", actions = ["sqs:SendMessage"], resources = [local.notify_queue_arn] }, # review.pending, review.decided, clearance.denied
    ]

    "jwks" = [
      { sid = "BootstrapSettings", actions = ["secretsmanager:GetSecretValue"], resources = [local.bootstrap_secret_arn] },
      { sid = "PublishPublicKey", actions = ["kms:GetPublicKey"], resources = [local.signing_key_arn] },
      { sid = "SigningKeyRegistry", actions = ["dynamodb:Query"], resources = [local.hot_table_arn] }, # every root and delegated key a verifier may need
    ]

    "judge-worker" = [
      { sid = "BootstrapSettings", actions = ["secretsmanager:GetSecretValue"], resources = [local.bootstrap_secret_arn] },
      { sid = "TenantDatabaseSecrets", actions = ["secretsmanager:GetSecretValue"], resources = [local.tenant_secrets_arn] },
      { sid = "SignTokensAndReceipts", signing_modes = ["direct"], actions = ["kms:GetPublicKey", "kms:Sign"], resources = [local.signing_key_arn] },
      { sid = "RootPublicKey", signing_modes = ["delegated"], actions = ["kms:GetPublicKey"], resources = [local.signing_key_arn] }, # cold start: the root that certifies the delegated keys
      { sid = "LedgerPayloadDataKeys", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resources = [local.envelope_key_arn] },     # Decrypt also opens each period's delegated key
      {
        sid       = "HotState" # clearance status copies (UpdateItem: mark before a decision commits, copy it after); the notifications of a verdict that denies or asks for review (settings, delivery log); delegated, GetItem also reads the current period's key by kid
        actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
        resources = [local.hot_table_arn]
      },
      { sid = "QueueNotifications", actions = ["sqs:SendMessage"], resources = [local.notify_queue_arn] }, # review.pending, clearance.denied
      {
        sid       = "JudgeModels" # bedrock judge (shared/judges): Converse with judge_model, InvokeModel with embedding_model; both are authorised by bedrock:InvokeModel
        actions   = ["bedrock:InvokeModel"]
        resources = local.judge_model_arns
      },
      {
        sid       = "JudgeModelsThroughProfiles" # the foundation models behind inference-profile ids, only through those profiles
        actions   = ["bedrock:InvokeModel"]
        resources = local.judge_routed_model_arns
        condition = { test = "ArnEquals", variable = "bedrock:InferenceProfileArn", values = local.judge_profile_arns }
      },
    ]

    "anchor-export" = [
      { sid = "BootstrapSettings", actions = ["secretsmanager:GetSecretValue"], resources = [local.bootstrap_secret_arn] },
      { sid = "TenantDatabaseSecrets", actions = ["secretsmanager:GetSecretValue"], resources = [local.tenant_secrets_arn] },
      { sid = "SignCheckpoints", actions = ["kms:GetPublicKey", "kms:Sign"], resources = [local.signing_key_arn] }, # and, delegated, the key certificates
      {
        sid       = "EnvelopeDataKeys" # Decrypt: notification settings, and the payloads the anchor lag reads (it never writes one); GenerateDataKey: seals delivery log entries and, delegated, the keys it issues
        actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
        resources = [local.envelope_key_arn]
      },
      {
        sid       = "HotState" # the key step of every anchor round: list the roots, record the root (conditional PutItem), retire rotated-out roots, insert issued delegated keys (delegated, GetItem: whether each due period's key is issued yet, by kid); the notifications of reviews it expires and of outbox entries a crash left behind (settings, delivery log)
        actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]
        resources = [local.hot_table_arn]
      },
      { sid = "QueueNotifications", actions = ["sqs:SendMessage"], resources = [local.notify_queue_arn] }, # review.expired, re-dispatched outbox entries
      {
        sid       = "RefuseAnUnsafeBucket" # start-up checks (VAULT_LEDGER_REQUIRE_BUCKET_VERSIONING / _OBJECT_LOCK)
        actions   = ["s3:GetBucketObjectLockConfiguration", "s3:GetBucketVersioning"]
        resources = [local.anchor_bucket_arn]
      },
      { sid = "ExportCheckpointsAndTiles", actions = ["s3:PutObject"], resources = [local.anchor_objects_arn] },
    ]

    # One webhook attempt or email per job (shared/core/src/notify/notifier.rs). No bootstrap secret, no tenant
    # secret, no signing key: it builds no vault.
    "notifier" = [
      {
        sid       = "DeliveryLog" # the job's delivery and the tenant's settings (GetItem), the attempt recorded (PutItem, conditional on the attempts it read)
        actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
        resources = [local.hot_table_arn]
      },
      { sid = "SealedDeliveries", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resources = [local.envelope_key_arn] }, # opens the settings (webhook secrets) and the delivery, seals it again
      { sid = "RescheduleDeliveries", actions = ["sqs:SendMessage"], resources = [local.notify_queue_arn] },                # a failed webhook's job again, its backoff as DelaySeconds
      { sid = "SendEmail", actions = ["ses:SendEmail"], resources = local.email_identity_arns },                            # tenants' emails, from the identities of email_identities (email.tf); none: dropped
    ]
  }

  # The statements each role gets: those of the signing mode, without a statement left without resources (the
  # Bedrock models with another judge backend, the profile statement without inference profiles).
  function_statements = {
    for name, statements in local.function_permissions : name => [
      for s in statements : s if length(s.resources) > 0 && contains(try(s.signing_modes, ["direct", "delegated"]), var.signing_mode)
    ]
  }

  # What AWS needs the role to hold on the function's behalf; not calls the code makes.
  platform_permissions = {
    for name in keys(local.function_names) : name => concat(
      [
        {
          sid       = "FunctionLogs"
          reason    = "Lambda writes the function's output to its log group (created by Terraform)"
          actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
          resources = ["${local.function_log_group_arns[name]}:*"]
          via       = null
        },
      ],
      # The functions told to read the bootstrap secret (AWS_SECRET_NAME): all but the notifier.
      contains(keys(local.function_environment[name]), "AWS_SECRET_NAME") ? [
        {
          sid       = "DecryptBootstrapSecret"
          reason    = "The bootstrap secret is encrypted with the platform key; Secrets Manager decrypts it as the caller"
          actions   = ["kms:Decrypt"]
          resources = [local.platform_key_arn]
          via       = "secretsmanager"
        },
      ] : [],
      # Every function reads the hot table now: the signing-key registry and the notifications are in it.
      contains(["clearance-api", "jwks", "judge-worker", "anchor-export", "notifier"], name) ? [
        {
          sid       = "HotTableKey"
          reason    = "The DynamoDB table is encrypted with the platform key; DynamoDB uses it as the caller"
          actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
          resources = [local.platform_key_arn]
          via       = "dynamodb"
        },
      ] : [],
      name == "judge-worker" ? [
        {
          sid       = "JudgeQueueEventSource"
          reason    = "The SQS event source mapping polls and deletes messages with the function's role"
          actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
          resources = [local.judge_queue_arn]
          via       = null
        },
      ] : [],
      name == "notifier" ? [
        {
          sid       = "NotifyQueueEventSource"
          reason    = "The SQS event source mapping polls and deletes messages with the function's role"
          actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
          resources = [local.notify_queue_arn]
          via       = null
        },
      ] : [],
      name == "anchor-export" ? [
        {
          sid       = "AnchorBucketKey"
          reason    = "The anchor bucket is SSE-KMS with the platform key; S3 generates object keys as the caller"
          actions   = ["kms:GenerateDataKey"]
          resources = [local.platform_key_arn]
          via       = "s3"
        },
      ] : [],
      contains(local.vpc_functions, name) ? [
        {
          sid       = "VpcNetworkInterfaces"
          reason    = "Lambda manages the function's network interfaces in the private subnets; EC2 has no resource-level scoping for these"
          actions   = ["ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:UnassignPrivateIpAddresses"]
          resources = ["*"]
          via       = null
        },
      ] : [],
      var.enable_xray_tracing ? [
        {
          sid       = "XRayTraces"
          reason    = "Active tracing: Lambda sends trace segments with the function's role; X-Ray has no resource-level scoping"
          actions   = ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
          resources = ["*"]
          via       = null
        },
      ] : [],
    )
  }
}

resource "aws_iam_role" "function" {
  for_each = local.function_names

  name               = "${each.value}-role"
  description        = "Ledgix Vault ${each.key}: only what its code calls"
  assume_role_policy = local.assume_role_policy["lambda"]
}

data "aws_iam_policy_document" "function" {
  for_each = local.function_names

  dynamic "statement" {
    for_each = local.function_statements[each.key]
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources

      dynamic "condition" {
        for_each = try(statement.value.condition, null) == null ? [] : [statement.value.condition]
        content {
          test     = condition.value.test
          variable = condition.value.variable
          values   = condition.value.values
        }
      }
    }
  }

  dynamic "statement" {
    for_each = local.platform_permissions[each.key]
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources

      dynamic "condition" {
        for_each = statement.value.via == null ? [] : [statement.value.via]
        content {
          test     = "StringEquals"
          variable = "kms:ViaService"
          values   = ["${condition.value}.${var.aws_region}.amazonaws.com"]
        }
      }
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.function_names

  name   = "least-privilege"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json
}

# ---------------------------------------------------------------------------------------------------------------
# Service roles: EventBridge Scheduler (anchor-export), VPC flow logs, RDS Proxy
# ---------------------------------------------------------------------------------------------------------------

resource "aws_iam_role" "anchor_scheduler" {
  name               = "${var.name_prefix}-anchor-scheduler"
  description        = "EventBridge Scheduler invokes anchor-export"
  assume_role_policy = local.assume_role_policy["scheduler"]
}

resource "aws_iam_role_policy" "anchor_scheduler" {
  name = "invoke-anchor-export"
  role = aws_iam_role.anchor_scheduler.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "InvokeAnchorExport"
      Effect   = "Allow"
      Action   = "lambda:InvokeFunction"
      Resource = [local.function_arns["anchor-export"], "${local.function_arns["anchor-export"]}:*"]
    }]
  })
}

resource "aws_iam_role" "flow_logs" {
  name               = "${var.name_prefix}-vpc-flow-logs"
  description        = "VPC flow logs deliver to their log group"
  assume_role_policy = local.assume_role_policy["vpc-flow-logs"]
}

resource "aws_iam_role_policy" "flow_logs" {
  name = "deliver-flow-logs"
  role = aws_iam_role.flow_logs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "DeliverFlowLogs"
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:DescribeLogGroups", "logs:DescribeLogStreams", "logs:PutLogEvents"]
      Resource = [local.flow_log_group_arn, "${local.flow_log_group_arn}:*"]
    }]
  })
}

resource "aws_iam_role" "db_proxy" {
  count = var.create_database && var.create_db_proxy ? 1 : 0

  name               = "${var.name_prefix}-db-proxy"
  description        = "RDS Proxy reads the control-plane role's credentials"
  assume_role_policy = local.assume_role_policy["rds"]
}

resource "aws_iam_role_policy" "db_proxy" {
  count = var.create_database && var.create_db_proxy ? 1 : 0

  name = "read-proxy-auth-secret"
  role = aws_iam_role.db_proxy[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ReadProxyAuthSecret"
        Effect   = "Allow"
        Action   = "secretsmanager:GetSecretValue"
        Resource = var.db_proxy_auth_secret_arn
      },
      {
        Sid       = "DecryptProxyAuthSecret"
        Effect    = "Allow"
        Action    = "kms:Decrypt"
        Resource  = "*"
        Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${var.aws_region}.amazonaws.com" } }
      },
    ]
  })
}

# Operators (admin_auth = "iam"): attach this policy to the IAM roles or users that may call /admin/*. API
# Gateway admits a SigV4-signed request to the AWS_IAM route only if the caller holds execute-api:Invoke on it,
# and the vault then trusts API Gateway's verdict. Nothing is attached here: who operates is the account's choice.
resource "aws_iam_policy" "admin_invoke" {
  count       = var.admin_auth == "iam" ? 1 : 0
  name        = "${var.name_prefix}-admin-invoke"
  description = "Call the Ledgix Vault administration routes (/admin/*) with SigV4."
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "InvokeAdminRoutes"
      Effect   = "Allow"
      Action   = "execute-api:Invoke"
      Resource = module.api.admin_execute_arn
    }]
  })
}
