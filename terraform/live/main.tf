locals {
  tenants_dir = startswith(var.tenants_dir, "/") ? var.tenants_dir : "${path.module}/${var.tenants_dir}"

  # One tenant-instance per tenant file; the file name is the slug.
  tenants = {
    for file in fileset(local.tenants_dir, "*.json") :
    trimsuffix(file, ".json") => jsondecode(file("${local.tenants_dir}/${file}"))
  }
}

module "platform" {
  source = "../modules/platform"

  domain_name                     = var.domain_name
  create_dns_zone                 = var.create_dns_zone
  cluster_oidc_issuer_url         = var.cluster_oidc_issuer_url
  oidc_provider_arn               = var.oidc_provider_arn
  store                           = var.store
  external_store_uri_secret_arn   = var.external_store_uri_secret_arn
  vpc_id                          = var.vpc_id
  subnet_ids                      = var.subnet_ids
  store_client_security_group_ids = var.store_client_security_group_ids
  external_store_host             = var.external_store_host
  store_ca_file                   = var.store_ca_file
  store_ca_bundle                 = var.store_ca_bundle
  tags                            = var.tags
}

# Every tenant file is named <slug>.json after the slug it holds (a precondition of the
# tenants output, so a plan fails, targeted or not), and each instance's namespace is
# tally-<slug> (the module's validation): slugs, namespaces, secret and role names are
# therefore unique, one per file name.
module "tenant" {
  source   = "../modules/tenant-instance"
  for_each = local.tenants

  # Tenant file keys (see tenant.schema.json); optional ones may be absent or null.
  slug          = each.value.slug
  display_name  = each.value.display_name
  plan          = each.value.plan
  namespace     = each.value.namespace
  primary_color = each.value.primary_color
  domain        = try(each.value.domain, null)
  logo_url      = try(each.value.logo_url, null)
  timezone      = try(each.value.timezone, null)

  # Platform-supplied inputs.
  platform_domain     = module.platform.domain_name
  zone_id             = module.platform.zone_id
  ingress_hostname    = var.ingress_hostname
  oidc_provider_arn   = module.platform.oidc_provider_arn
  oidc_issuer         = module.platform.oidc_issuer
  kms_key_arn         = module.platform.kms_key_arn
  store_ca_secret_arn = module.platform.store_ca_secret_arn
  tags                = var.tags
}
