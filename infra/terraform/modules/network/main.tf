# A private-only VPC: no internet gateway and no NAT. The in-VPC functions reach AWS APIs through VPC endpoints
# (gateway endpoints for S3 and DynamoDB, interface endpoints for the rest, bedrock-runtime among them with the
# bedrock judge) and PostgreSQL directly.

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Only the first availability_zone_count names are used and they are kept in state; a new zone sorts after the existing ones in a region, so it does not move the subnets
  state = "available"
}

locals {
  azs = slice(data.aws_availability_zones.available.names, 0, var.availability_zone_count)
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # required for interface endpoints' private DNS names

  tags = { Name = "${var.name_prefix}-vpc" }
}

# Lock down the default security group: nothing uses it, and an open default is an easy mistake later.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name_prefix}-default-unused" }
}

resource "aws_subnet" "private" {
  count = var.availability_zone_count

  vpc_id                  = aws_vpc.this.id
  availability_zone       = local.azs[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, count.index)
  map_public_ip_on_launch = false

  tags = { Name = "${var.name_prefix}-private-${local.azs[count.index]}" }
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name_prefix}-private" }
}

resource "aws_route_table_association" "private" {
  count = var.availability_zone_count

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# ---------------------------------------------------------------------------------------------------------------
# Security groups
# ---------------------------------------------------------------------------------------------------------------

resource "aws_security_group" "lambda" {
  #checkov:skip=CKV2_AWS_5:Attached in modules/functions (vpc_config of the in-VPC functions); checkov does not follow it across modules
  name        = "${var.name_prefix}-lambda"
  description = "Ledgix Vault functions in the VPC"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${var.name_prefix}-lambda" }
}

resource "aws_security_group" "database" {
  #checkov:skip=CKV2_AWS_5:Attached in modules/database (Aurora cluster and RDS Proxy); checkov does not follow it across modules
  name        = "${var.name_prefix}-database"
  description = "Ledgix Vault PostgreSQL (Aurora cluster and RDS Proxy)"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${var.name_prefix}-database" }
}

resource "aws_security_group" "endpoints" {
  name        = "${var.name_prefix}-endpoints"
  description = "Interface VPC endpoints used by the Ledgix Vault functions"
  vpc_id      = aws_vpc.this.id
  tags        = { Name = "${var.name_prefix}-endpoints" }
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_database" {
  security_group_id            = aws_security_group.lambda.id
  description                  = "PostgreSQL"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.database.id
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_endpoints" {
  security_group_id            = aws_security_group.lambda.id
  description                  = "HTTPS to interface VPC endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_gateway_endpoints" {
  for_each = { s3 = aws_vpc_endpoint.s3.prefix_list_id, dynamodb = aws_vpc_endpoint.dynamodb.prefix_list_id }

  security_group_id = aws_security_group.lambda.id
  description       = "HTTPS to ${each.key} through its gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = each.value
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_existing_database" {
  for_each = toset(var.existing_database_cidr_blocks)

  security_group_id = aws_security_group.lambda.id
  description       = "PostgreSQL outside this VPC"
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
  cidr_ipv4         = each.value
}

# The openai/http judges: judge-worker calls judge_url on 443. The route there (a NAT gateway, PrivateLink) is the
# operator's; this only lets the functions' traffic out of their security group. Nothing with the default [].
resource "aws_vpc_security_group_egress_rule" "lambda_to_judge" {
  for_each = toset(var.judge_egress_cidr_blocks)

  security_group_id = aws_security_group.lambda.id
  description       = "HTTPS to the policy judge (judge_url)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "database_from_lambda" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the functions"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.lambda.id
}

# The RDS Proxy sits in the database group and connects on to the cluster in the same group.
resource "aws_vpc_security_group_ingress_rule" "database_from_itself" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from RDS Proxy"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.database.id
}

resource "aws_vpc_security_group_egress_rule" "database_to_itself" {
  security_group_id            = aws_security_group.database.id
  description                  = "RDS Proxy to the cluster"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.database.id
}

resource "aws_vpc_security_group_egress_rule" "database_to_endpoints" {
  security_group_id            = aws_security_group.database.id
  description                  = "RDS Proxy reads its credentials from Secrets Manager"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_vpc" {
  for_each = { lambda = aws_security_group.lambda.id, database = aws_security_group.database.id }

  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the ${each.key} security group"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = each.value
}

# ---------------------------------------------------------------------------------------------------------------
# VPC endpoints
# ---------------------------------------------------------------------------------------------------------------

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${var.aws_region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
  tags              = { Name = "${var.name_prefix}-s3" }
}

resource "aws_vpc_endpoint" "dynamodb" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${var.aws_region}.dynamodb"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
  tags              = { Name = "${var.name_prefix}-dynamodb" }
}

resource "aws_vpc_endpoint" "interface" {
  for_each = toset(var.interface_endpoint_services)

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${var.aws_region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true # the SDKs' default endpoints resolve to the endpoint, no AWS_ENDPOINT_URL needed
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints.id]
  tags                = { Name = "${var.name_prefix}-${each.key}" }
}

# ---------------------------------------------------------------------------------------------------------------
# Flow logs
# ---------------------------------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "flow_logs" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (default 90); flow logs are for troubleshooting, not audit evidence
  count = var.enable_flow_logs ? 1 : 0

  name              = "/aws/vpc/${var.name_prefix}-flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_flow_log" "this" {
  count = var.enable_flow_logs ? 1 : 0

  vpc_id               = aws_vpc.this.id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow_logs[0].arn
  iam_role_arn         = var.flow_logs_role_arn
}
