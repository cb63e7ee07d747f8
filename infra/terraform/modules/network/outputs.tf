output "vpc_id" {
  description = "VPC id."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnet ids, one per availability zone."
  value       = aws_subnet.private[*].id
}

output "private_route_table_id" {
  description = "Route table of the private subnets (where a NAT gateway route for the openai/http judge would go)."
  value       = aws_route_table.private.id
}

output "lambda_security_group_id" {
  description = "Security group of the in-VPC functions."
  value       = aws_security_group.lambda.id
}

output "database_security_group_id" {
  description = "Security group of the database and the RDS Proxy."
  value       = aws_security_group.database.id
}

output "interface_endpoint_ids" {
  description = "Interface endpoint ids by service."
  value       = { for service, endpoint in aws_vpc_endpoint.interface : service => endpoint.id }
}

output "gateway_endpoint_ids" {
  description = "Gateway endpoint ids by service."
  value       = { s3 = aws_vpc_endpoint.s3.id, dynamodb = aws_vpc_endpoint.dynamodb.id }
}
