output "platform" {
  description = "Shared platform: domain, wildcard certificate, registry, KMS key, OIDC provider."
  value = {
    domain_name        = module.platform.domain_name
    zone_id            = module.platform.zone_id
    certificate_arn    = module.platform.certificate_arn
    ecr_repository_url = module.platform.ecr_repository_url
    kms_key_arn        = module.platform.kms_key_arn
    oidc_provider_arn  = module.platform.oidc_provider_arn
    store              = module.platform.store
  }
}

output "tenants" {
  description = "Per tenant slug: what `tally provision --terraform-outputs` merges into the Helm values, and the DNS records the client must publish."
  value = {
    for slug, tenant in module.tenant : slug => {
      fqdn                          = tenant.fqdn
      hosts                         = tenant.hosts
      public_url                    = tenant.public_url
      namespace                     = tenant.namespace
      service_account_name          = tenant.service_account_name
      role_arn                      = tenant.role_arn
      secret_arn                    = tenant.secret_arn
      secret_name                   = tenant.secret_name
      database                      = tenant.database
      custom_domain_certificate_arn = tenant.custom_domain_certificate_arn
      custom_domain_dns_records     = tenant.custom_domain_dns_records
    }
  }
}
