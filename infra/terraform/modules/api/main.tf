# The HTTP API: everything goes to clearance-api (the shared axum router answers unknown paths with JSON 404s),
# except the JWKS document, which its own small function serves.

resource "aws_apigatewayv2_api" "this" {
  name          = "${var.name_prefix}-api"
  description   = "Ledgix Vault clearance API"
  protocol_type = "HTTP"
  # No API-level CORS: the vault answers CORS itself from VAULT_CORS_ALLOWED_ORIGIN, and API Gateway's CORS
  # handling would replace the application's headers.
}

resource "aws_apigatewayv2_integration" "clearance" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_uri        = var.clearance_invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = var.integration_timeout_ms
}

resource "aws_apigatewayv2_integration" "jwks" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_uri        = var.jwks_invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = var.integration_timeout_ms
}

resource "aws_apigatewayv2_route" "default" {
  #checkov:skip=CKV_AWS_309:The vault authenticates every request itself (X-Vault-API-Key / Bearer tenant keys) and answers 401 as its OpenAPI document says; /admin/* has its own AWS_IAM route when admin_iam_auth is on
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = "$default"
  target             = "integrations/${aws_apigatewayv2_integration.clearance.id}"
  authorization_type = "NONE"
}

# Administration routes only for IAM principals (SigV4): API Gateway checks the caller's execute-api:Invoke
# grant before the function runs, and clearance-api (VAULT_ADMIN_AUTH=iam) admits only requests whose request
# context carries that IAM authorisation. Without it (admin_iam_auth = false) /admin/* falls to $default.
resource "aws_apigatewayv2_route" "admin" {
  count              = var.admin_iam_auth ? 1 : 0
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = "ANY /admin/{proxy+}"
  target             = "integrations/${aws_apigatewayv2_integration.clearance.id}"
  authorization_type = "AWS_IAM"
}

resource "aws_apigatewayv2_route" "jwks" {
  #checkov:skip=CKV_AWS_309:The JWKS document is public by design: verifiers fetch it without credentials
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = "GET /.well-known/jwks.json"
  target             = "integrations/${aws_apigatewayv2_integration.jwks.id}"
  authorization_type = "NONE"
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (default 90)
  name              = "/aws/apigateway/${var.name_prefix}-api"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  # The whole stage's rate, before any request reaches clearance-api (and so before any key lookup). On AWS this
  # stands in for ledgix dev's per-client-address limit (VAULT_CLIENT_RATE_LIMIT_*): Lambda sees no socket.
  default_route_settings {
    throttling_rate_limit  = var.throttling_rate_limit
    throttling_burst_limit = var.throttling_burst_limit
  }

  # One JSON line per request. No headers or bodies: they carry API keys and tokens.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      requestTime        = "$context.requestTime"
      ip                 = "$context.identity.sourceIp"
      userAgent          = "$context.identity.userAgent"
      method             = "$context.httpMethod"
      routeKey           = "$context.routeKey"
      path               = "$context.path"
      status             = "$context.status"
      protocol           = "$context.protocol"
      responseLength     = "$context.responseLength"
      responseLatency    = "$context.responseLatency"
      integrationLatency = "$context.integrationLatency"
      integrationStatus  = "$context.integrationStatus"
      integrationError   = "$context.integrationErrorMessage"
      errorMessage       = "$context.error.message"
    })
  }
}

resource "aws_lambda_permission" "clearance" {
  statement_id  = "AllowHttpApiInvoke"
  action        = "lambda:InvokeFunction"
  function_name = var.clearance_function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}

resource "aws_lambda_permission" "jwks" {
  statement_id  = "AllowHttpApiInvokeJwks"
  action        = "lambda:InvokeFunction"
  function_name = var.jwks_function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/GET/.well-known/jwks.json"
}
