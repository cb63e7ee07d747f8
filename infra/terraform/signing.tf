# Signing (docs/deploy.md, "Signing modes and root key rotation"): which key signs what, the root key's generations,
# and the checks that involve several inputs (in Terraform 1.7 a variable's validation sees only that variable).
# environment.tf passes the settings to the functions, iam.tf grants exactly what each mode calls, modules/state
# creates one KMS key per generation.
#
# The key registry (items pk = signing-keys in the hot table) is the code's: every function that builds the signer
# lists it; anchor-export's key step, first in every anchor round, records the configured root (once), retires
# roots that are no longer configured, and with delegation issues each period's key ahead of its period.

locals {
  # VAULT_SIGNER_BACKEND per signing_mode. Keep this map literal: tests/deploy reads it.
  signer_backends = {
    direct    = "aws_kms"
    delegated = "aws_kms_delegated"
  }
  signer_backend    = local.signer_backends[var.signing_mode]
  delegated_signing = var.signing_mode == "delegated"

  # The root: the last generation. Generation "1" keeps signing_key_kid itself, so a deployment made before
  # generations keeps its kid (and its key: modules/state moves it to generation "1").
  signing_key_kids = {
    for generation in var.signing_key_generations :
    generation => generation == "1" ? var.signing_key_kid : "${var.signing_key_kid}-${generation}"
  }
  active_signing_generation = var.signing_key_generations[length(var.signing_key_generations) - 1]
  active_signing_key_kid    = local.signing_key_kids[local.active_signing_generation]

  # How long after a key is issued every verifier can see it: the jwks function re-lists the registry at most
  # every 30 s (shared/core/src/key_registry.rs, LISTING_MAX_AGE) and answers with Cache-Control max-age=300
  # (functions/jwks). Rounds issue keys, and they run once per anchor interval, so a key is issued up to one
  # interval after its publication time.
  jwks_visibility_seconds = 300 + 30
}

# Holds the signing settings (shown in the plan) and refuses combinations of inputs that cannot work.
resource "terraform_data" "signing" {
  input = {
    mode                   = var.signing_mode
    signer_backend         = local.signer_backend
    root_generation        = local.active_signing_generation
    root_kid               = local.active_signing_key_kid
    kept_generations       = var.signing_key_generations
    period_seconds         = local.delegated_signing ? var.signing_key_period_seconds : null
    publish_ahead_seconds  = local.delegated_signing ? var.signing_key_publish_ahead_seconds : null
    overlap_seconds        = local.delegated_signing ? var.signing_key_overlap_seconds : null
    delegated_kid_template = local.delegated_signing ? "${local.active_signing_key_kid}.d<period start>" : null
  }

  lifecycle {
    # As the code checks them (shared/core/src/keys.rs, KeySchedule::check), so a bad value fails the plan, not
    # the functions' cold starts.
    precondition {
      condition     = var.signing_key_overlap_seconds * 2 < var.signing_key_period_seconds
      error_message = "signing_key_overlap_seconds (${var.signing_key_overlap_seconds}) must be below half of signing_key_period_seconds (${var.signing_key_period_seconds})."
    }
    precondition {
      condition     = var.signing_key_publish_ahead_seconds < var.signing_key_period_seconds
      error_message = "signing_key_publish_ahead_seconds (${var.signing_key_publish_ahead_seconds}) must be shorter than signing_key_period_seconds (${var.signing_key_period_seconds}): only the current and the next period's keys are issued."
    }
    precondition {
      condition     = !local.delegated_signing || var.signing_key_publish_ahead_seconds >= var.anchor_interval_seconds + local.jwks_visibility_seconds
      error_message = "With signing_mode = \"delegated\", anchor rounds issue each period's key, one every anchor interval (${var.anchor_interval_seconds} s), and verifiers may see it ${local.jwks_visibility_seconds} s after that (JWKS max-age 300 s + registry listing 30 s): signing_key_publish_ahead_seconds (${var.signing_key_publish_ahead_seconds}) must be at least ${var.anchor_interval_seconds + local.jwks_visibility_seconds}, or a key could sign before every verifier can fetch it."
    }
    precondition {
      condition     = alltrue([for kid in values(local.signing_key_kids) : length(kid) <= 64])
      error_message = "The kid of every signing key generation (<signing_key_kid>-<generation>) must be at most 64 characters."
    }
  }
}
