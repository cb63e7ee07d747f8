variable "functions" {
  description = "The functions by short name (clearance-api, jwks, judge-worker, anchor-export, notifier)."
  type = map(object({
    function_name        = string
    description          = string
    role_arn             = string
    memory_mb            = number
    timeout_seconds      = number
    environment          = map(string)
    in_vpc               = bool
    reserved_concurrency = optional(number)
    package_path         = string
    package_hash         = optional(string)
  }))

  validation {
    condition     = alltrue([for name in ["clearance-api", "jwks", "judge-worker", "anchor-export", "notifier"] : contains(keys(var.functions), name)])
    error_message = "functions must define clearance-api, jwks, judge-worker, anchor-export and notifier."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the in-VPC functions."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the in-VPC functions."
  type        = list(string)
}

variable "enable_xray_tracing" {
  description = "Active X-Ray tracing."
  type        = bool
}

variable "log_retention_days" {
  description = "Retention of the function log groups."
  type        = number
}

variable "logs_kms_key_arn" {
  description = "Key encrypting the function log groups."
  type        = string
}

variable "judge_queue_arn" {
  description = "Judge FIFO queue feeding judge-worker."
  type        = string
}

variable "judge_worker_batch_size" {
  description = "Messages per judge-worker invocation (<= 10)."
  type        = number
}

variable "judge_worker_max_concurrency" {
  description = "Optional cap on concurrent judge-worker invocations."
  type        = number
}

variable "notify_queue_arn" {
  description = "Notify queue (standard) feeding the notifier."
  type        = string
}

variable "notifier_batch_size" {
  description = "Messages per notifier invocation (<= 10)."
  type        = number
}

variable "notifier_max_concurrency" {
  description = "Optional cap on concurrent notifier invocations."
  type        = number
}

variable "anchor_schedule_expression" {
  description = "EventBridge Scheduler expression running anchor-export."
  type        = string
}

variable "anchor_schedule_name" {
  description = "Name of the anchor-export schedule."
  type        = string
}

variable "anchor_scheduler_role_arn" {
  description = "Role EventBridge Scheduler assumes to invoke anchor-export."
  type        = string
}

variable "anchor_max_event_age_seconds" {
  description = "Drop an anchor-export invocation older than this (the next scheduled round does the work)."
  type        = number
}
