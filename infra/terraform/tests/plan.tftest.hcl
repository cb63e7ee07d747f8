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
    "notifier"      = "test"
  }
}

run "functions" {
  command = plan

  assert {
    condition     = length(module.functions.function_names) == 5
    error_message = "five functions: clearance-api, jwks, judge-worker, anchor-export, notifier"
  }
  assert {
    condition = alltrue([for name in ["clearance-api", "jwks", "judge-worker", "anchor-export", "notifier"] :
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
    condition     = local.function_environment["clearance-api"]["VAULT_SIGNER_BACKEND"] == "aws_kms" && local.function_environment["jwks"]["VAULT_BACKEND"] == "aws"
    error_message = "every function signs with KMS on the AWS backend"
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

# ---------------------------------------------------------------------------------------------------------------
# Notifications: the notifier outside the VPC, its queue and DLQ, its event source, its environment and grants.
# ---------------------------------------------------------------------------------------------------------------

run "notifier" {
  command = plan

  # A distinct ARN per queue (the mock gives every queue the same one), so the grants below can tell them apart.
  override_resource {
    target          = module.state.aws_sqs_queue.judge
    override_during = plan
    values          = { arn = "arn:aws:sqs:us-east-1:123456789012:ledgix-judge.fifo", url = "https://sqs.us-east-1.amazonaws.com/123456789012/ledgix-judge.fifo" }
  }
  override_resource {
    target          = module.state.aws_sqs_queue.notify
    override_during = plan
    values          = { arn = "arn:aws:sqs:us-east-1:123456789012:ledgix-notify", url = "https://sqs.us-east-1.amazonaws.com/123456789012/ledgix-notify" }
  }
  override_resource {
    target          = module.state.aws_kms_key.envelope
    override_during = plan
    values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/envelope" }
  }
  override_resource {
    target          = module.state.aws_kms_key.platform
    override_during = plan
    values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/platform" }
  }

  assert {
    condition     = !contains(local.vpc_functions, "notifier") && length([for s in local.platform_permissions["notifier"] : s if s.sid == "VpcNetworkInterfaces"]) == 0
    error_message = "the notifier runs outside the VPC: its webhooks are on the internet, and the VPC has no NAT"
  }
  assert {
    condition     = local.function_timeouts["notifier"] == 30 && local.notify_queue_visibility_timeout_seconds == 180
    error_message = "a 30 s notifier by default; the notify queue's visibility timeout is 6 x that"
  }
  assert {
    condition = (toset(keys(local.function_environment["notifier"])) == toset(["VAULT_DYNAMODB_TABLE", "VAULT_NOTIFY_SQS_QUEUE_URL", "VAULT_ENVELOPE_KMS_KEY_ID", "RUST_LOG"])
      && local.function_environment["notifier"]["VAULT_NOTIFY_SQS_QUEUE_URL"] == "https://sqs.us-east-1.amazonaws.com/123456789012/ledgix-notify"
      && local.function_environment["notifier"]["VAULT_DYNAMODB_TABLE"] == module.state.dynamodb_table_name
    && local.function_environment["notifier"]["VAULT_ENVELOPE_KMS_KEY_ID"] == "arn:aws:kms:us-east-1:123456789012:key/envelope")
    error_message = "the notifier gets only what notifier_from_env reads: the hot table, the notify queue, the envelope key (and RUST_LOG)"
  }
  assert {
    condition = alltrue([for key in ["DATABASE_URL", "AWS_SECRET_NAME", "TENANT_SECRET_PREFIX", "VAULT_KMS_KEY_ID", "VAULT_SIGNER_BACKEND"] :
    !contains(keys(local.function_environment["notifier"]), key)])
    error_message = "the notifier opens no database, reads no bootstrap secret and builds no signer"
  }
  assert {
    condition = (alltrue([for name in ["clearance-api", "judge-worker", "anchor-export"] :
      local.function_environment[name]["VAULT_NOTIFY_SQS_QUEUE_URL"] == "https://sqs.us-east-1.amazonaws.com/123456789012/ledgix-notify"])
    && !contains(keys(local.function_environment["jwks"]), "VAULT_NOTIFY_SQS_QUEUE_URL"))
    error_message = "every function that commits decisions dispatches their notifications to the notify queue; jwks notifies nobody"
  }
  assert {
    condition     = alltrue([for name, env in local.function_environment : !contains(keys(env), "VAULT_ALLOW_PRIVATE_WEBHOOK_URLS")])
    error_message = "the development flag that lets webhooks reach loopback addresses is never set on AWS"
  }
  assert {
    condition = (toset(flatten([for s in local.function_statements["notifier"] : s.actions])) == toset(["dynamodb:GetItem", "dynamodb:PutItem", "kms:Decrypt", "kms:GenerateDataKey", "sqs:SendMessage"])
      && toset(flatten([for s in local.function_statements["notifier"] : s.resources])) == toset([module.state.dynamodb_table_arn, "arn:aws:kms:us-east-1:123456789012:key/envelope", "arn:aws:sqs:us-east-1:123456789012:ledgix-notify"])
    && !anytrue([for s in local.platform_permissions["notifier"] : s.sid == "DecryptBootstrapSecret"]))
    error_message = "the notifier may read and record deliveries, open and seal them with the envelope key, and re-queue a retry: no secret, no signing key"
  }
  assert {
    condition = (toset(one([for s in local.platform_permissions["notifier"] : s if s.sid == "NotifyQueueEventSource"]).resources) == toset(["arn:aws:sqs:us-east-1:123456789012:ledgix-notify"])
    && alltrue([for name in ["clearance-api", "jwks", "judge-worker", "anchor-export"] : length([for s in local.platform_permissions[name] : s if s.sid == "DecryptBootstrapSecret"]) == 1]))
    error_message = "the notify queue's event source polls with the notifier's role; every other function reads the bootstrap secret"
  }
  assert {
    condition = (alltrue([for name in ["clearance-api", "judge-worker", "anchor-export", "notifier"] :
      contains(flatten([for s in local.function_statements[name] : s.actions if contains(s.resources, "arn:aws:sqs:us-east-1:123456789012:ledgix-notify")]), "sqs:SendMessage")])
      && !contains(flatten([for s in local.function_statements["jwks"] : s.resources]), "arn:aws:sqs:us-east-1:123456789012:ledgix-notify")
    && toset(flatten([for s in local.function_statements["notifier"] : s.resources if contains(s.actions, "sqs:SendMessage")])) == toset(["arn:aws:sqs:us-east-1:123456789012:ledgix-notify"]))
    error_message = "the dispatchers and the notifier send to the notify queue, and the notifier to nothing else"
  }
  assert {
    condition = alltrue([for name in ["judge-worker", "anchor-export"] :
    length(setsubtract(["dynamodb:GetItem", "dynamodb:PutItem"], flatten([for s in local.function_statements[name] : s.actions if contains(s.resources, local.hot_table_arn)]))) == 0])
    error_message = "judge-worker and anchor-export read the settings and record deliveries in any signing mode"
  }
  assert {
    condition     = contains(module.observability.alarm_names, "ledgix-notify-dlq-not-empty") && contains(module.observability.alarm_names, "ledgix-notify-queue-backlog")
    error_message = "alarms on the notify DLQ and on the notify queue's backlog"
  }
  assert {
    condition     = local.notify_queue_age_alarm_seconds == 900 + 2 * 180
    error_message = "the backlog alarm allows the longest retry delay (900 s) and two visibility timeouts"
  }
  assert {
    condition     = output.notify_queue_url == "https://sqs.us-east-1.amazonaws.com/123456789012/ledgix-notify" && output.notify_dlq_url != null
    error_message = "the notify queue and its DLQ are outputs"
  }
}

run "notifier_timeout_is_checked" {
  command = plan

  variables {
    notifier_timeout_seconds = 5
  }

  expect_failures = [var.notifier_timeout_seconds]
}

run "notifier_batch_size_is_capped" {
  command = plan

  variables {
    notifier_batch_size = 11
  }

  expect_failures = [var.notifier_batch_size]
}

run "notifier_max_concurrency_is_checked" {
  command = plan

  variables {
    notifier_max_concurrency = 1
  }

  expect_failures = [var.notifier_max_concurrency]
}

# ---------------------------------------------------------------------------------------------------------------
# Email (email.tf): one SES identity per entry, the senders on the functions that build and send notifications, and
# the notifier's ses:SendEmail on exactly those identities.
# ---------------------------------------------------------------------------------------------------------------

run "email_off_by_default" {
  command = plan

  assert {
    condition     = length(aws_sesv2_email_identity.sender) == 0 && output.email_dkim_records == {}
    error_message = "no email_identities: no SES identity, no DKIM records"
  }
  assert {
    condition     = alltrue([for name, env in local.function_environment : !contains(keys(env), "VAULT_EMAIL_FROM_IDENTITIES")])
    error_message = "VAULT_EMAIL_FROM_IDENTITIES is set only with email_identities, like VAULT_PUBLIC_URL with public_url"
  }
  assert {
    condition     = !anytrue([for name, statements in local.function_statements : anytrue([for s in statements : anytrue([for a in s.actions : startswith(a, "ses:")])])])
    error_message = "without identities no function may send email (the SendEmail statement without resources is dropped)"
  }
}

run "email_identities" {
  command = plan

  variables {
    email_identities = ["alerts.example.com", "vault@example.org"]
  }

  assert {
    condition = (toset(keys(aws_sesv2_email_identity.sender)) == toset(["alerts.example.com", "vault@example.org"])
    && alltrue([for key, identity in aws_sesv2_email_identity.sender : identity.email_identity == key]))
    error_message = "one SES identity per entry of email_identities"
  }
  assert {
    condition = alltrue([for name, env in local.function_environment :
      try(env["VAULT_EMAIL_FROM_IDENTITIES"], null) == (name == "jwks" ? null : "alerts.example.com,vault@example.org")
    ])
    error_message = "VAULT_EMAIL_FROM_IDENTITIES (the entries, comma-separated) on clearance-api, judge-worker, anchor-export and the notifier; jwks notifies nobody"
  }
  assert {
    condition = (one([for s in local.function_statements["notifier"] : s if contains(s.actions, "ses:SendEmail")]).actions == ["ses:SendEmail"]
      && toset(flatten([for s in local.function_statements["notifier"] : s.resources if contains(s.actions, "ses:SendEmail")])) == toset([
        "arn:aws:ses:us-east-1:123456789012:identity/alerts.example.com",
        "arn:aws:ses:us-east-1:123456789012:identity/vault@example.org",
    ]))
    error_message = "the notifier may ses:SendEmail from exactly the identities of email_identities"
  }
  assert {
    condition = alltrue([for name, statements in local.function_statements :
    name == "notifier" || !anytrue([for s in statements : anytrue([for a in s.actions : startswith(a, "ses:")])])])
    error_message = "only the notifier sends email"
  }
  assert {
    # The tokens themselves are known after apply (the provider reads the block back; a mock cannot fill it).
    condition     = keys(output.email_dkim_records) == ["alerts.example.com"]
    error_message = "each domain identity has its DKIM records in the output; an address identity has none"
  }
}

run "email_identities_are_checked" {
  command = plan

  variables {
    email_identities = ["Alerts@Example.com"]
  }

  expect_failures = [var.email_identities]
}

run "email_identities_are_plain" {
  command = plan

  variables {
    email_identities = ["Ledgix <alerts@example.com>"]
  }

  expect_failures = [var.email_identities]
}

run "email_identities_are_distinct" {
  command = plan

  variables {
    email_identities = ["example.com", "example.com"]
  }

  expect_failures = [var.email_identities]
}

# ---------------------------------------------------------------------------------------------------------------
# The anchor cadence (anchor.tf): Scheduler's minute granularity, rounds per invocation, the timeout, the alarms.
# ---------------------------------------------------------------------------------------------------------------

run "anchor_every_30_seconds_by_default" {
  command = plan

  assert {
    condition     = var.anchor_interval_seconds == 30 && local.anchor_schedule_expression == "rate(1 minute)" && local.anchor_rounds_per_invocation == 2
    error_message = "a 30 s interval by default: Scheduler invokes anchor-export every minute (its minimum) for two rounds"
  }
  assert {
    condition = alltrue([for name in ["clearance-api", "judge-worker", "anchor-export"] :
    local.function_environment[name]["VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS"] == "30"])
    error_message = "every function that builds the ledger promises the 30 s interval (mmd_seconds)"
  }
  assert {
    condition = (local.function_environment["anchor-export"]["VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS"] == "60"
    && local.function_environment["anchor-export"]["VAULT_LEDGER_ANCHOR_CONCURRENCY"] == "8")
    error_message = "anchor-export is told it is invoked every 60 s (so it runs 60 / 30 rounds) and seals 8 tenants at once"
  }
  assert {
    condition = alltrue(flatten([for name in ["clearance-api", "jwks", "judge-worker"] : [for key in ["VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS", "VAULT_LEDGER_ANCHOR_CONCURRENCY"] :
    !contains(keys(local.function_environment[name]), key)]]))
    error_message = "only anchor-export runs anchor rounds"
  }
  assert {
    condition     = local.anchor_invocation_seconds == 30 + 15 + 60 && local.anchor_invocation_seconds <= var.anchor_export_timeout_seconds
    error_message = "the second round starts 30 s in and seals for up to 15 s: with the reserve, well inside the 300 s timeout"
  }
  assert {
    condition     = contains(module.observability.alarm_names, "ledgix-anchor-lag") && contains(module.observability.alarm_names, "ledgix-anchor-stalled")
    error_message = "both anchor alarms: lag (rounds do not keep up) and stalled (no successful invocation)"
  }
}

run "anchor_every_5_minutes" {
  command = plan

  variables {
    anchor_interval_seconds      = 300
    anchor_stalled_alarm_minutes = 15
  }

  assert {
    condition     = local.anchor_schedule_expression == "rate(5 minutes)" && local.anchor_rounds_per_invocation == 1
    error_message = "an interval of whole minutes is the schedule itself, one round per invocation"
  }
  assert {
    condition = (local.function_environment["anchor-export"]["VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS"] == "300"
    && local.function_environment["anchor-export"]["VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS"] == "300")
    error_message = "schedule and interval are both 300 s"
  }
  assert {
    condition     = local.anchor_invocation_seconds == 120 + 60
    error_message = "one round sealing for at most 120 s (not half of 300 s) plus the reserve"
  }
}

run "anchor_every_minute" {
  command = plan

  variables {
    anchor_interval_seconds = 60
    anchor_concurrency      = 16
  }

  assert {
    condition     = local.anchor_schedule_expression == "rate(1 minute)" && local.anchor_rounds_per_invocation == 1
    error_message = "a 60 s interval: one round per minute"
  }
  assert {
    condition     = local.function_environment["anchor-export"]["VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS"] == "60" && local.function_environment["anchor-export"]["VAULT_LEDGER_ANCHOR_CONCURRENCY"] == "16"
    error_message = "anchor_concurrency reaches anchor-export"
  }
}

run "anchor_interval_must_divide_the_minute" {
  command = plan

  variables {
    anchor_interval_seconds = 45
  }

  expect_failures = [var.anchor_interval_seconds]
}

run "anchor_interval_above_a_minute_is_whole_minutes" {
  command = plan

  variables {
    anchor_interval_seconds = 90
  }

  expect_failures = [var.anchor_interval_seconds]
}

run "anchor_interval_at_least_30_seconds" {
  command = plan

  variables {
    anchor_interval_seconds = 15
  }

  expect_failures = [var.anchor_interval_seconds]
}

run "anchor_rounds_must_fit_the_timeout" {
  command = plan

  variables {
    anchor_export_timeout_seconds = 90 # the second round starts at 30 s, seals up to 15 s, + 60 s reserve = 105 s
  }

  expect_failures = [terraform_data.anchor]
}

run "anchor_stalled_alarm_spans_two_invocations" {
  command = plan

  variables {
    anchor_interval_seconds = 600 # invoked every 10 minutes: a 15-minute window can hold none
  }

  expect_failures = [terraform_data.anchor]
}

run "iam" {
  command = plan

  assert {
    condition     = length(aws_iam_role.function) == 5
    error_message = "one role per function"
  }
  assert {
    condition     = alltrue([for s in local.function_permissions["jwks"] : alltrue([for a in s.actions : contains(["secretsmanager:GetSecretValue", "kms:GetPublicKey", "dynamodb:Query"], a)])])
    error_message = "jwks may only read its settings and the root's public key, and list the key registry"
  }
  assert {
    condition     = alltrue(flatten([for name in ["clearance-api", "judge-worker", "jwks", "notifier"] : [for s in local.function_permissions[name] : [for a in s.actions : !startswith(a, "s3:")]]]))
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
  assert {
    condition     = alltrue([for s in local.function_permissions["notifier"] : alltrue([for a in s.actions : contains(["dynamodb:GetItem", "dynamodb:PutItem", "kms:Decrypt", "kms:GenerateDataKey", "sqs:SendMessage", "ses:SendEmail"], a)])])
    error_message = "the notifier may only read and record deliveries, use the envelope key, re-queue a job and send email"
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Signing (signing.tf): who signs tokens and receipts, the delegated keys' calendar, root key generations.
# function_statements is what each role's policy document is built from (the document itself is mocked here).
# ---------------------------------------------------------------------------------------------------------------

run "signing_direct_by_default" {
  command = plan

  # Distinct key ARNs (the mock gives every key the same one), so the assertions below can tell them apart.
  override_resource {
    target          = module.state.aws_kms_key.signing
    override_during = plan
    values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/signing" }
  }
  override_resource {
    target          = module.state.aws_kms_key.envelope
    override_during = plan
    values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/envelope" }
  }
  override_resource {
    target          = module.state.aws_kms_key.platform
    override_during = plan
    values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/platform" }
  }

  assert {
    condition     = var.signing_mode == "direct" && alltrue([for name, env in local.function_environment : env["VAULT_SIGNER_BACKEND"] == "aws_kms" if name != "notifier"])
    error_message = "by default the KMS root signs everything: VAULT_SIGNER_BACKEND=aws_kms on every function (but the notifier, which signs nothing)"
  }
  assert {
    condition     = alltrue([for name, env in local.function_environment : !contains(keys(env), "VAULT_SIGNING_KEY_PERIOD_SECONDS") && !contains(keys(env), "VAULT_SIGNING_KEY_PUBLISH_AHEAD_SECONDS") && !contains(keys(env), "VAULT_SIGNING_KEY_OVERLAP_SECONDS")])
    error_message = "direct mode reads no key calendar, so none is set"
  }
  assert {
    condition     = alltrue([for name, env in local.function_environment : env["VAULT_KEY_ID"] == "vault-key-001" && env["VAULT_KMS_KEY_ID"] == module.state.signing_key_arn if name != "notifier"])
    error_message = "generation 1 keeps signing_key_kid: existing deployments keep their kid"
  }
  assert {
    condition = alltrue([for name in ["clearance-api", "judge-worker", "anchor-export"] :
    contains(flatten([for s in local.function_statements[name] : s.actions if contains(s.resources, local.signing_key_arn)]), "kms:Sign")])
    error_message = "direct: clearance-api and judge-worker sign tokens and receipts, anchor-export checkpoints"
  }
  assert {
    condition     = toset(flatten([for s in local.function_statements["anchor-export"] : s.actions if contains(s.resources, local.envelope_key_arn)])) == toset(["kms:Decrypt", "kms:GenerateDataKey"])
    error_message = "direct: anchor-export seals no delegated key, but it seals the delivery log entries of the reviews it expires"
  }
  assert {
    condition = (!contains(flatten([for s in local.function_statements["notifier"] : s.resources]), local.signing_key_arn)
    && toset(flatten([for s in local.function_statements["jwks"] : s.actions if contains(s.resources, local.signing_key_arn)])) == toset(["kms:GetPublicKey"]))
    error_message = "jwks and the notifier sign nothing: jwks reads the root's public key, the notifier never touches it"
  }
  assert {
    condition     = !contains(flatten([for s in local.function_statements["judge-worker"] : s.actions if contains(s.resources, local.hot_table_arn)]), "dynamodb:Query")
    error_message = "direct: judge-worker signs with the root and never lists the key registry"
  }
  assert {
    condition = (contains(flatten([for s in local.function_statements["jwks"] : s.actions if contains(s.resources, local.hot_table_arn)]), "dynamodb:Query")
      && toset(flatten([for s in local.function_statements["anchor-export"] : s.actions if contains(s.resources, local.hot_table_arn)])) == toset(["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"])
    && local.function_environment["jwks"]["VAULT_DYNAMODB_TABLE"] == module.state.dynamodb_table_name)
    error_message = "jwks lists the key registry in the hot table; anchor-export's key step lists, records and retires roots, and it reads notification settings and records deliveries"
  }
  assert {
    condition     = local.function_environment["jwks"]["VAULT_JWT_TTL"] == "300"
    error_message = "jwks keeps a delegated key listed until its tokens expire: it needs the token lifetime"
  }
  assert {
    condition     = alltrue([for name in keys(local.function_names) : length([for s in local.platform_permissions[name] : s if s.sid == "HotTableKey"]) == 1])
    error_message = "every function reads the hot table (the key registry, the notifications), encrypted with the platform key"
  }
  assert {
    condition     = output.signing_keys == { "1" = { arn = module.state.signing_key_arn, kid = "vault-key-001", active = true } }
    error_message = "one generation by default, the root"
  }
}

run "signing_delegated" {
  command = plan

  # Distinct key ARNs (the mock gives every key the same one), so the assertions below can tell them apart.
  override_resource {
    target          = module.state.aws_kms_key.signing
    override_during = plan
    values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/signing" }
  }
  override_resource {
    target          = module.state.aws_kms_key.envelope
    override_during = plan
    values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/envelope" }
  }
  override_resource {
    target          = module.state.aws_kms_key.platform
    override_during = plan
    values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/platform" }
  }

  variables {
    signing_mode = "delegated"
  }

  assert {
    condition     = alltrue([for name, env in local.function_environment : env["VAULT_SIGNER_BACKEND"] == "aws_kms_delegated" if name != "notifier"])
    error_message = "delegated: VAULT_SIGNER_BACKEND=aws_kms_delegated on every function (but the notifier, which signs nothing)"
  }
  assert {
    condition = alltrue([for name in ["clearance-api", "judge-worker", "anchor-export"] : (
      local.function_environment[name]["VAULT_SIGNING_KEY_PERIOD_SECONDS"] == "3600"
      && local.function_environment[name]["VAULT_SIGNING_KEY_PUBLISH_AHEAD_SECONDS"] == "600"
      && local.function_environment[name]["VAULT_SIGNING_KEY_OVERLAP_SECONDS"] == "60"
    && local.function_environment[name]["VAULT_ENVELOPE_KMS_KEY_ID"] == module.state.envelope_key_arn)])
    error_message = "every function that builds the vault gets the same key calendar and the envelope key that seals the keys"
  }
  assert {
    condition     = !contains(keys(local.function_environment["jwks"]), "VAULT_SIGNING_KEY_PERIOD_SECONDS") && !contains(keys(local.function_environment["notifier"]), "VAULT_SIGNING_KEY_PERIOD_SECONDS")
    error_message = "jwks opens no delegated key, the notifier no key at all: no calendar"
  }
  assert {
    condition = alltrue([for name in ["clearance-api", "judge-worker"] :
    !contains(flatten([for s in local.function_statements[name] : s.actions]), "kms:Sign")])
    error_message = "delegated: clearance-api and judge-worker never call kms:Sign"
  }
  assert {
    condition = alltrue([for name in ["clearance-api", "judge-worker", "jwks", "anchor-export"] :
    contains(flatten([for s in local.function_statements[name] : s.actions if contains(s.resources, local.signing_key_arn)]), "kms:GetPublicKey")])
    error_message = "every function still reads the root's public key at cold start"
  }
  assert {
    condition = (toset(flatten([for s in local.function_statements["anchor-export"] : s.actions if contains(s.resources, local.signing_key_arn)])) == toset(["kms:GetPublicKey", "kms:Sign"])
    && toset(flatten([for s in local.function_statements["anchor-export"] : s.actions if contains(s.resources, local.envelope_key_arn)])) == toset(["kms:Decrypt", "kms:GenerateDataKey"]))
    error_message = "delegated: anchor-export certifies keys with the root and seals them under the envelope key"
  }
  assert {
    condition = (contains(flatten([for s in local.function_statements["judge-worker"] : s.actions if contains(s.resources, local.hot_table_arn)]), "dynamodb:GetItem")
      && !contains(flatten([for s in local.function_statements["judge-worker"] : s.actions if contains(s.resources, local.hot_table_arn)]), "dynamodb:Query")
    && contains(flatten([for s in local.function_statements["anchor-export"] : s.actions if contains(s.resources, local.hot_table_arn)]), "dynamodb:GetItem"))
    error_message = "delegated: judge-worker reads the current period's key by kid (no listing); anchor-export looks up each due key by kid"
  }
  assert {
    condition     = length(distinct(flatten([for name in keys(local.function_names) : [for s in local.function_statements[name] : "${name}/${s.sid}"]]))) == length(flatten([for name in keys(local.function_names) : local.function_statements[name]]))
    error_message = "statement ids are unique within each role"
  }
}

run "signing_delegated_calendar" {
  command = plan

  variables {
    signing_mode                      = "delegated"
    signing_key_period_seconds        = 7200
    signing_key_publish_ahead_seconds = 900
    signing_key_overlap_seconds       = 120
  }

  assert {
    condition = (local.function_environment["anchor-export"]["VAULT_SIGNING_KEY_PERIOD_SECONDS"] == "7200"
      && local.function_environment["clearance-api"]["VAULT_SIGNING_KEY_PUBLISH_AHEAD_SECONDS"] == "900"
    && local.function_environment["judge-worker"]["VAULT_SIGNING_KEY_OVERLAP_SECONDS"] == "120")
    error_message = "the calendar is passed as given"
  }
}

run "signing_root_rotated" {
  command = plan

  # Distinct key ARNs (the mock gives every key the same one), so the assertions below can tell them apart.
  override_resource {
    target          = module.state.aws_kms_key.signing
    override_during = plan
    values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/signing" }
  }
  override_resource {
    target          = module.state.aws_kms_key.envelope
    override_during = plan
    values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/envelope" }
  }
  override_resource {
    target          = module.state.aws_kms_key.platform
    override_during = plan
    values          = { arn = "arn:aws:kms:us-east-1:123456789012:key/platform" }
  }

  variables {
    signing_key_generations = ["1", "2"]
  }

  assert {
    condition     = alltrue([for name, env in local.function_environment : env["VAULT_KEY_ID"] == "vault-key-001-2" && env["VAULT_KMS_KEY_ID"] == module.state.signing_key_arn if name != "notifier"])
    error_message = "the last generation is the root: kid <signing_key_kid>-<generation>"
  }
  assert {
    condition = (keys(output.signing_keys) == ["1", "2"] && output.signing_keys["2"].active && output.signing_keys["1"].active == false
    && output.signing_keys["1"].kid == "vault-key-001" && output.signing_keys["2"].kid == "vault-key-001-2")
    error_message = "earlier generations are kept, inactive, with their kids"
  }
  assert {
    condition     = local.signing_key_arn == module.state.signing_key_arn && length(module.state.signing_key_arns) == 2
    error_message = "the roles are granted the active root only (modules/state: the last generation), never an earlier generation's key"
  }
  assert {
    condition     = alltrue(flatten([for name in keys(local.function_names) : [for s in local.function_statements[name] : [for r in s.resources : r if startswith(r, "arn:aws:kms")] == [for r in s.resources : r if contains([local.signing_key_arn, local.envelope_key_arn, local.platform_key_arn], r)]]]))
    error_message = "no function is granted a KMS key other than the root, the envelope key and the platform key"
  }
}

run "signing_mode_is_checked" {
  command = plan

  variables {
    signing_mode = "hsm"
  }

  expect_failures = [var.signing_mode]
}

run "signing_key_period_at_least_10_seconds" {
  command = plan

  variables {
    signing_key_period_seconds = 5
  }

  expect_failures = [var.signing_key_period_seconds]
}

run "signing_key_publish_ahead_outlasts_the_jwks_cache" {
  command = plan

  variables {
    signing_key_publish_ahead_seconds = 329
  }

  expect_failures = [var.signing_key_publish_ahead_seconds]
}

run "signing_key_overlap_below_half_a_period" {
  command = plan

  variables {
    signing_mode                = "delegated"
    signing_key_overlap_seconds = 1800
  }

  expect_failures = [terraform_data.signing]
}

run "signing_key_publish_ahead_shorter_than_a_period" {
  command = plan

  variables {
    signing_mode                      = "delegated"
    signing_key_period_seconds        = 600
    signing_key_publish_ahead_seconds = 600
  }

  expect_failures = [terraform_data.signing]
}

run "signing_key_publish_ahead_covers_an_anchor_interval" {
  command = plan

  variables {
    signing_mode            = "delegated"
    anchor_interval_seconds = 300
  }

  # Rounds every 300 s issue the keys: 600 s ahead leaves 300 s, less than the 330 s a verifier may need.
  expect_failures = [terraform_data.signing]
}

run "signing_key_generations_are_distinct" {
  command = plan

  variables {
    signing_key_generations = ["1", "2", "1"]
  }

  expect_failures = [var.signing_key_generations]
}

run "signing_key_generations_not_empty" {
  command = plan

  variables {
    signing_key_generations = []
  }

  expect_failures = [var.signing_key_generations]
}

run "signing_key_generation_names_are_checked" {
  command = plan

  variables {
    signing_key_generations = ["1", "two words"]
  }

  expect_failures = [var.signing_key_generations]
}

run "signing_key_kids_fit_64_characters" {
  command = plan

  variables {
    signing_key_kid         = "a-sixty-character-kid-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    signing_key_generations = ["1", "gen-2"]
  }

  expect_failures = [terraform_data.signing]
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
    account_id                              = "123456789012"
    partition                               = "aws"
    dynamodb_table_name                     = "ledgix-hot"
    deletion_protection                     = true
    judge_worker_timeout_seconds            = 60
    judge_queue_visibility_timeout_seconds  = 360
    judge_queue_max_receive_count           = 5
    notifier_timeout_seconds                = 30
    notify_queue_visibility_timeout_seconds = 180
    anchor_bucket_name                      = null
    anchor_object_lock_enabled              = true
    anchor_object_lock_mode                 = "GOVERNANCE"
    anchor_object_lock_days                 = 365
    anchor_noncurrent_transition_days       = 30
    signing_key_generations                 = ["1", "2"]
    kms_deletion_window_days                = 30
    secret_recovery_window_days             = 7
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
    condition     = !aws_sqs_queue.notify.fifo_queue && !aws_sqs_queue.notify_dlq.fifo_queue && aws_sqs_queue.notify.visibility_timeout_seconds == 180 && aws_sqs_queue.notify.name == "ledgix-notify"
    error_message = "the notify queue and its DLQ are standard queues (order does not matter, a duplicate is harmless); visibility timeout as given"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.notify.redrive_policy).maxReceiveCount == 5 && aws_sqs_queue.notify_dlq.message_retention_seconds == 1209600
    error_message = "a notification job is dead-lettered after 5 receives and kept 14 days there"
  }
  assert {
    condition     = aws_sqs_queue.notify.sqs_managed_sse_enabled && aws_sqs_queue.notify_dlq.sqs_managed_sse_enabled
    error_message = "the notify queues are encrypted at rest like the judge queue's (SQS-managed keys: no KMS grant for senders or the consumer)"
  }
  assert {
    condition     = aws_sqs_queue.notify.message_retention_seconds >= 86400
    error_message = "a job outlives the 24 hours its delivery is retried"
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
    condition     = length(aws_kms_key.signing) == 2 && alltrue([for key in aws_kms_key.signing : key.key_usage == "SIGN_VERIFY"]) && local.signing_key_spec == "ECC_NIST_EDWARDS25519"
    error_message = "one Ed25519 SIGN_VERIFY signing key per generation"
  }
  assert {
    condition     = local.active_signing_generation == "2" && aws_kms_alias.signing.target_key_id == aws_kms_key.signing["2"].key_id && output.signing_key_arn == aws_kms_key.signing["2"].arn
    error_message = "the last generation is the root: the alias and signing_key_arn name it"
  }
  assert {
    condition     = keys(output.signing_key_arns) == ["1", "2"]
    error_message = "every generation kept is listed by signing_key_arns"
  }
  assert {
    condition     = aws_kms_key.signing["1"].description == "ledgix vault signing key (Ed25519): approval tokens, receipts, checkpoints" && endswith(aws_kms_key.signing["2"].description, "(generation 2)")
    error_message = "generation 1 keeps the description of the key made before generations (no change on upgrade)"
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
    account_id                              = "123456789012"
    partition                               = "aws"
    dynamodb_table_name                     = "ledgix-hot"
    deletion_protection                     = true
    judge_worker_timeout_seconds            = 60
    judge_queue_visibility_timeout_seconds  = 120
    judge_queue_max_receive_count           = 5
    notifier_timeout_seconds                = 30
    notify_queue_visibility_timeout_seconds = 180
    anchor_bucket_name                      = null
    anchor_object_lock_enabled              = false
    anchor_object_lock_mode                 = "GOVERNANCE"
    anchor_object_lock_days                 = 365
    anchor_noncurrent_transition_days       = 30
    signing_key_generations                 = ["1"]
    kms_deletion_window_days                = 30
    secret_recovery_window_days             = 7
  }

  expect_failures = [aws_sqs_queue.judge]
}

run "notify_visibility_timeout_too_short_is_refused" {
  command = plan

  module {
    source = "./modules/state"
  }

  variables {
    account_id                              = "123456789012"
    partition                               = "aws"
    dynamodb_table_name                     = "ledgix-hot"
    deletion_protection                     = true
    judge_worker_timeout_seconds            = 60
    judge_queue_visibility_timeout_seconds  = 360
    judge_queue_max_receive_count           = 5
    notifier_timeout_seconds                = 30
    notify_queue_visibility_timeout_seconds = 60
    anchor_bucket_name                      = null
    anchor_object_lock_enabled              = false
    anchor_object_lock_mode                 = "GOVERNANCE"
    anchor_object_lock_days                 = 365
    anchor_noncurrent_transition_days       = 30
    signing_key_generations                 = ["1"]
    kms_deletion_window_days                = 30
    secret_recovery_window_days             = 7
  }

  expect_failures = [aws_sqs_queue.notify]
}

run "functions_module" {
  command = plan

  module {
    source = "./modules/functions"
  }

  variables {
    functions = {
      for name in ["clearance-api", "jwks", "judge-worker", "anchor-export", "notifier"] : name => {
        function_name   = "ledgix-${name}"
        description     = name
        role_arn        = "arn:aws:iam::123456789012:role/ledgix-${name}-role"
        memory_mb       = 512
        timeout_seconds = name == "judge-worker" ? 60 : 10
        environment     = { VAULT_BACKEND = "aws" }
        in_vpc          = !contains(["jwks", "notifier"], name)
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
    notify_queue_arn             = "arn:aws:sqs:us-east-1:123456789012:ledgix-notify"
    notifier_batch_size          = 10
    notifier_max_concurrency     = 20
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
    condition     = length(aws_lambda_function.this["notifier"].vpc_config) == 0
    error_message = "the notifier runs outside the VPC (webhooks are on the internet)"
  }
  assert {
    condition = (aws_lambda_event_source_mapping.notifier.event_source_arn == "arn:aws:sqs:us-east-1:123456789012:ledgix-notify"
      && aws_lambda_event_source_mapping.notifier.batch_size == 10
      && contains(aws_lambda_event_source_mapping.notifier.function_response_types, "ReportBatchItemFailures")
    && aws_lambda_event_source_mapping.notifier.scaling_config[0].maximum_concurrency == 20)
    error_message = "the notifier takes the notify queue's jobs 10 at a time, reports the ones to redeliver, and its concurrency cap is passed on"
  }
  assert {
    condition     = length(aws_lambda_event_source_mapping.judge_worker.scaling_config) == 0
    error_message = "no concurrency cap unless one is given"
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
    alarm_sns_topic_arn            = null
    alarm_email                    = null
    sns_kms_key_arn                = "arn:aws:kms:us-east-1:123456789012:key/platform"
    function_names                 = { for name in ["clearance-api", "jwks", "judge-worker", "anchor-export", "notifier"] : name => "ledgix-${name}" }
    api_id                         = "abc123"
    judge_queue_name               = "ledgix-judge.fifo"
    judge_dlq_name                 = "ledgix-judge-dlq.fifo"
    api_5xx_alarm_threshold        = 5
    anchor_interval_seconds        = 30
    anchor_schedule_seconds        = 60
    anchor_stalled_alarm_minutes   = 10
    judge_queue_age_alarm_seconds  = 720
    notify_queue_name              = "ledgix-notify"
    notify_dlq_name                = "ledgix-notify-dlq"
    notify_queue_age_alarm_seconds = 1260
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.judge_dlq_not_empty.metric_name == "ApproximateNumberOfMessagesVisible" && aws_cloudwatch_metric_alarm.judge_dlq_not_empty.dimensions["QueueName"] == "ledgix-judge-dlq.fifo"
    error_message = "an alarm on the DLQ depth"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.api_5xx.metric_name == "5xx" && length(aws_cloudwatch_metric_alarm.function_throttles) == 5 && length(aws_cloudwatch_metric_alarm.function_errors) == 5
    error_message = "alarms on 5xx and on errors and throttles of every function"
  }
  assert {
    condition = (aws_cloudwatch_metric_alarm.notify_dlq_not_empty.metric_name == "ApproximateNumberOfMessagesVisible"
      && aws_cloudwatch_metric_alarm.notify_dlq_not_empty.dimensions["QueueName"] == "ledgix-notify-dlq"
      && aws_cloudwatch_metric_alarm.notify_dlq_not_empty.threshold == 0
    && aws_cloudwatch_metric_alarm.notify_dlq_not_empty.comparison_operator == "GreaterThanThreshold")
    error_message = "an alarm as soon as a notification job is dead-lettered"
  }
  assert {
    condition = (aws_cloudwatch_metric_alarm.notify_queue_age.metric_name == "ApproximateAgeOfOldestMessage"
      && aws_cloudwatch_metric_alarm.notify_queue_age.dimensions["QueueName"] == "ledgix-notify"
    && aws_cloudwatch_metric_alarm.notify_queue_age.threshold == 1260)
    error_message = "an alarm on the age of the oldest notification job"
  }
  assert {
    condition = (toset(aws_cloudwatch_metric_alarm.notify_dlq_not_empty.alarm_actions) == toset(aws_cloudwatch_metric_alarm.judge_dlq_not_empty.alarm_actions)
    && toset(aws_cloudwatch_metric_alarm.notify_queue_age.ok_actions) == toset(aws_cloudwatch_metric_alarm.judge_queue_age.ok_actions))
    error_message = "the notify queue's alarms notify the same topic as the judge queue's"
  }
  assert {
    condition     = strcontains(aws_cloudwatch_dashboard.this.dashboard_body, "ledgix-notify-dlq")
    error_message = "the dashboard shows the notify queue and its DLQ"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.anchor_stalled.treat_missing_data == "breaching" && aws_cloudwatch_metric_alarm.anchor_stalled.alarm_name == "ledgix-anchor-stalled"
    error_message = "no anchor-export invocation at all is a stalled anchor too"
  }
  assert {
    condition = (aws_cloudwatch_metric_alarm.anchor_lag.alarm_name == "ledgix-anchor-lag"
      && aws_cloudwatch_metric_alarm.anchor_lag.namespace == "LedgixVault"
      && aws_cloudwatch_metric_alarm.anchor_lag.metric_name == "AnchorLagSeconds"
      && try(length(aws_cloudwatch_metric_alarm.anchor_lag.dimensions), 0) == 0
    && aws_cloudwatch_metric_alarm.anchor_lag.statistic == "Maximum")
    error_message = "the anchor-lag alarm watches the dimensionless AnchorLagSeconds series by its Maximum (the worst tenant)"
  }
  assert {
    condition = (aws_cloudwatch_metric_alarm.anchor_lag.threshold == 60
      && aws_cloudwatch_metric_alarm.anchor_lag.comparison_operator == "GreaterThanThreshold"
      && aws_cloudwatch_metric_alarm.anchor_lag.period == 60
    && aws_cloudwatch_metric_alarm.anchor_lag.evaluation_periods == 3)
    error_message = "the anchor-lag alarm fires when some tenant is more than two intervals (2 x 30 s) behind for three minutes"
  }
  assert {
    condition = (aws_cloudwatch_metric_alarm.anchor_lag.treat_missing_data == "notBreaching"
    && aws_cloudwatch_metric_alarm.anchor_stalled.treat_missing_data == "breaching")
    error_message = "silence is the anchor-stalled alarm's to report, not the lag alarm's"
  }
  assert {
    condition = (toset(aws_cloudwatch_metric_alarm.anchor_lag.alarm_actions) == toset(aws_cloudwatch_metric_alarm.api_5xx.alarm_actions)
    && toset(aws_cloudwatch_metric_alarm.anchor_lag.ok_actions) == toset(aws_cloudwatch_metric_alarm.api_5xx.ok_actions))
    error_message = "the anchor-lag alarm notifies the same topic as the others"
  }
  assert {
    condition = (strcontains(aws_cloudwatch_dashboard.this.dashboard_body, "AnchorLagSeconds")
    && strcontains(aws_cloudwatch_dashboard.this.dashboard_body, "AnchorEventsBehind"))
    error_message = "the dashboard shows both anchor lag metrics"
  }
  assert {
    condition     = length(aws_sns_topic.alarms) == 1
    error_message = "a topic for the alarms when none is given"
  }
}

run "observability_module_long_anchor_interval" {
  command = plan

  module {
    source = "./modules/observability"
  }

  variables {
    alarm_sns_topic_arn            = "arn:aws:sns:us-east-1:123456789012:oncall"
    alarm_email                    = null
    sns_kms_key_arn                = "arn:aws:kms:us-east-1:123456789012:key/platform"
    function_names                 = { for name in ["clearance-api", "jwks", "judge-worker", "anchor-export", "notifier"] : name => "ledgix-${name}" }
    api_id                         = "abc123"
    judge_queue_name               = "ledgix-judge.fifo"
    judge_dlq_name                 = "ledgix-judge-dlq.fifo"
    api_5xx_alarm_threshold        = 5
    anchor_interval_seconds        = 300
    anchor_schedule_seconds        = 300
    anchor_stalled_alarm_minutes   = 15
    judge_queue_age_alarm_seconds  = 720
    notify_queue_name              = "ledgix-notify"
    notify_dlq_name                = "ledgix-notify-dlq"
    notify_queue_age_alarm_seconds = 1260
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.anchor_lag.threshold == 600 && aws_cloudwatch_metric_alarm.anchor_lag.period == 300
    error_message = "a 300 s interval: the bar is 600 s, and each period holds one round's report"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.anchor_lag.alarm_actions == toset(["arn:aws:sns:us-east-1:123456789012:oncall"]) && length(aws_sns_topic.alarms) == 0
    error_message = "with a given topic, the anchor-lag alarm notifies it"
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

# ---------------------------------------------------------------------------------------------------------------
# The policy judge (judge.tf): environment, IAM on exactly the configured Bedrock models, the bedrock-runtime
# endpoint, and the checks between inputs.
# ---------------------------------------------------------------------------------------------------------------

run "judge_bedrock_by_default" {
  command = plan

  assert {
    condition     = local.function_environment["clearance-api"]["VAULT_JUDGE_BACKEND"] == "bedrock" && local.function_environment["judge-worker"]["VAULT_JUDGE_BACKEND"] == "bedrock"
    error_message = "the bedrock judge by default, known to clearance-api (it queues judge work) and judge-worker"
  }
  assert {
    condition = (local.function_environment["judge-worker"]["VAULT_JUDGE_MODEL"] == "amazon.nova-pro-v1:0"
    && local.function_environment["judge-worker"]["VAULT_EMBEDDING_MODEL"] == "amazon.titan-embed-text-v2:0")
    error_message = "judge-worker is told the models IAM grants: Nova Pro judges, Titan Text Embeddings v2 embeds"
  }
  assert {
    condition = alltrue([for name in ["VAULT_JUDGE_MODEL", "VAULT_EMBEDDING_MODEL", "VAULT_JUDGE_URL", "VAULT_JUDGE_TIMEOUT_SECONDS", "VAULT_JUDGE_RETRY_BUDGET_SECONDS", "VAULT_JUDGE_TOP_K"] :
    !contains(keys(local.function_environment["clearance-api"]), name)])
    error_message = "clearance-api only needs to know the backend"
  }
  assert {
    condition     = !contains(keys(local.function_environment["judge-worker"]), "VAULT_JUDGE_URL") && !contains(keys(local.function_environment["judge-worker"]), "VAULT_ALLOW_STUB_JUDGE")
    error_message = "no judge URL and no stub judge with bedrock"
  }
  assert {
    condition     = alltrue([for name, env in local.function_environment : alltrue([for key in keys(env) : !strcontains(key, "API_KEY")])])
    error_message = "VAULT_JUDGE_API_KEY (like every secret) is never in a function's environment: it is in the bootstrap secret"
  }
  assert {
    condition = (length([for s in local.function_statements["judge-worker"] : s if contains(s.actions, "bedrock:InvokeModel")]) == 1
      && one([for s in local.function_statements["judge-worker"] : s if contains(s.actions, "bedrock:InvokeModel")]).sid == "JudgeModels"
      && toset(one([for s in local.function_statements["judge-worker"] : s if contains(s.actions, "bedrock:InvokeModel")]).resources) == toset([
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
    ]))
    error_message = "judge-worker may invoke exactly the two foundation models, in this region"
  }
  assert {
    condition     = alltrue(flatten([for name in ["clearance-api", "jwks", "anchor-export"] : [for s in local.function_statements[name] : [for a in s.actions : !startswith(a, "bedrock:")]]]))
    error_message = "only judge-worker calls Bedrock"
  }
  assert {
    condition     = contains(keys(module.network.interface_endpoint_ids), "bedrock-runtime") && length(module.network.interface_endpoint_ids) == 4
    error_message = "Bedrock Runtime gets an interface endpoint beside secretsmanager, kms and sqs (no NAT)"
  }
  assert {
    condition = (local.judge_retry_budget_seconds == 60
      && local.function_environment["judge-worker"]["VAULT_JUDGE_RETRY_BUDGET_SECONDS"] == "60"
    && local.function_environment["judge-worker"]["VAULT_JUDGE_TIMEOUT_SECONDS"] == "20")
    error_message = "the default worker (90 s, one message per batch) keeps the code's 60 s retry budget and 20 s call timeout"
  }
  assert {
    condition = (var.judge_worker_batch_size * local.judge_retry_budget_seconds < var.judge_worker_timeout_seconds
    && local.judge_retry_budget_seconds * 6 <= local.judge_queue_visibility_timeout_seconds)
    error_message = "a batch's judgements fit the worker's timeout, well below the queue's visibility timeout"
  }
}

run "judge_inference_profile" {
  command = plan

  variables {
    judge_model = "us.amazon.nova-pro-v1:0"
  }

  assert {
    condition     = local.function_environment["judge-worker"]["VAULT_JUDGE_MODEL"] == "us.amazon.nova-pro-v1:0"
    error_message = "the inference-profile id is passed on as given"
  }
  assert {
    condition = toset(one([for s in local.function_statements["judge-worker"] : s if s.sid == "JudgeModels"]).resources) == toset([
      "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
      "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
    ])
    error_message = "the calls' resources: the profile (this region, this account) and the embedding foundation model"
  }
  assert {
    condition = toset(one([for s in local.function_statements["judge-worker"] : s if s.sid == "JudgeModelsThroughProfiles"]).resources) == toset([
      "arn:aws:bedrock:*::foundation-model/amazon.nova-pro-v1:0",
    ])
    error_message = "the foundation model behind the profile, in whichever region the profile routes to"
  }
  assert {
    condition = (one([for s in local.function_statements["judge-worker"] : s if s.sid == "JudgeModelsThroughProfiles"]).condition.variable == "bedrock:InferenceProfileArn"
      && toset(one([for s in local.function_statements["judge-worker"] : s if s.sid == "JudgeModelsThroughProfiles"]).condition.values) == toset([
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
    ]))
    error_message = "the routed foundation model only through the granted profile"
  }
  assert {
    condition     = length([for s in local.function_statements["judge-worker"] : s if contains(s.actions, "bedrock:InvokeModel")]) == 2
    error_message = "two Bedrock statements: the models called, the models routed to"
  }
}

run "judge_global_profile_and_embedding_profile" {
  command = plan

  variables {
    judge_model     = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    embedding_model = "eu.cohere.embed-v4:0"
    aws_region      = "eu-west-1"
  }

  assert {
    condition = toset(one([for s in local.function_statements["judge-worker"] : s if s.sid == "JudgeModels"]).resources) == toset([
      "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-5-20250929-v1:0",
      "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.cohere.embed-v4:0",
    ])
    error_message = "both profiles, in the deployment's region"
  }
  assert {
    condition = toset(one([for s in local.function_statements["judge-worker"] : s if s.sid == "JudgeModelsThroughProfiles"]).resources) == toset([
      "arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
      "arn:aws:bedrock:*::foundation-model/cohere.embed-v4:0",
    ])
    error_message = "each profile's foundation model without its geography prefix"
  }
}

run "judge_http" {
  command = plan

  variables {
    judge_backend            = "http"
    judge_url                = "https://judge.example.com/v1/judge"
    judge_egress_cidr_blocks = ["0.0.0.0/0"]
  }

  assert {
    condition     = local.function_environment["judge-worker"]["VAULT_JUDGE_BACKEND"] == "http" && local.function_environment["judge-worker"]["VAULT_JUDGE_URL"] == "https://judge.example.com/v1/judge"
    error_message = "judge-worker calls the HTTP judge at judge_url"
  }
  assert {
    condition     = !contains(keys(local.function_environment["clearance-api"]), "VAULT_JUDGE_URL") && local.function_environment["clearance-api"]["VAULT_JUDGE_BACKEND"] == "http"
    error_message = "clearance-api knows the backend, not the URL"
  }
  assert {
    condition     = !contains(keys(local.function_environment["judge-worker"]), "VAULT_JUDGE_MODEL") && !contains(keys(local.function_environment["judge-worker"]), "VAULT_EMBEDDING_MODEL")
    error_message = "the HTTP judge names its own model"
  }
  assert {
    condition     = length(flatten([for name, statements in local.function_statements : [for s in statements : s if anytrue([for a in s.actions : startswith(a, "bedrock:")])]])) == 0
    error_message = "no Bedrock statement without the bedrock judge"
  }
  assert {
    condition     = !contains(keys(module.network.interface_endpoint_ids), "bedrock-runtime")
    error_message = "no Bedrock Runtime endpoint without the bedrock judge"
  }
}

run "judge_http_needs_its_url" {
  command = plan

  variables {
    judge_backend = "http"
  }

  expect_failures = [terraform_data.judge]
}

run "judge_openai_needs_its_model" {
  command = plan

  variables {
    judge_backend = "openai"
    judge_url     = "https://api.openai.example/v1"
  }

  expect_failures = [terraform_data.judge]
}

run "judge_openai" {
  command = plan

  variables {
    judge_backend   = "openai"
    judge_url       = "https://api.openai.example/v1"
    judge_model     = "gpt-4.1-mini"
    embedding_model = "text-embedding-3-small"
  }

  assert {
    condition = (local.function_environment["judge-worker"]["VAULT_JUDGE_MODEL"] == "gpt-4.1-mini"
      && local.function_environment["judge-worker"]["VAULT_EMBEDDING_MODEL"] == "text-embedding-3-small"
    && local.function_environment["judge-worker"]["VAULT_JUDGE_URL"] == "https://api.openai.example/v1")
    error_message = "the OpenAI-compatible judge gets its URL and both model names"
  }
  assert {
    condition     = length(local.bedrock_models) == 0 && !contains(keys(module.network.interface_endpoint_ids), "bedrock-runtime")
    error_message = "no Bedrock grant and no endpoint for an OpenAI-compatible judge"
  }
}

run "judge_openai_without_embeddings" {
  command = plan

  variables {
    judge_backend = "openai"
    judge_url     = "https://api.openai.example/v1"
    judge_model   = "gpt-4.1-mini"
  }

  assert {
    condition     = local.function_environment["judge-worker"]["VAULT_JUDGE_MODEL"] == "gpt-4.1-mini" && !contains(keys(local.function_environment["judge-worker"]), "VAULT_EMBEDDING_MODEL")
    error_message = "an OpenAI-compatible endpoint without embeddings: long policies go to the model whole"
  }
}

run "judge_url_must_be_https" {
  command = plan

  variables {
    judge_backend = "http"
    judge_url     = "http://judge.internal/v1/judge"
  }

  expect_failures = [var.judge_url]
}

run "judge_backend_is_checked" {
  command = plan

  variables {
    judge_backend = "anthropic"
  }

  expect_failures = [var.judge_backend]
}

run "stub_judge_needs_allow_stub_judge" {
  command = plan

  variables {
    judge_backend = "stub"
  }

  expect_failures = [terraform_data.judge]
}

run "stub_judge" {
  command = plan

  variables {
    judge_backend    = "stub"
    allow_stub_judge = true
  }

  assert {
    condition = alltrue([for name in ["clearance-api", "judge-worker"] :
    local.function_environment[name]["VAULT_JUDGE_BACKEND"] == "stub" && local.function_environment[name]["VAULT_ALLOW_STUB_JUDGE"] == "true"])
    error_message = "the stub judge, allowed on both functions"
  }
  assert {
    condition     = length(local.bedrock_models) == 0 && !contains(keys(module.network.interface_endpoint_ids), "bedrock-runtime")
    error_message = "no Bedrock grant and no endpoint for the stub"
  }
}

run "judge_bedrock_model_ids_are_checked" {
  command = plan

  variables {
    judge_model = "gpt-4o-mini" # an OpenAI model name left over with the bedrock backend
  }

  expect_failures = [terraform_data.judge]
}

run "judge_batch_must_fit_the_worker_timeout" {
  command = plan

  variables {
    judge_worker_batch_size = 10 # 10 judgements in the default 90 s leave 7 s each: less than one 20 s model call
  }

  expect_failures = [terraform_data.judge]
}

run "judge_retry_budget_must_fit_the_worker_timeout" {
  command = plan

  variables {
    judge_retry_budget_seconds = 80 # + 15 s for the rest > 90 s
  }

  expect_failures = [terraform_data.judge]
}

run "judge_batch_with_a_longer_timeout" {
  command = plan

  variables {
    judge_worker_batch_size      = 10
    judge_worker_timeout_seconds = 900
  }

  assert {
    condition     = local.judge_retry_budget_seconds == 60 && 10 * local.judge_retry_budget_seconds + local.judge_worker_reserve_seconds <= 900
    error_message = "a larger timeout holds ten judgements of the (capped) 60 s budget"
  }
}

run "network_module" {
  command = plan

  module {
    source = "./modules/network"
  }

  variables {
    vpc_cidr                      = "10.42.0.0/16"
    availability_zone_count       = 2
    interface_endpoint_services   = ["secretsmanager", "kms", "sqs", "bedrock-runtime"]
    existing_database_cidr_blocks = []
    judge_egress_cidr_blocks      = ["0.0.0.0/0"]
    enable_flow_logs              = false
    flow_logs_role_arn            = "arn:aws:iam::123456789012:role/ledgix-vpc-flow-logs"
    log_retention_days            = 90
    logs_kms_key_arn              = "arn:aws:kms:us-east-1:123456789012:key/platform"
  }

  # Known ids, so the assertions can compare the endpoint's subnets and security group at plan time.
  override_resource {
    target          = aws_subnet.private[0]
    override_during = plan
    values          = { id = "subnet-a" }
  }
  override_resource {
    target          = aws_subnet.private[1]
    override_during = plan
    values          = { id = "subnet-b" }
  }
  override_resource {
    target          = aws_security_group.endpoints
    override_during = plan
    values          = { id = "sg-endpoints" }
  }
  override_resource {
    target          = aws_security_group.lambda
    override_during = plan
    values          = { id = "sg-lambda" }
  }

  assert {
    condition = (aws_vpc_endpoint.interface["bedrock-runtime"].service_name == "com.amazonaws.us-east-1.bedrock-runtime"
      && aws_vpc_endpoint.interface["bedrock-runtime"].vpc_endpoint_type == "Interface"
    && aws_vpc_endpoint.interface["bedrock-runtime"].private_dns_enabled)
    error_message = "Bedrock Runtime through an interface endpoint with private DNS (the SDK's default endpoint resolves to it)"
  }
  assert {
    condition = (aws_vpc_endpoint.interface["bedrock-runtime"].subnet_ids == toset(["subnet-a", "subnet-b"])
    && aws_vpc_endpoint.interface["bedrock-runtime"].security_group_ids == toset(["sg-endpoints"]))
    error_message = "the endpoint is in the functions' private subnets, one per AZ, behind the endpoints' security group"
  }
  assert {
    condition = (aws_vpc_security_group_ingress_rule.endpoints_from_vpc["lambda"].from_port == 443
      && aws_vpc_security_group_ingress_rule.endpoints_from_vpc["lambda"].referenced_security_group_id == "sg-lambda"
    && aws_vpc_security_group_egress_rule.lambda_to_endpoints.to_port == 443)
    error_message = "the endpoints' security group admits HTTPS from the functions"
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.lambda_to_judge["0.0.0.0/0"].from_port == 443 && aws_vpc_security_group_egress_rule.lambda_to_judge["0.0.0.0/0"].to_port == 443
    error_message = "egress to the openai/http judge is HTTPS only"
  }
  assert {
    condition     = length(aws_flow_log.this) == 0
    error_message = "no flow logs when disabled"
  }
}
