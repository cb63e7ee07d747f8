# Three customer managed keys:
#   signing  - Ed25519 (ECC_NIST_EDWARDS25519, SIGN_VERIFY), one per generation (signing_key_generations): the last
#              is the root that signs checkpoints and key certificates (and, with signing_mode = "direct", approval
#              tokens and receipts). Never leaves KMS. Earlier generations are kept, unused, until removed.
#   envelope - symmetric: wraps the per-batch data keys of ledger payloads at rest (VAULT_ENVELOPE_KMS_KEY_ID).
#   platform - symmetric: encryption at rest of the stack's own resources (bootstrap secret, DynamoDB table,
#              anchor bucket, log groups, alarm topic, Aurora storage and Performance Insights).

locals {
  # AWS KMS's Ed25519 key spec (2025-11). The signer uses ED25519_SHA_512 with MessageType=RAW.
  # scripts/terraform_check.sh checks that aws_kms_key.signing uses this local and that it holds this literal.
  signing_key_spec = "ECC_NIST_EDWARDS25519"

  # The generation whose key is the root now: the last one listed.
  active_signing_generation = var.signing_key_generations[length(var.signing_key_generations) - 1]

  account_root = "arn:${var.partition}:iam::${var.account_id}:root"

  # Every key lets the account's IAM policies grant access (the default key policy, spelled out), so the function
  # roles' inline policies in ../../iam.tf are what decides who may use a key.
  account_admin_statement = {
    Sid       = "AccountIamPoliciesDecide"
    Effect    = "Allow"
    Principal = { AWS = local.account_root }
    Action    = "kms:*"
    Resource  = "*"
  }
}

# No automatic rotation: KMS rotates symmetric encryption keys only. Rotating an asymmetric signing key means a
# new key and a new kid: a new generation at the end of signing_key_generations (docs/deploy.md, "Signing modes and
# root key rotation"). The functions record each root in the key registry while it is active and retire it when
# it is no longer the configured one, so a key removed from the list later takes nothing with it that a verifier
# needs: its public key stays in the registry and in every proof bundle.
resource "aws_kms_key" "signing" {
  #checkov:skip=CKV_AWS_7:Asymmetric (SIGN_VERIFY) keys cannot have automatic rotation; see docs/deploy.md
  for_each = toset(var.signing_key_generations)

  description              = "${var.name_prefix} vault signing key (Ed25519): approval tokens, receipts, checkpoints${each.key == "1" ? "" : " (generation ${each.key})"}"
  customer_master_key_spec = local.signing_key_spec
  key_usage                = "SIGN_VERIFY"
  enable_key_rotation      = false
  deletion_window_in_days  = var.kms_deletion_window_days

  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.account_admin_statement]
  })
}

# Before generations, the one signing key was aws_kms_key.signing: it is generation "1", so an existing deployment
# keeps its key (and its kid) instead of replacing it.
moved {
  from = aws_kms_key.signing
  to   = aws_kms_key.signing["1"]
}

# Always the active root.
resource "aws_kms_alias" "signing" {
  name          = "alias/${var.name_prefix}-signing"
  target_key_id = aws_kms_key.signing[local.active_signing_generation].key_id
}

resource "aws_kms_key" "envelope" {
  description              = "${var.name_prefix} ledger payload envelope key (wraps per-batch data keys)"
  customer_master_key_spec = "SYMMETRIC_DEFAULT"
  key_usage                = "ENCRYPT_DECRYPT"
  enable_key_rotation      = true # old key material stays available for Decrypt
  deletion_window_in_days  = var.kms_deletion_window_days

  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.account_admin_statement]
  })
}

resource "aws_kms_alias" "envelope" {
  name          = "alias/${var.name_prefix}-envelope"
  target_key_id = aws_kms_key.envelope.key_id
}

resource "aws_kms_key" "platform" {
  description              = "${var.name_prefix} encryption at rest of the stack's resources (secrets, table, anchors, logs)"
  customer_master_key_spec = "SYMMETRIC_DEFAULT"
  key_usage                = "ENCRYPT_DECRYPT"
  enable_key_rotation      = true
  deletion_window_in_days  = var.kms_deletion_window_days

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      local.account_admin_statement,
      {
        # CloudWatch Logs encrypts log groups with the key itself (no caller identity to rely on).
        Sid       = "CloudWatchLogsEncryptsThisAccountsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.aws_region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${var.partition}:logs:${var.aws_region}:${var.account_id}:log-group:*"
          }
        }
      },
      {
        # CloudWatch alarms publish to the encrypted alarm topic.
        Sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = var.account_id }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "platform" {
  name          = "alias/${var.name_prefix}-platform"
  target_key_id = aws_kms_key.platform.key_id
}
