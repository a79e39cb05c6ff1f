locals {
  service_account = "system:serviceaccount:${var.namespace}:${var.service_account_name}"
}

resource "aws_iam_role" "this" {
  name                 = var.name
  description          = var.description
  max_session_duration = 3600
  tags                 = var.tags

  # IRSA: only this one service account's projected token, issued for STS, is accepted.
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
  name = "read-instance-secrets"
  role = aws_iam_role.this.id

  # The key also encrypts other instances' secrets: the encryption-context condition
  # limits decryption to the secrets this role may read.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ReadInstanceSecrets"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
        Resource = var.secret_arns
      },
      {
        Sid      = "DecryptInstanceSecrets"
        Effect   = "Allow"
        Action   = "kms:Decrypt"
        Resource = var.kms_key_arn
        Condition = {
          StringEquals = {
            "kms:EncryptionContext:SecretARN" = var.secret_arns
          }
        }
      },
    ]
  })
}
