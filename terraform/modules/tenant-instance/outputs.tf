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
  value       = aws_iam_role.this.arn
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

output "custom_domain_certificate_arn" {
  description = "ARN of the custom domain's certificate, or null without a custom domain."
  value       = var.domain == null ? null : aws_acm_certificate.custom[0].arn
}

output "custom_domain_dns_records" {
  description = "Records the client must publish in its own DNS: the certificate validation CNAME(s) and the CNAME of the custom domain to the platform host."
  value = var.domain == null ? [] : concat(
    [
      for option in aws_acm_certificate.custom[0].domain_validation_options : {
        name  = option.resource_record_name
        type  = option.resource_record_type
        value = option.resource_record_value
      }
    ],
    [{ name = var.domain, type = "CNAME", value = local.fqdn }],
  )
}
