mock_provider "aws" {
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::111122223333:role/tally-acme"
    }
  }
}

variables {
  name                 = "tally-acme"
  description          = "Tally instance of Acme Corp (tally-acme/tally)"
  oidc_provider_arn    = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
  oidc_issuer          = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
  namespace            = "tally-acme"
  service_account_name = "tally"
  secret_arns = [
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/instance-AbCdEf",
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/store-StUvWx",
  ]
  kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  tags        = { "tally:tenant" = "acme" }
}

run "role_carries_the_given_name_description_and_tags" {
  command = apply

  assert {
    condition     = output.name == "tally-acme" && output.arn == "arn:aws:iam::111122223333:role/tally-acme"
    error_message = "The role takes the given name."
  }

  assert {
    condition     = output.description == var.description && output.tags == tomap({ "tally:tenant" = "acme" })
    error_message = "The role takes the given description and exactly the given tags."
  }

  assert {
    condition     = output.max_session_duration == 3600
    error_message = "Sessions last one hour."
  }
}

run "trust_admits_only_one_service_account_through_the_cluster_oidc_provider" {
  command = plan

  assert {
    condition = jsondecode(output.assume_role_policy) == {
      Version = "2012-10-17"
      Statement = [
        {
          Effect    = "Allow"
          Principal = { Federated = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE" }
          Action    = "sts:AssumeRoleWithWebIdentity"
          Condition = {
            StringEquals = {
              "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE:sub" = "system:serviceaccount:tally-acme:tally"
              "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE:aud" = "sts.amazonaws.com"
            }
          }
        },
      ]
    }
    error_message = "Only system:serviceaccount:<namespace>:<name>, with the STS audience, through the cluster's OIDC provider, may assume the role."
  }
}

run "policy_reads_exactly_the_given_secrets_and_decrypts_only_them" {
  command = plan

  assert {
    condition     = output.policy_name == "read-instance-secrets"
    error_message = "One inline policy, read-instance-secrets."
  }

  assert {
    condition = jsondecode(output.policy).Statement[0] == {
      Sid    = "ReadInstanceSecrets"
      Effect = "Allow"
      Action = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      Resource = [
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/instance-AbCdEf",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/store-StUvWx",
      ]
    }
    error_message = "Read-only access to exactly the given secrets."
  }

  assert {
    condition = jsondecode(output.policy).Statement[1] == {
      Sid      = "DecryptInstanceSecrets"
      Effect   = "Allow"
      Action   = "kms:Decrypt"
      Resource = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
      Condition = {
        StringEquals = {
          "kms:EncryptionContext:SecretARN" = [
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/instance-AbCdEf",
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/store-StUvWx",
          ]
        }
      }
    }
    error_message = "kms:Decrypt on the given key only, and only for those secrets' encryption context."
  }

  assert {
    condition     = length(jsondecode(output.policy).Statement) == 2
    error_message = "Nothing else is allowed."
  }
}

run "rejects_an_issuer_with_its_scheme" {
  command = plan

  variables {
    oidc_issuer = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
  }

  expect_failures = [var.oidc_issuer]
}

run "rejects_an_empty_secret_list" {
  command = plan

  variables {
    secret_arns = []
  }

  expect_failures = [var.secret_arns]
}
