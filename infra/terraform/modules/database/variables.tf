variable "name_prefix" {
  description = "Prefix of resource names."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the cluster and the proxy (at least two AZs)."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the cluster and the proxy."
  type        = string
}

variable "kms_key_arn" {
  description = "Key encrypting storage, Performance Insights, the master secret and the log group."
  type        = string
}

variable "engine_version" {
  description = "Aurora PostgreSQL version."
  type        = string
}

variable "min_capacity" {
  description = "Serverless v2 minimum ACUs (0 allows auto-pause)."
  type        = number
}

variable "max_capacity" {
  description = "Serverless v2 maximum ACUs."
  type        = number
}

variable "seconds_until_auto_pause" {
  description = "Idle seconds before pausing when min_capacity is 0."
  type        = number
}

variable "instance_count" {
  description = "Number of db.serverless instances."
  type        = number
}

variable "backup_retention_days" {
  description = "Automated backup retention."
  type        = number
}

variable "deletion_protection" {
  description = "Deletion protection on the cluster."
  type        = bool
}

variable "require_tls" {
  description = "rds.force_ssl."
  type        = bool
}

variable "enable_data_api" {
  description = "RDS Data API on the cluster."
  type        = bool
}

variable "log_retention_days" {
  description = "Retention of the cluster's PostgreSQL log group."
  type        = number
}

variable "create_proxy" {
  description = "Create an RDS Proxy."
  type        = bool
}

variable "proxy_role_arn" {
  description = "Role the proxy uses to read its auth secret."
  type        = string
}

variable "proxy_auth_secret_arn" {
  description = "Secret of the role the proxy authenticates."
  type        = string
}
