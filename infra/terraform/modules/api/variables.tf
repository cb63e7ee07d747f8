variable "name_prefix" {
  description = "Prefix of resource names."
  type        = string
}

variable "clearance_function_name" {
  description = "Name of the clearance-api function."
  type        = string
}

variable "clearance_invoke_arn" {
  description = "Invoke ARN of the clearance-api function."
  type        = string
}

variable "jwks_function_name" {
  description = "Name of the jwks function."
  type        = string
}

variable "jwks_invoke_arn" {
  description = "Invoke ARN of the jwks function."
  type        = string
}

variable "integration_timeout_ms" {
  description = "Integration timeout in milliseconds (50-30000)."
  type        = number
}

variable "throttling_rate_limit" {
  description = "Stage default steady-state requests per second."
  type        = number
}

variable "throttling_burst_limit" {
  description = "Stage default burst."
  type        = number
}

variable "admin_iam_auth" {
  description = "Route ANY /admin/{proxy+} with authorization_type AWS_IAM (SigV4)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the access log group."
  type        = number
}

variable "logs_kms_key_arn" {
  description = "Key encrypting the access log group."
  type        = string
}
