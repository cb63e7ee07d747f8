# Each function's environment (docs/configuration.md names every variable). One map, function name => variables,
# so tests can compare it with what the code reads. Secrets are never here: DATABASE_URL, LEDGIX_ADMIN_API_KEY,
# the openai/http judge's VAULT_JUDGE_API_KEY and anything else sensitive go in the bootstrap secret
# (AWS_SECRET_NAME), merged over this at cold start.

locals {
  # What every function but the notifier needs to start: the AWS backend, the KMS signer (the root: the last key
  # generation, signing.tf) and the bootstrap secret.
  signer_environment = {
    VAULT_BACKEND        = "aws"
    VAULT_SIGNER_BACKEND = local.signer_backend
    VAULT_KMS_KEY_ID     = module.state.signing_key_arn
    VAULT_KEY_ID         = local.active_signing_key_kid
    AWS_SECRET_NAME      = module.state.bootstrap_secret_name
    RUST_LOG             = var.rust_log
  }

  # The delegated keys' calendar (signing_mode = "delegated"), read by the functions that build the vault: they
  # must agree on it, since the period decides which key signs (and anchor-export issues them). Direct mode does
  # not read it. The jwks function opens no delegated key and lists whatever the registry holds.
  signing_key_environment = local.delegated_signing ? {
    VAULT_SIGNING_KEY_PERIOD_SECONDS        = tostring(var.signing_key_period_seconds)
    VAULT_SIGNING_KEY_PUBLISH_AHEAD_SECONDS = tostring(var.signing_key_publish_ahead_seconds)
    VAULT_SIGNING_KEY_OVERLAP_SECONDS       = tostring(var.signing_key_overlap_seconds)
  } : {}

  # The AWS backend's stores (shared/aws/src/bootstrap.rs, AwsSettings), read by the three data-plane functions.
  # The hot table also holds the signing-key registry; the envelope key also seals delegated keys.
  data_plane_environment = {
    TENANT_SECRET_PREFIX                  = module.state.tenant_secret_prefix
    VAULT_DYNAMODB_TABLE                  = module.state.dynamodb_table_name
    VAULT_ENVELOPE_KMS_KEY_ID             = module.state.envelope_key_arn
    VAULT_TENANT_DB_SSLMODE               = var.tenant_db_sslmode
    VAULT_CONTROL_PLANE_DB_SSLMODE        = var.control_plane_db_sslmode
    VAULT_CONTROL_PLANE_DB_MAX_OPEN_CONNS = tostring(var.control_plane_db_max_open_conns)
    VAULT_TENANT_DB_MAX_OPEN_CONNS        = tostring(var.tenant_db_max_open_conns)
    VAULT_TENANT_SECRET_CACHE_TTL_SECONDS = tostring(var.tenant_secret_cache_ttl_seconds)
  }

  # Ledger settings every data-plane function's vault is built with (mmd_seconds, batch size, C2SP origin).
  ledger_environment = {
    VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS = tostring(var.anchor_interval_seconds)
    VAULT_LEDGER_ANCHOR_BACKFILL_BATCH_SIZE       = tostring(var.anchor_batch_size)
    VAULT_LEDGER_ANCHOR_PREFIX                    = var.anchor_prefix
    VAULT_LEDGER_LOG_ORIGIN                       = var.ledger_log_origin
  }

  # Approval tokens are minted by clearance-api (inline decisions, /mint-token) and by judge-worker (approvals).
  token_environment = {
    VAULT_JWT_TTL      = tostring(var.jwt_ttl_seconds)
    VAULT_JWT_ISSUER   = var.jwt_issuer
    VAULT_JWT_AUDIENCE = var.jwt_audience
  }

  stub_judge_environment = var.allow_stub_judge ? { VAULT_ALLOW_STUB_JUDGE = "true" } : {}

  # The senders tenants' emails may use (email.tf): clearance-api checks a tenant's `from` on PUT
  # /notification-settings, the dispatchers when they build an email, the notifier again when it sends. Unset without
  # identities, like VAULT_PUBLIC_URL without public_url.
  email_environment = local.email_enabled ? { VAULT_EMAIL_FROM_IDENTITIES = join(",", var.email_identities) } : {}

  # The notify queue: every function that commits decisions dispatches their notifications to it (clearance-api:
  # rules, reviews; judge-worker: verdicts; anchor-export: expired reviews and outbox entries a crash left behind),
  # and the notifier consumes it and re-sends its retries there. Never VAULT_ALLOW_PRIVATE_WEBHOOK_URLS: that
  # development flag would let tenants' webhooks reach loopback addresses.
  notify_environment = {
    VAULT_NOTIFY_SQS_QUEUE_URL = module.state.notify_queue_url
  }

  # The policy judge (judge.tf). clearance-api only needs to know that a judge exists, so it queues plain-English
  # policies for judge-worker; the models, the URL and the limits are judge-worker's alone (below).
  judge_environment = {
    VAULT_JUDGE_BACKEND = var.judge_backend
  }

  function_environment = {
    "clearance-api" = merge(
      local.signer_environment,
      local.signing_key_environment,
      local.data_plane_environment,
      local.ledger_environment,
      local.token_environment,
      local.stub_judge_environment,
      local.judge_environment,
      local.notify_environment,
      local.email_environment,
      {
        VAULT_ADMIN_AUTH                      = var.admin_auth
        VAULT_CLEARANCE_SQS_QUEUE_URL         = module.state.judge_queue_url
        VAULT_CLEARANCE_SQS_FIFO_GROUP_SHARDS = tostring(var.judge_queue_fifo_group_shards)
        VAULT_RATE_LIMIT_RPS                  = tostring(var.rate_limit_rps)
        VAULT_RATE_LIMIT_BURST                = tostring(var.rate_limit_burst)
        VAULT_RATE_LIMIT_TTL_SECONDS          = tostring(var.rate_limit_ttl_seconds)
        VAULT_METRICS                         = "emf"
        VAULT_MINT_MAX_AGE_SECONDS            = tostring(var.mint_max_age_seconds)
      },
      var.cors_allowed_origin == null ? {} : { VAULT_CORS_ALLOWED_ORIGIN = var.cors_allowed_origin },
      var.public_url == null ? {} : { VAULT_PUBLIC_URL = var.public_url },
      var.db_ca_bundle_path == null ? {} : { VAULT_DB_CA_BUNDLE = var.db_ca_bundle_path },
    )

    # The root's public key and the key registry in the hot table (functions/jwks); the token lifetime keeps a
    # retired delegated key listed until every token it signed has expired.
    "jwks" = merge(
      local.signer_environment,
      {
        VAULT_DYNAMODB_TABLE = module.state.dynamodb_table_name
        VAULT_JWT_TTL        = tostring(var.jwt_ttl_seconds)
      },
    )

    "judge-worker" = merge(
      local.signer_environment,
      local.signing_key_environment,
      local.data_plane_environment,
      local.ledger_environment,
      local.token_environment,
      local.stub_judge_environment,
      local.judge_environment,
      local.notify_environment,
      local.email_environment,
      {
        VAULT_JUDGE_TIMEOUT_SECONDS      = tostring(var.judge_timeout_seconds)
        VAULT_JUDGE_RETRY_BUDGET_SECONDS = tostring(local.judge_retry_budget_seconds) # fits the worker's timeout (judge.tf)
        VAULT_JUDGE_TENANT_CONCURRENCY   = tostring(var.judge_tenant_concurrency)
        VAULT_JUDGE_POLICY_BUDGET_CHARS  = tostring(var.judge_policy_budget_chars)
        VAULT_JUDGE_TOP_K                = tostring(var.judge_top_k)
      },
      # bedrock: set even when they are the defaults, because iam.tf grants exactly these models; openai: required.
      local.judge_model == null ? {} : { VAULT_JUDGE_MODEL = local.judge_model },
      local.embedding_model == null ? {} : { VAULT_EMBEDDING_MODEL = local.embedding_model },
      contains(["openai", "http"], var.judge_backend) ? { VAULT_JUDGE_URL = var.judge_url } : {},
      var.public_url == null ? {} : { VAULT_PUBLIC_URL = var.public_url },
      var.db_ca_bundle_path == null ? {} : { VAULT_DB_CA_BUNDLE = var.db_ca_bundle_path },
    )

    "anchor-export" = merge(
      local.signer_environment,
      local.signing_key_environment,
      local.data_plane_environment,
      local.ledger_environment,
      local.notify_environment,
      local.email_environment,
      {
        VAULT_LEDGER_ANCHOR_BUCKET             = module.state.anchor_bucket_name
        VAULT_LEDGER_ANCHOR_REGION             = var.aws_region
        VAULT_LEDGER_REQUIRE_BUCKET_VERSIONING = "true"
        VAULT_LEDGER_REQUIRE_OBJECT_LOCK       = tostring(var.anchor_object_lock_enabled)
        # How often the schedule invokes it (anchor.tf): one round per interval in that period.
        VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS = tostring(local.anchor_schedule_seconds)
        VAULT_LEDGER_ANCHOR_CONCURRENCY      = tostring(var.anchor_concurrency)
      },
      var.public_url == null ? {} : { VAULT_PUBLIC_URL = var.public_url },
      var.db_ca_bundle_path == null ? {} : { VAULT_DB_CA_BUNDLE = var.db_ca_bundle_path },
    )

    # Only what notifier_from_env reads (shared/wiring/src/assemble.rs, shared/aws/src/bootstrap.rs NotifierBackend):
    # the delivery log and settings in the hot table, sealed under the envelope key, the notify queue, and the email
    # senders. It builds no vault: no signer, no database, no bootstrap secret (AWS_SECRET_NAME is not read).
    "notifier" = merge(
      local.notify_environment,
      local.email_environment,
      {
        VAULT_DYNAMODB_TABLE      = module.state.dynamodb_table_name
        VAULT_ENVELOPE_KMS_KEY_ID = module.state.envelope_key_arn
        RUST_LOG                  = var.rust_log
      },
    )
  }
}
