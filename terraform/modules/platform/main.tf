data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  tags = merge(var.tags, { "tally:component" = "platform" })

  documentdb = var.store == "documentdb" ? 1 : 0

  # DocumentDB 5.0: the newest engine with a docdb parameter-group family the provider
  # floor knows, and MongoDB 5.0 API compatibility (what PyMongo 4 needs). No DocumentDB
  # version supports retryable writes, so the URL says retryWrites=false; every write
  # is acknowledged by a majority (w=majority), and reads go to the primary so a client
  # always reads what it just wrote (a new sequence's definition, a PATCH).
  documentdb_engine_version = "5.0.0"
  documentdb_family         = "docdb${join(".", slice(split(".", local.documentdb_engine_version), 0, 2))}"

  store_scheme      = var.store == "documentdb" ? "mongodb" : var.external_store_scheme
  store_host        = var.store == "documentdb" ? "${aws_docdb_cluster.this[0].endpoint}:${aws_docdb_cluster.this[0].port}" : var.external_store_host
  store_url_options = var.store == "documentdb" ? "tls=true&tlsCAFile=${var.store_ca_file}&replicaSet=rs0&readPreference=primary&retryWrites=false&w=majority" : var.external_store_url_options

  # Service account of the pooled release (the chart's default name).
  pooled_service_account_name = "tally"
  pooled_service_account      = "system:serviceaccount:${var.pooled_namespace}:${local.pooled_service_account_name}"
  pooled_secrets              = compact([aws_secretsmanager_secret.pooled_store.arn, aws_secretsmanager_secret.pooled_signing_keys.arn, local.documentdb == 1 ? aws_secretsmanager_secret.store_ca[0].arn : ""])

  zone_id = var.create_dns_zone ? aws_route53_zone.this[0].zone_id : data.aws_route53_zone.this[0].zone_id

  oidc_issuer       = trimprefix(var.cluster_oidc_issuer_url, "https://")
  oidc_provider_arn = var.oidc_provider_arn != null ? var.oidc_provider_arn : aws_iam_openid_connect_provider.this[0].arn
}

################################################################################
# DNS zone and wildcard certificate
################################################################################

resource "aws_route53_zone" "this" {
  #checkov:skip=CKV2_AWS_38:DNSSEC needs an asymmetric KMS key in us-east-1 and a DS record at the parent zone's registrar; it is enabled per environment once delegation is in place.
  #checkov:skip=CKV2_AWS_39:Query logging needs a CloudWatch log group in us-east-1 and a resource policy; it is enabled per environment by the account baseline.
  count = var.create_dns_zone ? 1 : 0

  name    = var.domain_name
  comment = "Tally platform zone; one record per tenant instance."
  tags    = local.tags
}

data "aws_route53_zone" "this" {
  count = var.create_dns_zone ? 0 : 1

  name         = var.domain_name
  private_zone = false
}

resource "aws_acm_certificate" "this" {
  #checkov:skip=CKV2_AWS_71:The platform serves one host per tenant (<slug>.<domain>); a wildcard certificate avoids one certificate and validation per onboarding.
  domain_name               = var.domain_name
  subject_alternative_names = ["*.${var.domain_name}"]
  validation_method         = "DNS"
  tags                      = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  # ACM gives "*.<domain>" the same validation record as the apex, so one record validates both.
  validation = one([for option in aws_acm_certificate.this.domain_validation_options : option if option.domain_name == var.domain_name])
}

resource "aws_route53_record" "validation" {
  zone_id         = local.zone_id
  name            = local.validation.resource_record_name
  type            = local.validation.resource_record_type
  records         = [local.validation.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "this" {
  certificate_arn         = aws_acm_certificate.this.arn
  validation_record_fqdns = [aws_route53_record.validation.fqdn]
}

################################################################################
# KMS key for secrets, registry and store
################################################################################

resource "aws_kms_key" "this" {
  description             = "${var.name}: tenant instance secrets, container images and the DocumentDB store"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  tags                    = local.tags

  # The account root keeps administration; principals get use of the key through their own IAM policies.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
    ]
  })
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

################################################################################
# Container registry
################################################################################

resource "aws_ecr_repository" "this" {
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"
  tags                 = local.tags

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.this.arn
  }
}

################################################################################
# IAM OIDC trust for the existing cluster (IRSA)
################################################################################

resource "aws_iam_openid_connect_provider" "this" {
  count = var.oidc_provider_arn == null ? 1 : 0

  url            = var.cluster_oidc_issuer_url
  client_id_list = ["sts.amazonaws.com"]
  tags           = local.tags
}

################################################################################
# MongoDB-compatible store: Amazon DocumentDB (or an external URI secret)
################################################################################

resource "aws_security_group" "this" {
  count = local.documentdb

  name        = "${var.name}-documentdb"
  description = "DocumentDB for ${var.name}: MongoDB wire protocol from the cluster's nodes only"
  vpc_id      = var.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each = local.documentdb == 1 ? toset(var.store_client_security_group_ids) : toset([])

  security_group_id            = aws_security_group.this[0].id
  description                  = "MongoDB wire protocol from ${each.value}"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 27017
  to_port                      = 27017
  tags                         = local.tags
}

resource "aws_docdb_subnet_group" "this" {
  count = local.documentdb

  name        = "${var.name}-documentdb"
  description = "Private subnets of the ${var.name} DocumentDB cluster"
  subnet_ids  = var.subnet_ids
  tags        = local.tags
}

resource "aws_docdb_cluster_parameter_group" "this" {
  count = local.documentdb

  name        = "${var.name}-documentdb"
  family      = local.documentdb_family
  description = "TLS required, audit logging on"
  tags        = local.tags

  parameter {
    name  = "tls"
    value = "enabled"
  }

  parameter {
    name  = "audit_logs"
    value = "enabled"
  }
}

resource "aws_docdb_cluster" "this" {
  count = local.documentdb

  cluster_identifier              = var.name
  engine                          = "docdb"
  engine_version                  = local.documentdb_engine_version
  port                            = 27017
  master_username                 = "tally"
  manage_master_user_password     = true
  db_subnet_group_name            = aws_docdb_subnet_group.this[0].name
  db_cluster_parameter_group_name = aws_docdb_cluster_parameter_group.this[0].name
  vpc_security_group_ids          = [aws_security_group.this[0].id]
  storage_encrypted               = true
  kms_key_id                      = aws_kms_key.this.arn
  backup_retention_period         = var.documentdb_backup_retention_days
  preferred_backup_window         = "02:00-03:00"
  deletion_protection             = true
  skip_final_snapshot             = false
  final_snapshot_identifier       = "${var.name}-final"
  enabled_cloudwatch_logs_exports = ["audit", "profiler"]
  tags                            = local.tags
}

resource "aws_docdb_cluster_instance" "this" {
  count = local.documentdb * var.documentdb_instance_count

  identifier                 = "${var.name}-${count.index}"
  cluster_identifier         = aws_docdb_cluster.this[0].id
  instance_class             = var.documentdb_instance_class
  auto_minor_version_upgrade = true
  tags                       = local.tags
}

# The CA bundle DocumentDB's TLS needs (Amazon RDS global-bundle.pem, public), synced
# into every instance's namespace; the store URL's tlsCAFile points at its mount.
resource "aws_secretsmanager_secret" "store_ca" {
  #checkov:skip=CKV2_AWS_57:A public CA bundle, replaced when AWS publishes a new one; nothing to rotate.
  count = local.documentdb

  name                    = "${var.name}/platform/store-ca"
  description             = "CA bundle of the ${var.name} DocumentDB TLS (PEM)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "store_ca" {
  count = local.documentdb == 1 && var.store_ca_bundle != null ? 1 : 0

  secret_id     = aws_secretsmanager_secret.store_ca[0].id
  secret_string = var.store_ca_bundle
}

################################################################################
# The pooled instance: its own database user and signing keys, like a tenant's
################################################################################

# Database user tally_pooled (readWrite on the pooled database only), filled and
# rotated by the CD pipeline with `tally migrate --pooled`, never by Terraform.
resource "aws_secretsmanager_secret" "pooled_store" {
  #checkov:skip=CKV2_AWS_57:Rotated by the CD pipeline (new password, `tally migrate --pooled` updates the user), not a rotation Lambda.
  name                    = "${var.name}/pooled/store"
  description             = "Database user of the pooled ${var.name} instance (readWrite on ${var.pooled_database} only)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret" "pooled_signing_keys" {
  #checkov:skip=CKV2_AWS_57:Signing keys rotate through `tally keys rotate` (the JWKS publishes the next key first), not a rotation Lambda.
  name                    = "${var.name}/pooled/signing-keys"
  description             = "JWT signing keys of the pooled ${var.name} instance (JSON: file name to content)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

module "pooled_role" {
  source = "../instance-role"

  name                 = "${var.name}-pooled"
  description          = "Pooled Tally instance (${local.pooled_service_account})"
  oidc_provider_arn    = local.oidc_provider_arn
  oidc_issuer          = local.oidc_issuer
  namespace            = var.pooled_namespace
  service_account_name = local.pooled_service_account_name
  secret_arns          = local.pooled_secrets
  kms_key_arn          = aws_kms_key.this.arn
  tags                 = local.tags
}

# State from before modules/instance-role (the role and policy were declared here)
# moves into the module: the role is kept, not replaced.
moved {
  from = aws_iam_role.pooled
  to   = module.pooled_role.aws_iam_role.this
}

moved {
  from = aws_iam_role_policy.pooled
  to   = module.pooled_role.aws_iam_role_policy.this
}
