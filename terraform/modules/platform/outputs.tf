output "domain_name" {
  description = "Platform DNS domain; tenant instances live at <slug>.<domain_name>."
  value       = var.domain_name
}

output "zone_id" {
  description = "Route 53 zone ID of the platform domain."
  value       = local.zone_id
}

output "certificate_arn" {
  description = "ARN of the validated wildcard certificate for *.<domain_name> (for the ingress controller)."
  value       = aws_acm_certificate_validation.this.certificate_arn
}

output "ecr_repository_url" {
  description = "URL of the container registry repository for the Tally image."
  value       = aws_ecr_repository.this.repository_url
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts tenant instance secrets."
  value       = aws_kms_key.this.arn
}

output "oidc_provider_arn" {
  description = "ARN of the IAM OIDC provider that trusts the cluster's service-account tokens."
  value       = local.oidc_provider_arn
}

output "oidc_issuer" {
  description = "Cluster OIDC issuer without the scheme, the prefix of IRSA trust-policy condition keys."
  value       = local.oidc_issuer
}

output "store" {
  description = "Kind of store: documentdb or external."
  value       = var.store
}

output "store_secret_arn" {
  description = "Secret holding the store's admin credentials, for the platform's `tally migrate --tenant` only: DocumentDB's managed master-user secret (JSON username/password) or the external URI secret. No instance can read it."
  value       = var.store == "documentdb" ? aws_docdb_cluster.this[0].master_user_secret[0].secret_arn : var.external_store_uri_secret_arn
}

output "store_endpoint" {
  description = "DocumentDB cluster endpoint (host), or null for an external store."
  value       = var.store == "documentdb" ? aws_docdb_cluster.this[0].endpoint : null
}

output "store_port" {
  description = "DocumentDB port, or null for an external store."
  value       = var.store == "documentdb" ? aws_docdb_cluster.this[0].port : null
}

output "store_security_group_id" {
  description = "Security group of the DocumentDB cluster, or null for an external store."
  value       = var.store == "documentdb" ? aws_security_group.this[0].id : null
}

output "documentdb_engine_version" {
  description = "DocumentDB engine version, or null for an external store; its URL options (store_url_options) are chosen for it."
  value       = var.store == "documentdb" ? local.documentdb_engine_version : null
}

output "store_scheme" {
  description = "URI scheme of every instance's store URL."
  value       = local.store_scheme
}

output "store_host" {
  description = "Host and port of the store in every instance's URL."
  value       = local.store_host
}

output "store_url_options" {
  description = "Query options of every instance's store URL (for DocumentDB: TLS with tlsCAFile, retryWrites=false, w=majority, primary reads)."
  value       = local.store_url_options
}

output "store_ca_secret_arn" {
  description = "ARN of the store CA bundle secret (DocumentDB), or null."
  value       = local.documentdb == 1 ? aws_secretsmanager_secret.store_ca[0].arn : null
}

output "store_ca_secret_name" {
  description = "Name of the store CA bundle secret (DocumentDB), or null."
  value       = local.documentdb == 1 ? aws_secretsmanager_secret.store_ca[0].name : null
}

output "pooled" {
  description = "The pooled instance: the host it serves (<domain_name>) and its public URL, its IAM role (serviceAccount.roleArn), database user secret and signing-keys secret; `tally provision --pooled` renders its Helm values from this."
  value = {
    hosts                    = [var.domain_name]
    public_url               = "https://${var.domain_name}"
    namespace                = var.pooled_namespace
    service_account_name     = local.pooled_service_account_name
    database                 = var.pooled_database
    store_username           = "tally_pooled"
    role_arn                 = module.pooled_role.arn
    store_secret_name        = aws_secretsmanager_secret.pooled_store.name
    signing_keys_secret_name = aws_secretsmanager_secret.pooled_signing_keys.name
  }
}
