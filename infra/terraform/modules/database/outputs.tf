output "cluster_arn" {
  description = "ARN of the Aurora cluster (for the RDS Data API)."
  value       = aws_rds_cluster.this.arn
}

output "cluster_endpoint" {
  description = "Writer endpoint of the cluster."
  value       = aws_rds_cluster.this.endpoint
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_rds_cluster.this.port
}

output "master_user_secret_arn" {
  description = "ARN of the RDS-managed secret holding the master user's credentials."
  value       = try(aws_rds_cluster.this.master_user_secret[0].secret_arn, null)
}

output "proxy_endpoint" {
  description = "Endpoint of the RDS Proxy, when created."
  value       = try(aws_db_proxy.this[0].endpoint, null)
}
