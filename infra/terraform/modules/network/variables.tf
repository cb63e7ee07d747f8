variable "name_prefix" {
  description = "Prefix of resource names."
  type        = string
}

variable "aws_region" {
  description = "Region, for the endpoint service names."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
}

variable "availability_zone_count" {
  description = "Number of availability zones, one private subnet each."
  type        = number
}

variable "interface_endpoint_services" {
  description = "Short names of the services reached through interface endpoints (e.g. kms, bedrock-runtime)."
  type        = list(string)
}

variable "enable_flow_logs" {
  description = "Whether to record VPC flow logs."
  type        = bool
}

variable "flow_logs_role_arn" {
  description = "Role VPC Flow Logs assumes to write to CloudWatch Logs."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the flow log group."
  type        = number
}

variable "logs_kms_key_arn" {
  description = "KMS key encrypting the flow log group."
  type        = string
}

variable "existing_database_cidr_blocks" {
  description = "CIDR blocks of a PostgreSQL outside this VPC (create_database = false), reached over peering or a transit gateway the operator sets up."
  type        = list(string)
}

variable "judge_egress_cidr_blocks" {
  description = "CIDR blocks the functions may reach on 443 for the openai/http policy judge (routing is the operator's)."
  type        = list(string)
  default     = []
}
