data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  tags = merge(var.tags, { "tally:component" = "platform" })

  documentdb = var.store == "documentdb" ? 1 : 0

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
  family      = "docdb5.0"
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
  engine_version                  = "5.0.0"
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
