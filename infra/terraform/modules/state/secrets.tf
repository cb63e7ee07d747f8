# The bootstrap secret: a JSON object of environment variable names to values, merged over each function's
# environment at cold start (AWS_SECRET_NAME). It holds at least DATABASE_URL and LEDGIX_ADMIN_API_KEY.
# Terraform creates the container only; the operator sets the value (docs/deploy.md), so no credential ever
# lands in Terraform state.
#
# Tenant database credentials are not created here: the code creates <tenant prefix>/<tenant_id> secrets itself
# (CreateSecret without a KmsKeyId, so they use the aws/secretsmanager key) and IAM scopes it to that prefix.

locals {
  bootstrap_secret_name = "${var.name_prefix}/bootstrap"
  tenant_secret_prefix  = "${var.name_prefix}/tenants"
}

resource "aws_secretsmanager_secret" "bootstrap" {
  #checkov:skip=CKV2_AWS_57:Operator-managed value (DATABASE_URL and admin key) with no rotation function; rotate by hand (docs/deploy.md)
  name                    = local.bootstrap_secret_name
  description             = "Ledgix Vault bootstrap settings (JSON object of env var names to values): DATABASE_URL, LEDGIX_ADMIN_API_KEY, ..."
  kms_key_id              = aws_kms_key.platform.arn
  recovery_window_in_days = var.secret_recovery_window_days
}
