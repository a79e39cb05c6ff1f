output "platform" {
  description = "Shared platform: what `tally provision --terraform-outputs` and the CD pipeline read (domain, registry, region, ingress and TLS wiring, store URL parts, the pooled instance)."
  value = {
    region                    = var.region
    domain_name               = module.platform.domain_name
    zone_id                   = module.platform.zone_id
    certificate_arn           = module.platform.certificate_arn
    ecr_repository_url        = module.platform.ecr_repository_url
    kms_key_arn               = module.platform.kms_key_arn
    oidc_provider_arn         = module.platform.oidc_provider_arn
    ingress_class_name        = var.ingress_class_name
    cluster_issuer            = var.cluster_issuer
    store                     = module.platform.store
    documentdb_engine_version = module.platform.documentdb_engine_version
    store_scheme              = module.platform.store_scheme
    store_host                = module.platform.store_host
    store_url_options         = module.platform.store_url_options
    store_admin_secret_arn    = module.platform.store_secret_arn
    store_ca_secret_name      = module.platform.store_ca_secret_name
    pooled                    = module.platform.pooled
  }
}

output "tenants" {
  description = "Per tenant slug: what `tally provision --terraform-outputs` merges into the Helm values, what the CD pipeline fills (store and signing-keys secrets), and the DNS records the client must publish."

  # Not a check block: those only warn. A file named after another tenant would get that
  # tenant's secrets and role (tally/<slug>/*), so the plan fails.
  precondition {
    condition     = alltrue([for name, tenant in local.tenants : try(tenant.slug, null) == name])
    error_message = "Every tenant file must be named <slug>.json after the slug it contains."
  }

  value = {
    for slug, tenant in module.tenant : slug => {
      fqdn                      = tenant.fqdn
      hosts                     = tenant.hosts
      public_url                = tenant.public_url
      namespace                 = tenant.namespace
      service_account_name      = tenant.service_account_name
      role_arn                  = tenant.role_arn
      secret_arn                = tenant.secret_arn
      secret_name               = tenant.secret_name
      store_secret_name         = tenant.store_secret_name
      store_username            = tenant.store_username
      signing_keys_secret_name  = tenant.signing_keys_secret_name
      database                  = tenant.database
      custom_domain_dns_records = tenant.custom_domain_dns_records
    }
  }
}
