output "function_arns" {
  description = "Function ARNs by short name."
  value       = { for name, fn in aws_lambda_function.this : name => fn.arn }
}

output "function_names" {
  description = "Function names by short name."
  value       = { for name, fn in aws_lambda_function.this : name => fn.function_name }
}

output "invoke_arns" {
  description = "Invoke ARNs (for API Gateway integrations) by short name."
  value       = { for name, fn in aws_lambda_function.this : name => fn.invoke_arn }
}

output "log_group_names" {
  description = "Log group names by short name."
  value       = { for name, group in aws_cloudwatch_log_group.function : name => group.name }
}

output "anchor_schedule_arn" {
  description = "ARN of the anchor-export schedule."
  value       = aws_scheduler_schedule.anchor_export.arn
}
