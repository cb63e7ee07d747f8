output "api_id" {
  description = "HTTP API id."
  value       = aws_apigatewayv2_api.this.id
}

output "api_url" {
  description = "HTTPS base URL of the vault (the $default stage)."
  value       = aws_apigatewayv2_stage.default.invoke_url
}

output "access_log_group_name" {
  description = "Access log group."
  value       = aws_cloudwatch_log_group.access.name
}

output "admin_execute_arn" {
  description = "execute-api ARN of the administration routes, to grant execute-api:Invoke on (null without admin_iam_auth)."
  value       = var.admin_iam_auth ? "${aws_apigatewayv2_api.this.execution_arn}/*/*/admin/*" : null
}
