# Aurora PostgreSQL Serverless v2: the control-plane database and, created by the vault itself, one database per
# tenant (CREATE ROLE / CREATE DATABASE by the DATABASE_URL role).

locals {
  cluster_identifier = "${var.name_prefix}-db"
  engine_major       = split(".", var.engine_version)[0]
}

resource "aws_db_subnet_group" "this" {
  name        = "${var.name_prefix}-db"
  description = "Private subnets of the Ledgix Vault database"
  subnet_ids  = var.subnet_ids
}

resource "aws_rds_cluster_parameter_group" "this" {
  name        = "${var.name_prefix}-aurora-postgresql${local.engine_major}"
  family      = "aurora-postgresql${local.engine_major}"
  description = "Ledgix Vault cluster parameters"

  parameter {
    # Spelled out either way, so the choice is visible: see the aurora_require_tls variable.
    name  = "rds.force_ssl"
    value = var.require_tls ? "1" : "0"
  }

  parameter {
    # Log connection attempts (not statements: tenant provisioning sends passwords in DDL).
    name  = "log_connections"
    value = "1"
  }
}

# RDS writes the exported PostgreSQL log here; created first so it is encrypted and expires.
resource "aws_cloudwatch_log_group" "postgresql" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (default 90); audit evidence lives in the ledger and the anchor bucket, not in logs
  name              = "/aws/rds/cluster/${local.cluster_identifier}/postgresql"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_rds_cluster" "this" {
  #checkov:skip=CKV2_AWS_8:Automated backups with point-in-time restore (backup_retention_days) cover this database; add AWS Backup per organisation policy
  #checkov:skip=CKV2_AWS_27:Statement logging would write tenant role passwords (CREATE ROLE ... PASSWORD) to the logs; connections are logged
  cluster_identifier = local.cluster_identifier
  engine             = "aurora-postgresql"
  engine_mode        = "provisioned" # Serverless v2 is "provisioned" with db.serverless instances
  engine_version     = var.engine_version

  # The master password lives in a Secrets Manager secret RDS manages and rotates; docs/deploy.md shows how to
  # read it once to create the vault's own role.
  master_username               = "ledgix_admin"
  manage_master_user_password   = true
  master_user_secret_kms_key_id = var.kms_key_arn

  db_subnet_group_name            = aws_db_subnet_group.this.name
  vpc_security_group_ids          = [var.security_group_id]
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.this.name
  port                            = 5432

  storage_encrypted                   = true
  kms_key_id                          = var.kms_key_arn
  iam_database_authentication_enabled = true
  enable_http_endpoint                = var.enable_data_api

  backup_retention_period   = var.backup_retention_days
  preferred_backup_window   = "03:00-04:00"
  copy_tags_to_snapshot     = true
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${local.cluster_identifier}-final"

  enabled_cloudwatch_logs_exports = ["postgresql"]

  serverlessv2_scaling_configuration {
    min_capacity             = var.min_capacity
    max_capacity             = var.max_capacity
    seconds_until_auto_pause = var.min_capacity == 0 ? var.seconds_until_auto_pause : null
  }

  depends_on = [aws_cloudwatch_log_group.postgresql]

  lifecycle {
    precondition {
      condition     = var.max_capacity >= var.min_capacity
      error_message = "aurora_max_capacity must be at least aurora_min_capacity."
    }
  }
}

resource "aws_rds_cluster_instance" "this" {
  #checkov:skip=CKV_AWS_118:Enhanced monitoring needs another role and log ingestion; Performance Insights and CloudWatch metrics are on
  count = var.instance_count

  identifier                            = "${local.cluster_identifier}-${count.index + 1}"
  cluster_identifier                    = aws_rds_cluster.this.id
  instance_class                        = "db.serverless"
  engine                                = aws_rds_cluster.this.engine
  engine_version                        = aws_rds_cluster.this.engine_version
  db_subnet_group_name                  = aws_db_subnet_group.this.name
  publicly_accessible                   = false
  auto_minor_version_upgrade            = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.kms_key_arn
  performance_insights_retention_period = 7 # the free tier
  promotion_tier                        = count.index
}

# ---------------------------------------------------------------------------------------------------------------
# RDS Proxy (optional, off by default; see README "RDS Proxy")
# ---------------------------------------------------------------------------------------------------------------

resource "aws_db_proxy" "this" {
  count = var.create_proxy ? 1 : 0

  name                   = "${var.name_prefix}-db-proxy"
  engine_family          = "POSTGRESQL"
  role_arn               = var.proxy_role_arn
  vpc_subnet_ids         = var.subnet_ids
  vpc_security_group_ids = [var.security_group_id]
  require_tls            = true
  idle_client_timeout    = 1800
  debug_logging          = false # would log SQL text, including passwords in tenant provisioning DDL

  auth {
    auth_scheme               = "SECRETS"
    secret_arn                = var.proxy_auth_secret_arn
    iam_auth                  = "DISABLED"
    client_password_auth_type = "POSTGRES_SCRAM_SHA_256"
    description               = "The vault's control-plane role (DATABASE_URL)"
  }

  lifecycle {
    precondition {
      condition     = var.proxy_auth_secret_arn != null
      error_message = "create_db_proxy needs db_proxy_auth_secret_arn: the secret of the role the proxy authenticates."
    }
  }
}

resource "aws_db_proxy_default_target_group" "this" {
  count = var.create_proxy ? 1 : 0

  db_proxy_name = aws_db_proxy.this[0].name

  connection_pool_config {
    max_connections_percent      = 80
    max_idle_connections_percent = 20
    connection_borrow_timeout    = 5
  }
}

resource "aws_db_proxy_target" "this" {
  count = var.create_proxy ? 1 : 0

  db_proxy_name         = aws_db_proxy.this[0].name
  target_group_name     = aws_db_proxy_default_target_group.this[0].name
  db_cluster_identifier = aws_rds_cluster.this.cluster_identifier
}
