# The policy judge (docs/judge.md): which backend judge-worker asks, with which models and within which limits,
# and the checks that involve several inputs (in Terraform 1.7 a variable's validation sees only that variable).
# environment.tf passes the settings to the functions, iam.tf grants the Bedrock models and main.tf adds the
# bedrock-runtime interface endpoint.

locals {
  # The bedrock backend's models when judge_model / embedding_model are null. They are the code's defaults too,
  # but Terraform sets them explicitly because iam.tf grants exactly the models judge-worker is told to use. Keep
  # this map literal: tests/deploy reads it.
  bedrock_default_models = {
    judge_model     = "amazon.nova-pro-v1:0"
    embedding_model = "amazon.titan-embed-text-v2:0"
  }

  # What VAULT_JUDGE_MODEL / VAULT_EMBEDDING_MODEL are set to (null: not set). http and stub use no model ids.
  judge_model = (var.judge_backend == "bedrock" ? coalesce(var.judge_model, local.bedrock_default_models.judge_model)
  : var.judge_backend == "openai" ? var.judge_model : null)
  embedding_model = (var.judge_backend == "bedrock" ? coalesce(var.embedding_model, local.bedrock_default_models.embedding_model)
  : var.judge_backend == "openai" ? var.embedding_model : null)

  # Cross-Region inference profile ids are <geography>.<foundation model id>, e.g. us.amazon.nova-pro-v1:0. Keep
  # this list literal: tests/deploy reads it.
  bedrock_profile_geographies = ["us", "us-gov", "eu", "apac", "jp", "au", "ca", "global"]
  bedrock_model_id_pattern    = "^((us|us-gov|eu|apac|jp|au|ca|global)\\.)?[a-z0-9-]+\\.[a-zA-Z0-9._:-]+$"

  # The Bedrock models judge-worker calls: model id => whether it is an inference profile, and the foundation
  # model behind it (the id itself for a foundation model). Empty unless judge_backend = "bedrock".
  bedrock_models = {
    for id in(var.judge_backend == "bedrock" ? distinct([local.judge_model, local.embedding_model]) : []) : id => {
      profile          = contains(local.bedrock_profile_geographies, split(".", id)[0])
      foundation_model = contains(local.bedrock_profile_geographies, split(".", id)[0]) ? join(".", slice(split(".", id), 1, length(split(".", id)))) : id
    }
  }

  # judge-worker handles its batch one message at a time, and no model call of a job outlives the job's retry
  # budget (shared/core/src/service/judging.rs: each call is cut at the budget's end), so a batch spends at most
  # batch size x budget on the model. The rest of the function timeout is kept for the work around it: reading
  # the job, the decision's transaction, KMS signatures, the DynamoDB copies, a cold database pool.
  judge_worker_reserve_seconds = 15
  # VAULT_JUDGE_RETRY_BUDGET_SECONDS. Null input: what fits the worker's timeout, at most 60 s (the code's
  # default): a request the model cannot answer within a minute goes to a human rather than keep an agent waiting.
  judge_retry_budget_seconds = coalesce(
    var.judge_retry_budget_seconds,
    min(60, floor((var.judge_worker_timeout_seconds - local.judge_worker_reserve_seconds) / var.judge_worker_batch_size)),
  )
}

# Holds the judge settings (shown in the plan) and refuses combinations of inputs that cannot work.
resource "terraform_data" "judge" {
  input = {
    backend              = var.judge_backend
    judge_model          = local.judge_model
    embedding_model      = local.embedding_model
    judge_url            = contains(["openai", "http"], var.judge_backend) ? var.judge_url : null
    retry_budget_seconds = local.judge_retry_budget_seconds
  }

  lifecycle {
    precondition {
      condition     = var.judge_backend != "stub" || var.allow_stub_judge
      error_message = "judge_backend = \"stub\" (always asks a human; development only) also needs allow_stub_judge = true (VAULT_ALLOW_STUB_JUDGE)."
    }
    precondition {
      condition     = !contains(["openai", "http"], var.judge_backend) || var.judge_url != null
      error_message = "judge_backend = \"${var.judge_backend}\" needs judge_url (VAULT_JUDGE_URL): the OpenAI-compatible base URL or the HTTP judge's URL. Its API key goes in the bootstrap secret (docs/deploy.md, \"Policy judge\")."
    }
    precondition {
      condition     = var.judge_backend != "openai" || var.judge_model != null
      error_message = "judge_backend = \"openai\" needs judge_model: the endpoint's model name (there is no default for it)."
    }
    precondition {
      condition     = alltrue([for id in keys(local.bedrock_models) : can(regex(local.bedrock_model_id_pattern, id))])
      error_message = "With judge_backend = \"bedrock\", judge_model and embedding_model must be Bedrock model ids: a foundation model (amazon.nova-pro-v1:0) or a cross-Region inference profile (us.amazon.nova-pro-v1:0; geographies ${join(", ", local.bedrock_profile_geographies)})."
    }
    precondition {
      condition     = var.judge_worker_batch_size * local.judge_retry_budget_seconds + local.judge_worker_reserve_seconds <= var.judge_worker_timeout_seconds
      error_message = "judge-worker judges the messages of a batch one after the other: ${var.judge_worker_batch_size} (judge_worker_batch_size) x the ${local.judge_retry_budget_seconds} s retry budget + ${local.judge_worker_reserve_seconds} s for the rest must fit judge_worker_timeout_seconds (${var.judge_worker_timeout_seconds}). Raise the timeout, or lower judge_worker_batch_size or judge_retry_budget_seconds."
    }
    precondition {
      condition     = local.judge_retry_budget_seconds >= var.judge_timeout_seconds
      error_message = "The judge's retry budget (${local.judge_retry_budget_seconds} s${var.judge_retry_budget_seconds == null ? ", what fits judge_worker_timeout_seconds for judge_worker_batch_size messages" : ""}) is shorter than one model call may take (judge_timeout_seconds = ${var.judge_timeout_seconds}): raise judge_worker_timeout_seconds (at least ${var.judge_worker_batch_size * var.judge_timeout_seconds + local.judge_worker_reserve_seconds} s for this batch size) or lower judge_worker_batch_size."
    }
  }
}
