terraform {
  # 1.7 is the first release whose `terraform test` has mock_provider and override_* blocks (tests/).
  required_version = ">= 1.7.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # The signing key uses customer_master_key_spec = "ECC_NIST_EDWARDS25519". AWS KMS added that key spec on
      # 2025-11-07; the provider validates the value against the AWS SDK for Go v2 enum, so it accepts it only
      # from the first release built on that SDK (6.21.0; hashicorp/terraform-provider-aws#45015 and #45025).
      # Older providers fail `validate` with "expected customer_master_key_spec to be one of [...]".
      # Only this root pins the version; the submodules name the source alone.
      version = ">= 6.21.0"
    }
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge({
      Application = "ledgix-vault"
      ManagedBy   = "terraform"
      Deployment  = var.name_prefix
    }, var.tags)
  }
}
