# Inputs of the Ledgix Vault stack. Defaults give a working deployment in an empty account; README.md lists them
# all with their defaults.

# ---------------------------------------------------------------------------------------------------------------
# Deployment
# ---------------------------------------------------------------------------------------------------------------

variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be a region code such as us-east-1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions are <prefix>-clearance-api, ...). Lowercase letters, digits and hyphens."
  type        = string
  default     = "ledgix"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-22 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags for every resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------------------------
# Lambda functions
# ---------------------------------------------------------------------------------------------------------------

variable "lambda_package_dir" {
  description = "Directory holding <function>/bootstrap.zip as built by scripts/package.sh (cargo lambda build --release --arm64 --output-format zip), relative to the directory terraform runs in."
  type        = string
  default     = "../../target/lambda"
}

variable "package_hashes" {
  description = "Optional base64 SHA-256 per function name, used instead of hashing the zip file (for plans without built packages, e.g. tests or CI). Unset functions hash their zip."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for name in keys(var.package_hashes) : contains(["clearance-api", "jwks", "judge-worker", "anchor-export", "notifier"], name)])
    error_message = "package_hashes keys must be function names: clearance-api, jwks, judge-worker, anchor-export, notifier."
  }
}

variable "function_memory_mb" {
  description = "Memory per function in MB (also scales its CPU share). A function left out gets 512 (the notifier, unless added)."
  type        = map(number)
  default = {
    "clearance-api" = 512
    "jwks"          = 128
    "judge-worker"  = 512
    "anchor-export" = 512
  }

  validation {
    condition     = alltrue([for mb in values(var.function_memory_mb) : mb >= 128 && mb <= 10240])
    error_message = "function_memory_mb values must be between 128 and 10240."
  }
}

variable "api_timeout_seconds" {
  description = "Timeout of the clearance-api and jwks functions. The HTTP API gives up on an integration after 30 s."
  type        = number
  default     = 15

  validation {
    condition     = var.api_timeout_seconds >= 1 && var.api_timeout_seconds <= 29
    error_message = "api_timeout_seconds must be between 1 and 29 (the HTTP API's integration limit is 30 s)."
  }
}

variable "judge_worker_timeout_seconds" {
  description = "Timeout of the judge-worker function. The judge queue's visibility timeout is at least 6 times this. It must hold judge_worker_batch_size judgements of up to the judge's retry budget each, plus 15 s for the rest of the work (judge_retry_budget_seconds)."
  type        = number
  default     = 90

  validation {
    condition     = var.judge_worker_timeout_seconds >= 10 && var.judge_worker_timeout_seconds <= 900
    error_message = "judge_worker_timeout_seconds must be between 10 and 900."
  }
}

variable "anchor_export_timeout_seconds" {
  description = "Timeout of the anchor-export function. One invocation runs the anchor rounds of one schedule period (two, 30 s apart, with the default 30 s interval), each sealing for up to min(anchor_interval_seconds / 2, 120) seconds; the plan refuses a timeout that cannot hold them plus 60 s for the rest (anchor.tf)."
  type        = number
  default     = 300

  validation {
    condition     = var.anchor_export_timeout_seconds >= 10 && var.anchor_export_timeout_seconds <= 900
    error_message = "anchor_export_timeout_seconds must be between 10 and 900."
  }
}

variable "notifier_timeout_seconds" {
  description = "Timeout of the notifier function. One invocation attempts its batch's deliveries concurrently, each webhook POST cut at 10 s. The notify queue's visibility timeout is 6 times this."
  type        = number
  default     = 30

  validation {
    condition     = var.notifier_timeout_seconds >= 10 && var.notifier_timeout_seconds <= 900
    error_message = "notifier_timeout_seconds must be between 10 and 900."
  }
}

variable "reserved_concurrency" {
  description = "Optional reserved concurrency per function name (caps PostgreSQL connections). Unset functions use the unreserved pool. New accounts with a low concurrency quota cannot reserve any."
  type        = map(number)
  default     = {}

  validation {
    condition = alltrue([
      for name, n in var.reserved_concurrency :
      contains(["clearance-api", "jwks", "judge-worker", "anchor-export", "notifier"], name) && n >= 0
    ])
    error_message = "reserved_concurrency keys must be function names and values >= 0."
  }
}

variable "enable_xray_tracing" {
  description = "Active X-Ray tracing on every function."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the functions', API access and VPC flow log groups, in days."
  type        = number
  default     = 90

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653)."
  }
}

variable "rust_log" {
  description = "RUST_LOG filter of every function (logs are JSON on stderr)."
  type        = string
  default     = "info"
}

# ---------------------------------------------------------------------------------------------------------------
# Vault settings passed to the functions (docs/configuration.md)
# ---------------------------------------------------------------------------------------------------------------

variable "signing_key_kid" {
  description = "VAULT_KEY_ID of the root signing key: the kid of generation \"1\" of signing_key_generations; a later generation G is <signing_key_kid>-<G>. It names the root in checkpoints, key certificates and the JWKS (and, with signing_mode = \"direct\", in token headers and receipts; delegated keys are <root kid>.d<period start>)."
  type        = string
  default     = "vault-key-001"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,64}$", var.signing_key_kid))
    error_message = "signing_key_kid must be 1-64 characters of letters, digits, '.', '_' or '-'."
  }
}

variable "signing_key_generations" {
  description = "Root signing key rotation: one KMS Ed25519 key per generation, oldest first. The last is the active root (VAULT_KMS_KEY_ID, kid signing_key_kid for \"1\", else <signing_key_kid>-<generation>); earlier ones are kept in KMS but no function may use them. To rotate, append a generation; the next anchor round records the new root and retires the old one in the key registry. Remove an old generation only after that round (docs/deploy.md, \"Signing modes and root key rotation\"). Keep \"1\" first while it exists: it is the key deployments made before generations existed."
  type        = list(string)
  default     = ["1"]

  validation {
    condition     = length(var.signing_key_generations) >= 1 && length(distinct(var.signing_key_generations)) == length(var.signing_key_generations) && alltrue([for g in var.signing_key_generations : can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$", g))])
    error_message = "signing_key_generations must list at least one generation, each once, each 1-16 letters, digits, '_' or '-' (starting with a letter or digit)."
  }
}

variable "signing_mode" {
  description = "Who signs approval tokens and receipts. direct (VAULT_SIGNER_BACKEND=aws_kms): the KMS root key, two kms:Sign calls per approval; the private key never leaves KMS. delegated (aws_kms_delegated): an Ed25519 key per key period, certified by the KMS root and sealed under the envelope key, signs in Lambda memory: no KMS call per approval, but a compromised instance holds a key that signs until its certificate's not_after. The root signs checkpoints and certificates in both. docs/deploy.md, \"Signing modes and root key rotation\"."
  type        = string
  default     = "direct"

  validation {
    condition     = contains(["direct", "delegated"], var.signing_mode)
    error_message = "signing_mode must be direct or delegated."
  }
}

variable "signing_key_period_seconds" {
  description = "VAULT_SIGNING_KEY_PERIOD_SECONDS (signing_mode = \"delegated\"): each delegated key signs for one period of this length, aligned to the Unix epoch; its private half lives in the functions' memory that long. Each function opens each period's key once (one kms:Decrypt per instance per period)."
  type        = number
  default     = 3600

  validation {
    condition     = var.signing_key_period_seconds >= 10 && floor(var.signing_key_period_seconds) == var.signing_key_period_seconds
    error_message = "signing_key_period_seconds must be a whole number of at least 10."
  }
}

variable "signing_key_publish_ahead_seconds" {
  description = "VAULT_SIGNING_KEY_PUBLISH_AHEAD_SECONDS (signing_mode = \"delegated\"): the anchor round issues a period's key this long before the period starts, so it is in the JWKS before it signs. At least 330: the JWKS is cached for up to 300 s (its Cache-Control max-age) on top of the jwks function's registry listing, up to 30 s old, so a verifier may not see a new key for 330 s after it is issued. The plan also wants it to cover one anchor interval (rounds issue keys) on top, and to be shorter than the period."
  type        = number
  default     = 600

  validation {
    condition     = var.signing_key_publish_ahead_seconds >= 330 && floor(var.signing_key_publish_ahead_seconds) == var.signing_key_publish_ahead_seconds
    error_message = "signing_key_publish_ahead_seconds must be a whole number of at least 330: the JWKS max-age (300 s) plus the age of the jwks function's registry listing (30 s)."
  }
}

variable "signing_key_overlap_seconds" {
  description = "VAULT_SIGNING_KEY_OVERLAP_SECONDS (signing_mode = \"delegated\"): each delegated key's certificate covers its period widened by this much on both sides, so a record timestamped just before a period boundary and signed just after still verifies. Below half the period."
  type        = number
  default     = 60

  validation {
    condition     = var.signing_key_overlap_seconds >= 0 && floor(var.signing_key_overlap_seconds) == var.signing_key_overlap_seconds
    error_message = "signing_key_overlap_seconds must be a whole number >= 0."
  }
}

variable "jwt_ttl_seconds" {
  description = "VAULT_JWT_TTL: approval token lifetime in seconds."
  type        = number
  default     = 300

  validation {
    condition     = var.jwt_ttl_seconds >= 1 && var.jwt_ttl_seconds <= 86400
    error_message = "jwt_ttl_seconds must be between 1 and 86400."
  }
}

variable "mint_max_age_seconds" {
  description = "VAULT_MINT_MAX_AGE_SECONDS: /mint-token re-mints a rules approval for at most this long after the root approval."
  type        = number
  default     = 3600

  validation {
    condition     = var.mint_max_age_seconds >= 1 && var.mint_max_age_seconds <= 31536000
    error_message = "mint_max_age_seconds must be between 1 and 31536000."
  }
}

variable "jwt_issuer" {
  description = "VAULT_JWT_ISSUER: the iss claim."
  type        = string
  default     = "alcv-vault"
}

variable "jwt_audience" {
  description = "VAULT_JWT_AUDIENCE: the aud claim."
  type        = string
  default     = "ledgix-sdk"
}

variable "rate_limit_rps" {
  description = "VAULT_RATE_LIMIT_RPS: per-API-key refill per second; 0 disables the vault's own rate limit."
  type        = number
  default     = 20

  validation {
    condition     = var.rate_limit_rps >= 0 && floor(var.rate_limit_rps) == var.rate_limit_rps
    error_message = "rate_limit_rps must be a whole number >= 0."
  }
}

variable "rate_limit_burst" {
  description = "VAULT_RATE_LIMIT_BURST: per-API-key bucket size."
  type        = number
  default     = 40

  validation {
    condition     = var.rate_limit_burst >= 1 && floor(var.rate_limit_burst) == var.rate_limit_burst
    error_message = "rate_limit_burst must be a whole number >= 1."
  }
}

variable "rate_limit_ttl_seconds" {
  description = "VAULT_RATE_LIMIT_TTL_SECONDS: TTL of idle rate-limit buckets in DynamoDB."
  type        = number
  default     = 180

  validation {
    condition     = var.rate_limit_ttl_seconds >= 1
    error_message = "rate_limit_ttl_seconds must be >= 1."
  }
}

variable "public_url" {
  description = "VAULT_PUBLIC_URL on the functions that build notifications (clearance-api, judge-worker, anchor-export): the API's public base URL (e.g. https://vault.example.com, or the api_url output), so webhook and Slack notifications link to the reviewer page at <url>/review. Null: notifications carry no link."
  type        = string
  default     = null

  validation {
    condition     = var.public_url == null || can(regex("^https://[^/?#@]+(/[^?#]*)?$", var.public_url))
    error_message = "public_url must be an https URL without query, fragment or credentials (e.g. https://vault.example.com)."
  }
}

variable "email_identities" {
  description = "VAULT_EMAIL_FROM_IDENTITIES: the SES identities (email.tf) tenants' email notifications may be sent from: plain addresses (alerts@example.com) and/or domains (alerts.example.com), lower-case, each once. Set on clearance-api (checks `from` on PUT /notification-settings), judge-worker, anchor-export and the notifier (checks it again when sending); the notifier may ses:SendEmail from exactly these. A domain is verified once its DKIM records (output email_dkim_records) are published, an address once the link SES mails to it is followed. Empty: no email (the SES transport refuses it)."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([for identity in var.email_identities : can(regex(
      "^([a-z0-9_%+-]+(\\.[a-z0-9_%+-]+)*@)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", identity)) && length(identity) <= 253
    ]) && length(distinct(var.email_identities)) == length(var.email_identities)
    error_message = "email_identities must hold plain email addresses (alerts@example.com) or domain names (alerts.example.com), lower-case, each once."
  }
}

variable "cors_allowed_origin" {
  description = "VAULT_CORS_ALLOWED_ORIGIN: the one origin allowed to read responses cross-origin (e.g. https://console.example.com). Null: no CORS."
  type        = string
  default     = null

  validation {
    condition     = var.cors_allowed_origin == null || can(regex("^https?://[^/]+$", var.cors_allowed_origin))
    error_message = "cors_allowed_origin must be an origin such as https://console.example.com (scheme and host, no path)."
  }
}

variable "allow_stub_judge" {
  description = "VAULT_ALLOW_STUB_JUDGE: enable the deterministic development judge (always asks a human). Only for trials; set on clearance-api and judge-worker when true. judge_backend = \"stub\" requires it."
  type        = bool
  default     = false
}

variable "judge_queue_fifo_group_shards" {
  description = "VAULT_CLEARANCE_SQS_FIFO_GROUP_SHARDS: message group = <tenant>#<hash(session) mod shards>."
  type        = number
  default     = 32

  validation {
    condition     = var.judge_queue_fifo_group_shards >= 1 && var.judge_queue_fifo_group_shards <= 1024
    error_message = "judge_queue_fifo_group_shards must be between 1 and 1024."
  }
}

variable "anchor_interval_seconds" {
  description = "The anchor interval: how often new ledger events are sealed into signed checkpoints, in seconds; passed as VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS (the checkpoints' mmd_seconds, the maximum merge delay). 30, 60 or a whole number of minutes. EventBridge Scheduler runs at most once a minute, so a 30 s interval invokes anchor-export every minute for two rounds 30 s apart (VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS); longer intervals invoke it once per interval."
  type        = number
  default     = 30

  validation {
    condition = (var.anchor_interval_seconds >= 30 && var.anchor_interval_seconds <= 86400
      && floor(var.anchor_interval_seconds) == var.anchor_interval_seconds
    && (60 % var.anchor_interval_seconds == 0 || var.anchor_interval_seconds % 60 == 0))
    error_message = "anchor_interval_seconds must be 30, 60 or a whole number of minutes in seconds (120, 300, ...), at most 86400: Scheduler runs whole minutes, and a shorter interval must divide the minute."
  }
}

variable "anchor_concurrency" {
  description = "VAULT_LEDGER_ANCHOR_CONCURRENCY: tenants an anchor round seals at once, so one busy or slow tenant does not hold up the rest. Each holds up to tenant_db_max_open_conns connections to its database from the anchor-export instance."
  type        = number
  default     = 8

  validation {
    condition     = var.anchor_concurrency >= 1 && var.anchor_concurrency <= 64 && floor(var.anchor_concurrency) == var.anchor_concurrency
    error_message = "anchor_concurrency must be a whole number between 1 and 64."
  }
}

variable "anchor_batch_size" {
  description = "VAULT_LEDGER_ANCHOR_BACKFILL_BATCH_SIZE: most events sequenced per tenant per anchor round."
  type        = number
  default     = 500

  validation {
    condition     = var.anchor_batch_size >= 1 && var.anchor_batch_size <= 100000
    error_message = "anchor_batch_size must be between 1 and 100000."
  }
}

variable "anchor_prefix" {
  description = "VAULT_LEDGER_ANCHOR_PREFIX: object key prefix in the anchor bucket (objects are <prefix>/<tenant>/...)."
  type        = string
  default     = "ledgix"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*$", var.anchor_prefix))
    error_message = "anchor_prefix must be letters, digits, '.', '_' or '-', without slashes."
  }
}

variable "ledger_log_origin" {
  description = "VAULT_LEDGER_LOG_ORIGIN: C2SP checkpoint origin prefix (<origin>/<tenant_id>). Use a name you control, e.g. vault.example.com."
  type        = string
  default     = "ledgix-vault"
}

variable "tenant_db_sslmode" {
  description = "VAULT_TENANT_DB_SSLMODE for tenant databases. verify-full (verify-ca is held to it) checks the chain and host name against db_ca_bundle_path (on RDS: the RDS global bundle packaged with the functions), else the web PKI roots, which RDS certificates do not chain to."
  type        = string
  default     = "require"

  validation {
    condition     = contains(["disable", "prefer", "require", "verify-ca", "verify-full"], var.tenant_db_sslmode)
    error_message = "tenant_db_sslmode must be disable, prefer, require, verify-ca or verify-full."
  }
}

variable "control_plane_db_sslmode" {
  description = "VAULT_CONTROL_PLANE_DB_SSLMODE for the control-plane database and tenant provisioning (see tenant_db_sslmode)."
  type        = string
  default     = "require"

  validation {
    condition     = contains(["disable", "prefer", "require", "verify-ca", "verify-full"], var.control_plane_db_sslmode)
    error_message = "control_plane_db_sslmode must be disable, prefer, require, verify-ca or verify-full."
  }
}

variable "db_ca_bundle_path" {
  description = "VAULT_DB_CA_BUNDLE: path inside the function package of the PEM CA bundle verify-full trusts, e.g. /var/task/rds-ca-bundle.pem when scripts/package.sh ran with LEDGIX_DB_CA_BUNDLE=global-bundle.pem (docs/deploy.md). Null: the web PKI roots."
  type        = string
  default     = null

  validation {
    condition     = var.db_ca_bundle_path == null || can(regex("^/", var.db_ca_bundle_path))
    error_message = "db_ca_bundle_path must be an absolute path (the package is at /var/task)."
  }
}

variable "control_plane_db_max_open_conns" {
  description = "VAULT_CONTROL_PLANE_DB_MAX_OPEN_CONNS per function instance. A Lambda instance serves one request at a time, so a small pool keeps total connections (instances x pool) under the database's limit."
  type        = number
  default     = 2

  validation {
    condition     = var.control_plane_db_max_open_conns >= 1 && var.control_plane_db_max_open_conns <= 100
    error_message = "control_plane_db_max_open_conns must be between 1 and 100."
  }
}

variable "tenant_db_max_open_conns" {
  description = "VAULT_TENANT_DB_MAX_OPEN_CONNS per tenant per function instance (see control_plane_db_max_open_conns)."
  type        = number
  default     = 2

  validation {
    condition     = var.tenant_db_max_open_conns >= 1 && var.tenant_db_max_open_conns <= 100
    error_message = "tenant_db_max_open_conns must be between 1 and 100."
  }
}

variable "tenant_secret_cache_ttl_seconds" {
  description = "VAULT_TENANT_SECRET_CACHE_TTL_SECONDS: how long tenant database credentials are used before the secret is read again."
  type        = number
  default     = 300

  validation {
    condition     = var.tenant_secret_cache_ttl_seconds >= 0
    error_message = "tenant_secret_cache_ttl_seconds must be >= 0."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Policy judge (docs/judge.md; judge.tf)
# ---------------------------------------------------------------------------------------------------------------

variable "judge_backend" {
  description = "VAULT_JUDGE_BACKEND on clearance-api and judge-worker: the model that decides plain-English policies. bedrock: Amazon Bedrock through a VPC endpoint, with the role's IAM permission (no secret); openai: an OpenAI-compatible endpoint; http: a service-to-service judge (both need judge_url, egress to it and VAULT_JUDGE_API_KEY in the bootstrap secret); stub: always asks a human (development only; needs allow_stub_judge)."
  type        = string
  default     = "bedrock"

  validation {
    condition     = contains(["bedrock", "openai", "http", "stub"], var.judge_backend)
    error_message = "judge_backend must be bedrock, openai, http or stub."
  }
}

variable "judge_model" {
  description = "VAULT_JUDGE_MODEL: the model that judges. bedrock: a foundation model id or a cross-Region inference profile id (us.amazon.nova-pro-v1:0); null means amazon.nova-pro-v1:0. openai: the endpoint's model name (required). Ignored by http and stub."
  type        = string
  default     = null

  validation {
    condition     = var.judge_model == null || try(can(regex("^\\S+$", var.judge_model)) && length(var.judge_model) <= 2048, false)
    error_message = "judge_model must be a model id without spaces."
  }
}

variable "embedding_model" {
  description = "VAULT_EMBEDDING_MODEL: the model that embeds long policies for retrieval. bedrock: a model id as judge_model; null means amazon.titan-embed-text-v2:0. openai: the endpoint's embedding model name, or null for none (long policies then go to the model whole). Ignored by http and stub."
  type        = string
  default     = null

  validation {
    condition     = var.embedding_model == null || try(can(regex("^\\S+$", var.embedding_model)) && length(var.embedding_model) <= 2048, false)
    error_message = "embedding_model must be a model id without spaces."
  }
}

variable "judge_url" {
  description = "VAULT_JUDGE_URL on judge-worker: the OpenAI-compatible base URL (openai) or the HTTP judge's URL (http); required by both, ignored by bedrock and stub. HTTPS only: the API key travels with every call. The functions have no internet route: provide one (docs/deploy.md, \"Policy judge\") and judge_egress_cidr_blocks."
  type        = string
  default     = null

  validation {
    condition     = var.judge_url == null || can(regex("^https://[^\\s/]+(/\\S*)?$", var.judge_url))
    error_message = "judge_url must be an https:// URL."
  }
}

variable "judge_egress_cidr_blocks" {
  description = "With judge_backend openai or http: CIDR blocks the in-VPC functions may reach on port 443, i.e. where the judge_url host is reached (0.0.0.0/0 through a NAT gateway you add, or the addresses of a PrivateLink endpoint). Routing is yours to set up (outputs network); the functions' security group allows nothing else outside the VPC endpoints and the database."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.judge_egress_cidr_blocks : can(cidrhost(cidr, 0))])
    error_message = "judge_egress_cidr_blocks must be IPv4 CIDR blocks."
  }
}

variable "judge_timeout_seconds" {
  description = "VAULT_JUDGE_TIMEOUT_SECONDS: how long one model call may take before it counts as timed out (and is retried within the retry budget)."
  type        = number
  default     = 20

  validation {
    condition     = var.judge_timeout_seconds >= 1 && var.judge_timeout_seconds <= 300 && floor(var.judge_timeout_seconds) == var.judge_timeout_seconds
    error_message = "judge_timeout_seconds must be a whole number between 1 and 300."
  }
}

variable "judge_retry_budget_seconds" {
  description = "VAULT_JUDGE_RETRY_BUDGET_SECONDS: how long the model calls of one judgement, retries of throttled or timed-out calls included, may take before the request goes to human review (no call outlives it). Null: what fits the worker, at most 60 s: (judge_worker_timeout_seconds - 15) / judge_worker_batch_size. A set value must fit too, and be at least judge_timeout_seconds."
  type        = number
  default     = null

  validation {
    condition     = var.judge_retry_budget_seconds == null || try(var.judge_retry_budget_seconds >= 1 && var.judge_retry_budget_seconds <= 900 && floor(var.judge_retry_budget_seconds) == var.judge_retry_budget_seconds, false)
    error_message = "judge_retry_budget_seconds must be a whole number between 1 and 900, or null."
  }
}

variable "judge_tenant_concurrency" {
  description = "VAULT_JUDGE_TENANT_CONCURRENCY: model calls one tenant may have in flight in one judge-worker instance."
  type        = number
  default     = 4

  validation {
    condition     = var.judge_tenant_concurrency >= 1 && var.judge_tenant_concurrency <= 64 && floor(var.judge_tenant_concurrency) == var.judge_tenant_concurrency
    error_message = "judge_tenant_concurrency must be a whole number between 1 and 64."
  }
}

variable "judge_policy_budget_chars" {
  description = "VAULT_JUDGE_POLICY_BUDGET_CHARS: a policy longer than this (description and rules, in characters) is cut into chunks, embedded with embedding_model and retrieved from; shorter ones go to the model whole."
  type        = number
  default     = 4000

  validation {
    condition     = var.judge_policy_budget_chars >= 500 && var.judge_policy_budget_chars <= 200000 && floor(var.judge_policy_budget_chars) == var.judge_policy_budget_chars
    error_message = "judge_policy_budget_chars must be a whole number between 500 and 200000."
  }
}

variable "judge_top_k" {
  description = "VAULT_JUDGE_TOP_K: policy chunks retrieved per judgement of a long policy."
  type        = number
  default     = 4

  validation {
    condition     = var.judge_top_k >= 1 && var.judge_top_k <= 32 && floor(var.judge_top_k) == var.judge_top_k
    error_message = "judge_top_k must be a whole number between 1 and 32."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------------------------

variable "api_throttling_rate_limit" {
  description = "HTTP API stage default steady-state requests per second, for the whole stage: it bounds what reaches clearance-api (and its key lookups) from unauthenticated callers, where ledgix dev limits per client address. The vault's per-key limit applies after it."
  type        = number
  default     = 500

  validation {
    condition     = var.api_throttling_rate_limit > 0
    error_message = "api_throttling_rate_limit must be > 0."
  }
}

variable "admin_auth" {
  description = "VAULT_ADMIN_AUTH on clearance-api. iam: /admin/* is an AWS_IAM (SigV4) route and the vault admits only IAM-authorised calls (grant execute-api:Invoke with the admin_invoke_policy_arn output); header: the X-Admin-API-Key header on the public route; off: no admin routes (manage tenants elsewhere)."
  type        = string
  default     = "iam"

  validation {
    condition     = contains(["iam", "header", "off"], var.admin_auth)
    error_message = "admin_auth must be iam, header or off."
  }
}

variable "api_throttling_burst_limit" {
  description = "HTTP API stage default burst."
  type        = number
  default     = 1000

  validation {
    condition     = var.api_throttling_burst_limit > 0 && floor(var.api_throttling_burst_limit) == var.api_throttling_burst_limit
    error_message = "api_throttling_burst_limit must be a whole number > 0."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# State: DynamoDB, SQS, S3, KMS, Secrets Manager
# ---------------------------------------------------------------------------------------------------------------

variable "dynamodb_table_name" {
  description = "VAULT_DYNAMODB_TABLE: the hot key-value table (keys pk/sk, TTL expires_at). The code's default is ledgix-hot."
  type        = string
  default     = "ledgix-hot"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,255}$", var.dynamodb_table_name))
    error_message = "dynamodb_table_name must be 3-255 characters of letters, digits, '_', '-' or '.'."
  }
}

variable "judge_queue_max_receive_count" {
  description = "Deliveries of a judge message before SQS moves it to the dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.judge_queue_max_receive_count >= 1 && var.judge_queue_max_receive_count <= 1000
    error_message = "judge_queue_max_receive_count must be between 1 and 1000."
  }
}

variable "judge_queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the judge queue. Null: 6 x judge_worker_timeout_seconds (AWS's guidance for Lambda event sources); a set value must be at least that."
  type        = number
  default     = null

  validation {
    condition     = var.judge_queue_visibility_timeout_seconds == null || try(var.judge_queue_visibility_timeout_seconds >= 0 && var.judge_queue_visibility_timeout_seconds <= 43200, false)
    error_message = "judge_queue_visibility_timeout_seconds must be between 0 and 43200 (SQS's limit)."
  }
}

variable "judge_worker_batch_size" {
  description = "Messages per judge-worker invocation (FIFO queues allow at most 10). The worker judges them one after the other, so each one waits for the model answers of those before it, and the batch must fit judge_worker_timeout_seconds (see judge_retry_budget_seconds)."
  type        = number
  default     = 1

  validation {
    condition     = var.judge_worker_batch_size >= 1 && var.judge_worker_batch_size <= 10
    error_message = "judge_worker_batch_size must be between 1 and 10 (the SQS FIFO limit)."
  }
}

variable "judge_worker_max_concurrency" {
  description = "Optional cap on concurrent judge-worker invocations from the queue (2-1000). Null: no cap."
  type        = number
  default     = null

  validation {
    condition     = var.judge_worker_max_concurrency == null || try(var.judge_worker_max_concurrency >= 2 && var.judge_worker_max_concurrency <= 1000, false)
    error_message = "judge_worker_max_concurrency must be between 2 and 1000, or null."
  }
}

variable "notifier_batch_size" {
  description = "Notification jobs per notifier invocation (1-10). The notifier attempts them concurrently, so a slow receiver does not hold up the others; a job whose store or queue work failed is reported and redelivered alone (ReportBatchItemFailures)."
  type        = number
  default     = 10

  validation {
    condition     = var.notifier_batch_size >= 1 && var.notifier_batch_size <= 10 && floor(var.notifier_batch_size) == var.notifier_batch_size
    error_message = "notifier_batch_size must be a whole number between 1 and 10."
  }
}

variable "notifier_max_concurrency" {
  description = "Optional cap on concurrent notifier invocations from the notify queue (2-1000), e.g. to spare receivers a burst. Null: no cap."
  type        = number
  default     = null

  validation {
    condition     = var.notifier_max_concurrency == null || try(var.notifier_max_concurrency >= 2 && var.notifier_max_concurrency <= 1000, false)
    error_message = "notifier_max_concurrency must be between 2 and 1000, or null."
  }
}

variable "anchor_bucket_name" {
  description = "Name of the anchor bucket. Null: <prefix>-anchors-<account id>-<region> (bucket names are global)."
  type        = string
  default     = null

  validation {
    condition     = var.anchor_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.anchor_bucket_name))
    error_message = "anchor_bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, '.' and '-')."
  }
}

variable "anchor_object_lock_enabled" {
  description = "Create the anchor bucket with S3 Object Lock and a default retention (WORM anchors), and set VAULT_LEDGER_REQUIRE_OBJECT_LOCK. Decide before the first apply: the bucket is created with it."
  type        = bool
  default     = false
}

variable "anchor_object_lock_mode" {
  description = "Default retention mode when object lock is on: GOVERNANCE (privileged users can remove it) or COMPLIANCE (nobody can, not even root, until it expires)."
  type        = string
  default     = "GOVERNANCE"

  validation {
    condition     = contains(["GOVERNANCE", "COMPLIANCE"], var.anchor_object_lock_mode)
    error_message = "anchor_object_lock_mode must be GOVERNANCE or COMPLIANCE."
  }
}

variable "anchor_object_lock_days" {
  description = "Default retention in days when object lock is on."
  type        = number
  default     = 365

  validation {
    condition     = var.anchor_object_lock_days >= 1 && var.anchor_object_lock_days <= 36500
    error_message = "anchor_object_lock_days must be between 1 and 36500."
  }
}

variable "anchor_noncurrent_transition_days" {
  description = "Days after which noncurrent versions of anchor objects move to STANDARD_IA. They are never expired: the ledger records export version ids."
  type        = number
  default     = 30

  validation {
    condition     = var.anchor_noncurrent_transition_days >= 30
    error_message = "anchor_noncurrent_transition_days must be >= 30 (S3's minimum for STANDARD_IA)."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period before a destroyed KMS key is deleted (7-30 days); the key can be restored until then."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "secret_recovery_window_days" {
  description = "Recovery window of the bootstrap secret on destroy (0 deletes at once; otherwise 7-30 days)."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or between 7 and 30."
  }
}

variable "deletion_protection" {
  description = "Deletion protection on the Aurora cluster and the DynamoDB table. Turn off (and apply) before terraform destroy."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC (private subnets only: no internet gateway, no NAT)."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 24
    error_message = "vpc_cidr must be an IPv4 CIDR block of /24 or larger."
  }
}

variable "availability_zone_count" {
  description = "Number of availability zones (one private subnet each). Aurora needs at least 2; every interface endpoint is billed per AZ."
  type        = number
  default     = 2

  validation {
    condition     = var.availability_zone_count >= 2 && var.availability_zone_count <= 4
    error_message = "availability_zone_count must be between 2 and 4."
  }
}

variable "interface_endpoint_services" {
  description = "AWS services reached through interface VPC endpoints from the in-VPC functions. The code calls secretsmanager, kms and sqs; add logs only if something in the VPC calls the CloudWatch Logs API (Lambda ships stdout itself). S3 and DynamoDB always use free gateway endpoints."
  type        = list(string)
  default     = ["secretsmanager", "kms", "sqs"]

  validation {
    condition     = alltrue([for s in var.interface_endpoint_services : contains(["secretsmanager", "kms", "sqs", "logs", "sts", "monitoring", "xray"], s)]) && length(distinct(var.interface_endpoint_services)) == length(var.interface_endpoint_services)
    error_message = "interface_endpoint_services may hold secretsmanager, kms, sqs, logs, sts, monitoring and xray, each once."
  }
}

variable "enable_vpc_flow_logs" {
  description = "Record rejected and accepted VPC traffic to CloudWatch Logs."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------------------------------

variable "create_database" {
  description = "Create an Aurora PostgreSQL Serverless v2 cluster. False: bring your own PostgreSQL reachable from the VPC (put its DATABASE_URL in the bootstrap secret; allow the lambda security group in)."
  type        = bool
  default     = true
}

variable "existing_database_cidr_blocks" {
  description = "With create_database = false: CIDR blocks of your PostgreSQL outside this VPC; the functions may open port 5432 to them (routing via peering or a transit gateway is yours to set up)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.existing_database_cidr_blocks : can(cidrhost(cidr, 0))])
    error_message = "existing_database_cidr_blocks must be IPv4 CIDR blocks."
  }
}

variable "aurora_engine_version" {
  description = "Aurora PostgreSQL engine version (16.x: the bootstrap SQL in docs/deploy.md relies on PostgreSQL 16's createrole_self_grant)."
  type        = string
  default     = "16.6"

  validation {
    condition     = can(regex("^1[6-9]\\.[0-9]+$", var.aurora_engine_version))
    error_message = "aurora_engine_version must be 16.x or later, e.g. 16.6."
  }
}

variable "aurora_min_capacity" {
  description = "Serverless v2 minimum ACUs. 0 lets the cluster pause when idle (first request after a pause waits ~15 s and may fail its 5 s connect timeout)."
  type        = number
  default     = 0.5

  validation {
    condition     = var.aurora_min_capacity >= 0 && var.aurora_min_capacity <= 256 && floor(var.aurora_min_capacity * 2) == var.aurora_min_capacity * 2
    error_message = "aurora_min_capacity must be between 0 and 256 in steps of 0.5."
  }
}

variable "aurora_max_capacity" {
  description = "Serverless v2 maximum ACUs (also sets max_connections)."
  type        = number
  default     = 8

  validation {
    condition     = var.aurora_max_capacity >= 1 && var.aurora_max_capacity <= 256 && floor(var.aurora_max_capacity * 2) == var.aurora_max_capacity * 2
    error_message = "aurora_max_capacity must be between 1 and 256 in steps of 0.5."
  }
}

variable "aurora_seconds_until_auto_pause" {
  description = "Idle seconds before the cluster pauses, when aurora_min_capacity is 0."
  type        = number
  default     = 3600

  validation {
    condition     = var.aurora_seconds_until_auto_pause >= 300 && var.aurora_seconds_until_auto_pause <= 86400
    error_message = "aurora_seconds_until_auto_pause must be between 300 and 86400."
  }
}

variable "aurora_instance_count" {
  description = "Serverless v2 instances in the cluster (1 writer + readers in other AZs for failover)."
  type        = number
  default     = 1

  validation {
    condition     = var.aurora_instance_count >= 1 && var.aurora_instance_count <= 4
    error_message = "aurora_instance_count must be between 1 and 4."
  }
}

variable "aurora_backup_retention_days" {
  description = "Days of automated backups (point-in-time restore)."
  type        = number
  default     = 7

  validation {
    condition     = var.aurora_backup_retention_days >= 1 && var.aurora_backup_retention_days <= 35
    error_message = "aurora_backup_retention_days must be between 1 and 35."
  }
}

variable "aurora_require_tls" {
  description = "Set rds.force_ssl = 1: the server refuses connections without TLS. Every connection the vault makes (control plane, tenant provisioning, tenant pools) uses TLS unless an sslmode is disable."
  type        = bool
  default     = true
}

variable "enable_data_api" {
  description = "RDS Data API on the cluster, so the operator can run the bootstrap SQL with `aws rds-data execute-statement` without a host in the VPC."
  type        = bool
  default     = true
}

variable "create_db_proxy" {
  description = "Create an RDS Proxy for the control-plane role. Off by default: the code writes the DATABASE_URL host into every tenant's secret, and the proxy cannot authenticate tenant roles it has no secret for, so DATABASE_URL must point at the cluster endpoint today (see README)."
  type        = bool
  default     = false
}

variable "db_proxy_auth_secret_arn" {
  description = "Secrets Manager secret (username/password JSON) of the control-plane role, for the RDS Proxy. Required when create_db_proxy is true."
  type        = string
  default     = null

  validation {
    condition     = var.db_proxy_auth_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.db_proxy_auth_secret_arn))
    error_message = "db_proxy_auth_secret_arn must be a Secrets Manager secret ARN."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Observability
# ---------------------------------------------------------------------------------------------------------------

variable "alarm_sns_topic_arn" {
  description = "Existing SNS topic for alarm notifications. Null: a topic is created (subscribe to it with alarm_email)."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_sns_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:", var.alarm_sns_topic_arn))
    error_message = "alarm_sns_topic_arn must be an SNS topic ARN."
  }
}

variable "alarm_email" {
  description = "Optional e-mail address subscribed to the created alarm topic (AWS sends a confirmation mail)."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an e-mail address."
  }
}

variable "anchor_stalled_alarm_minutes" {
  description = "Alarm (anchor-stalled) when anchor-export has not completed an invocation without error for this many minutes. At least two schedule periods (2 x max(60, anchor_interval_seconds)), so one late or failed invocation alone does not fire it."
  type        = number
  default     = 15

  validation {
    condition     = var.anchor_stalled_alarm_minutes >= 2 && var.anchor_stalled_alarm_minutes <= 10080 && floor(var.anchor_stalled_alarm_minutes) == var.anchor_stalled_alarm_minutes
    error_message = "anchor_stalled_alarm_minutes must be a whole number between 2 and 10080 (CloudWatch evaluates an alarm over at most seven days)."
  }
}

variable "api_5xx_alarm_threshold" {
  description = "Alarm when the HTTP API answers more than this many 5xx in 5 minutes."
  type        = number
  default     = 5

  validation {
    condition     = var.api_5xx_alarm_threshold >= 0
    error_message = "api_5xx_alarm_threshold must be >= 0."
  }
}
