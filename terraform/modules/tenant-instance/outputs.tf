output "slug" {
  description = "Tenant slug."
  value       = var.slug
}

output "fqdn" {
  description = "Platform host name of the instance, <slug>.<platform_domain>."
  value       = local.fqdn
}

output "hosts" {
  description = "Every host name the instance's ingress must serve (platform host first, then the custom domain)."
  value       = local.hosts
}

output "public_url" {
  description = "Public base URL of the instance (the custom domain when set)."
  value       = "https://${coalesce(var.domain, local.fqdn)}"
}

output "namespace" {
  description = "Kubernetes namespace of the instance."
  value       = var.namespace
}

output "service_account_name" {
  description = "Kubernetes service account that may assume role_arn."
  value       = var.service_account_name
}

output "role_arn" {
  description = "IAM role for the service account (eks.amazonaws.com/role-arn annotation)."
  value       = module.role.arn
}

output "secret_arn" {
  description = "ARN of the instance configuration secret."
  value       = aws_secretsmanager_secret.this.arn
}

output "secret_name" {
  description = "Name of the instance configuration secret (for an ExternalSecret)."
  value       = aws_secretsmanager_secret.this.name
}

output "database" {
  description = "MongoDB database of the instance."
  value       = local.database
}

output "store_secret_arn" {
  description = "ARN of the secret of the instance's database user (store-url, username, password; filled by the CD pipeline)."
  value       = aws_secretsmanager_secret.store.arn
}

output "store_secret_name" {
  description = "Name of the secret of the instance's database user (for an ExternalSecret)."
  value       = aws_secretsmanager_secret.store.name
}

output "signing_keys_secret_arn" {
  description = "ARN of the instance's signing-keys secret (filled once by the CD pipeline)."
  value       = aws_secretsmanager_secret.signing_keys.arn
}

output "signing_keys_secret_name" {
  description = "Name of the instance's signing-keys secret (for an ExternalSecret)."
  value       = aws_secretsmanager_secret.signing_keys.name
}

output "store_username" {
  description = "The instance's own database user (readWrite on database only; `tally migrate --tenant` creates it)."
  value       = local.store_username
}

output "custom_domain_dns_records" {
  description = "Records the client must publish in its own DNS: the CNAME of the custom domain to the platform host (cert-manager then validates it over HTTP)."
  value       = var.domain == null ? [] : [{ name = var.domain, type = "CNAME", value = local.fqdn }]
}
