locals {
  fqdn  = "${var.slug}.${var.platform_domain}"
  hosts = compact([local.fqdn, var.domain])

  # Siloed instances share the store but never a database.
  database = "tally_${replace(var.slug, "-", "_")}"

  # Never tally_pooled (the pooled instance's) nor the store's admin user: slugs have no "_".
  store_username = "tally-${var.slug}"

  # What the instance may read: its own secrets and the platform's store CA bundle.
  readable_secrets = compact([aws_secretsmanager_secret.this.arn, aws_secretsmanager_secret.store.arn, aws_secretsmanager_secret.signing_keys.arn, var.store_ca_secret_arn])

  # The non-secret keys of the instance secret.
  instance_config = {
    "mongo-database" = local.database
    "tenant"         = var.slug
    "public-url"     = "https://${coalesce(var.domain, local.fqdn)}"
    "timezone"       = var.timezone
  }

  tags = merge(var.tags, {
    "tally:tenant" = var.slug
    "tally:plan"   = var.plan
  })
}

################################################################################
# DNS: <slug>.<platform domain>, and the client's optional custom domain
################################################################################

resource "aws_route53_record" "this" {
  zone_id = var.zone_id
  name    = local.fqdn
  type    = "CNAME"
  ttl     = 300
  records = [var.ingress_hostname]
}

# TLS for every host, the custom domain included, is issued in the cluster by
# cert-manager (ACME HTTP-01 through the instance's Ingress; chart value certificate):
# the client publishes one CNAME (output custom_domain_dns_records) and nothing waits
# on a validation record in a zone this account does not own.

################################################################################
# Instance configuration secret
################################################################################

resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:The value is derived from Terraform inputs (store URI, settings); it changes by re-applying, not by a rotation Lambda.
  name                    = "${var.name_prefix}/${var.slug}/instance"
  description             = "Configuration of the ${var.display_name} Tally instance"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "this" {
  secret_id = aws_secretsmanager_secret.this.id
  # Configuration only: no credential of any kind is ever in this module's state.
  secret_string = jsonencode(local.instance_config)
}

# The instance's own database user, tally-<slug>, as JSON {"store-url", "username",
# "password"}. The CD pipeline fills it (a generated password, then `tally migrate
# --tenant <slug>` with the store's admin credentials, which gives the user readWrite on
# its database alone) and rotates it the same way; Terraform never sees the password,
# and no tenant ever holds the admin credentials.
resource "aws_secretsmanager_secret" "store" {
  #checkov:skip=CKV2_AWS_57:Rotated by the CD pipeline (new password, `tally migrate --tenant` updates the user), not a rotation Lambda.
  name                    = "${var.name_prefix}/${var.slug}/store"
  description             = "Database user of the ${var.display_name} Tally instance (readWrite on ${local.database} only)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

# Filled once by the CD pipeline (`tally keys generate`, then put-secret-value) and
# synced into the tenant's namespace; Terraform never sees a private key.
resource "aws_secretsmanager_secret" "signing_keys" {
  #checkov:skip=CKV2_AWS_57:Signing keys rotate through `tally keys rotate` (the JWKS publishes the next key first), not a rotation Lambda.
  name                    = "${var.name_prefix}/${var.slug}/signing-keys"
  description             = "JWT signing keys of the ${var.display_name} Tally instance (JSON: file name to content)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

################################################################################
# IRSA role: assumable only by the instance's service account, reads only its secret
################################################################################

module "role" {
  source = "../instance-role"

  name                 = "${var.name_prefix}-${var.slug}"
  description          = "Tally instance of ${var.display_name} (${var.namespace}/${var.service_account_name})"
  oidc_provider_arn    = var.oidc_provider_arn
  oidc_issuer          = var.oidc_issuer
  namespace            = var.namespace
  service_account_name = var.service_account_name
  secret_arns          = local.readable_secrets
  kms_key_arn          = var.kms_key_arn
  tags                 = local.tags
}

# State from before modules/instance-role (the role and policy were declared here)
# moves into the module: the role is kept, not replaced.
moved {
  from = aws_iam_role.this
  to   = module.role.aws_iam_role.this
}

moved {
  from = aws_iam_role_policy.this
  to   = module.role.aws_iam_role_policy.this
}
