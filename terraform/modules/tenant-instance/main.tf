locals {
  fqdn  = "${var.slug}.${var.platform_domain}"
  hosts = compact([local.fqdn, var.domain])

  # Siloed instances share the store but never a database.
  database = "tally_${replace(var.slug, "-", "_")}"

  service_account = "system:serviceaccount:${var.namespace}:${var.service_account_name}"

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

# The client owns the custom domain's zone: the validation records and the CNAME
# are outputs for the client to publish, so nothing here waits for validation.
resource "aws_acm_certificate" "custom" {
  count = var.domain == null ? 0 : 1

  domain_name       = var.domain
  validation_method = "DNS"
  tags              = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

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

  # Keys are the Kubernetes Secret keys the Helm chart reads (existingSecret).
  secret_string = jsonencode({
    "store-url"      = var.store_url
    "mongo-database" = local.database
    "tenant"         = var.slug
    "public-url"     = "https://${coalesce(var.domain, local.fqdn)}"
    "timezone"       = var.timezone
  })
}

################################################################################
# IRSA role: assumable only by the instance's service account, reads only its secret
################################################################################

resource "aws_iam_role" "this" {
  name                 = "${var.name_prefix}-${var.slug}"
  description          = "Tally instance of ${var.display_name} (${var.namespace}/${var.service_account_name})"
  max_session_duration = 3600
  tags                 = local.tags

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Federated = var.oidc_provider_arn }
        Action    = "sts:AssumeRoleWithWebIdentity"
        Condition = {
          StringEquals = {
            "${var.oidc_issuer}:sub" = local.service_account
            "${var.oidc_issuer}:aud" = "sts.amazonaws.com"
          }
        }
      },
    ]
  })
}

resource "aws_iam_role_policy" "this" {
  name = "read-instance-secret"
  role = aws_iam_role.this.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ReadInstanceSecret"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
        Resource = aws_secretsmanager_secret.this.arn
      },
      {
        Sid      = "DecryptInstanceSecret"
        Effect   = "Allow"
        Action   = "kms:Decrypt"
        Resource = var.kms_key_arn
        Condition = {
          StringEquals = {
            "kms:EncryptionContext:SecretARN" = aws_secretsmanager_secret.this.arn
          }
        }
      },
    ]
  })
}
