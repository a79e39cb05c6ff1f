mock_provider "aws" {
  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/instance-AbCdEf"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::111122223333:role/tally-acme"
    }
  }

}

override_resource {
  target = aws_secretsmanager_secret.store
  values = {
    arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/store-StUvWx"
  }
}

override_resource {
  target = aws_secretsmanager_secret.signing_keys
  values = {
    arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/signing-keys-GhIjKl"
  }
}

variables {
  slug                = "acme"
  display_name        = "Acme Corp"
  plan                = "enterprise"
  namespace           = "tally-acme"
  primary_color       = "#FF6600"
  platform_domain     = "tally.example.com"
  zone_id             = "Z0123456789ABCDEFGHIJ"
  ingress_hostname    = "k8s-ingress-1234.eu-west-1.elb.amazonaws.com"
  oidc_provider_arn   = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
  oidc_issuer         = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
  kms_key_arn         = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  store_host          = "docdb.example:27017"
  store_url_options   = "tls=true&retryWrites=false&w=majority"
  store_ca_secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/platform/store-ca-MnOpQr"
  tags                = { "environment" = "test" }
}

run "names_and_platform_dns_record" {
  command = apply

  assert {
    condition     = aws_route53_record.this.name == "acme.tally.example.com"
    error_message = "The instance record must be <slug>.<platform domain>."
  }

  assert {
    condition     = aws_route53_record.this.type == "CNAME" && aws_route53_record.this.records == toset(["k8s-ingress-1234.eu-west-1.elb.amazonaws.com"])
    error_message = "The instance record must point at the ingress load balancer."
  }

  assert {
    condition     = module.role.name == "tally-acme" && aws_secretsmanager_secret.this.name == "tally/acme/instance"
    error_message = "Role and secret names must carry the slug."
  }

  assert {
    condition     = output.hosts == tolist(["acme.tally.example.com"]) && output.public_url == "https://acme.tally.example.com"
    error_message = "Without a custom domain only the platform host is served."
  }

  assert {
    condition     = length(output.custom_domain_dns_records) == 0
    error_message = "No custom certificate without a custom domain."
  }
}

run "trust_policy_admits_only_the_tenant_service_account" {
  command = apply

  assert {
    condition = jsondecode(module.role.assume_role_policy).Statement[0].Condition.StringEquals == {
      "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE:sub" = "system:serviceaccount:tally-acme:tally"
      "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE:aud" = "sts.amazonaws.com"
    }
    error_message = "Only system:serviceaccount:<namespace>:<sa> with the STS audience may assume the role."
  }

  assert {
    condition     = jsondecode(module.role.assume_role_policy).Statement[0].Principal.Federated == var.oidc_provider_arn
    error_message = "The role must trust the cluster's OIDC provider only."
  }

  assert {
    condition     = length(jsondecode(module.role.assume_role_policy).Statement) == 1
    error_message = "The trust policy must have a single statement."
  }
}

run "role_reads_only_its_own_secret" {
  command = apply

  assert {
    condition = [for s in jsondecode(module.role.policy).Statement : s.Resource] == [
      [
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/instance-AbCdEf",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/store-StUvWx",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/signing-keys-GhIjKl",
        var.store_ca_secret_arn,
      ],
      var.kms_key_arn,
    ]
    error_message = "The role may read only its own secrets, the store CA, and use the key that encrypts them."
  }

  assert {
    condition     = toset(jsondecode(module.role.policy).Statement[0].Action) == toset(["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"])
    error_message = "Secret access must be read-only."
  }

  assert {
    condition     = jsondecode(module.role.policy).Statement[1].Condition.StringEquals["kms:EncryptionContext:SecretARN"] == jsondecode(module.role.policy).Statement[0].Resource
    error_message = "Decryption must be limited to those secrets' encryption context."
  }

  assert {
    condition     = aws_secretsmanager_secret.this.kms_key_id == var.kms_key_arn && aws_secretsmanager_secret.signing_keys.kms_key_id == var.kms_key_arn
    error_message = "The secrets must be encrypted with the platform key."
  }

  assert {
    condition     = jsondecode(aws_secretsmanager_secret_version.this.secret_string) == { "mongo-database" = "tally_acme", "tenant" = "acme", "public-url" = "https://acme.tally.example.com", "timezone" = "UTC" }
    error_message = "The instance secret holds its configuration and no credential (no store URL, no password)."
  }

  assert {
    condition     = output.store_username == "tally-acme" && output.store_secret_name == "tally/acme/store"
    error_message = "The instance has its own database user, in a secret Terraform only creates."
  }
}

run "tags_name_tenant_and_plan" {
  command = plan

  assert {
    condition     = module.role.tags == tomap({ "environment" = "test", "tally:tenant" = "acme", "tally:plan" = "enterprise" })
    error_message = "Tags must merge the caller's tags with tenant and plan."
  }

  assert {
    condition     = aws_secretsmanager_secret.this.tags["tally:tenant"] == "acme" && aws_secretsmanager_secret.this.tags["tally:plan"] == "enterprise"
    error_message = "The secret must be tagged with tenant and plan."
  }
}

run "custom_domain_gets_the_clients_cname" {
  command = apply

  variables {
    domain = "numbers.acme.com"
  }

  assert {
    condition     = output.hosts == tolist(["acme.tally.example.com", "numbers.acme.com"]) && output.public_url == "https://numbers.acme.com"
    error_message = "The custom domain is served and becomes the public URL."
  }

  assert {
    condition = jsonencode(output.custom_domain_dns_records) == jsonencode([
      { name = "numbers.acme.com", type = "CNAME", value = "acme.tally.example.com" },
    ])
    error_message = "The client publishes one CNAME; cert-manager validates the domain over HTTP through it."
  }
}

run "rejects_uppercase_slug" {
  command = plan

  variables {
    slug = "Acme"
  }

  expect_failures = [var.slug]
}

run "rejects_slug_with_trailing_hyphen" {
  command = plan

  variables {
    slug = "acme-"
  }

  expect_failures = [var.slug]
}

run "rejects_overlong_slug" {
  command = plan

  variables {
    slug = "a23456789012345678901234567890123"
  }

  expect_failures = [var.slug]
}

# tenants.schemas.RESERVED_SLUGS: tenant "pooled" would get tally/pooled/* and tally-pooled,
# the pooled instance's secrets and role.
run "rejects_reserved_slug" {
  command = plan

  variables {
    slug      = "pooled"
    namespace = "tally-pooled"
  }

  expect_failures = [var.slug]
}

run "rejects_bad_custom_domain" {
  command = plan

  variables {
    domain = "https://acme.com/"
  }

  expect_failures = [var.domain]
}

run "rejects_bad_colour" {
  command = plan

  variables {
    primary_color = "orange"
  }

  expect_failures = [var.primary_color]
}

run "rejects_bad_namespace" {
  command = plan

  variables {
    namespace = "Tally_Acme"
  }

  expect_failures = [var.namespace]
}

# Another namespace's service account (the pooled instance's, another tenant's) must
# never be trusted with this instance's role: the namespace is the one CD deploys to.
run "rejects_the_pooled_namespace" {
  command = plan

  variables {
    namespace = "tally"
  }

  expect_failures = [var.namespace]
}

run "rejects_another_tenants_namespace" {
  command = plan

  variables {
    namespace = "tally-globex"
  }

  expect_failures = [var.namespace]
}

# State written before modules/instance-role existed (aws_iam_role.this and
# aws_iam_role_policy.this in this module) moves into module.role: the same role, not
# replaced (its unique_id survives), with every attribute as it was.
run "pre_instance_role_state" {
  command   = apply
  state_key = "pre-instance-role"

  module {
    source = "./tests/fixtures/pre-instance-role"
  }

  variables {
    name_prefix          = "tally"
    service_account_name = "tally"
    readable_secrets = [
      "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/instance-AbCdEf",
      "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/store-StUvWx",
      "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/acme/signing-keys-GhIjKl",
      var.store_ca_secret_arn,
    ]
  }
}

run "role_moves_into_the_instance_role_module_unchanged" {
  command   = apply
  state_key = "pre-instance-role"

  assert {
    condition     = module.role.unique_id == run.pre_instance_role_state.unique_id && output.role_arn == run.pre_instance_role_state.arn
    error_message = "The role must move into module.role, not be replaced."
  }

  assert {
    condition = [module.role.name, module.role.description, module.role.max_session_duration, module.role.tags] == [
      run.pre_instance_role_state.name,
      run.pre_instance_role_state.description,
      run.pre_instance_role_state.max_session_duration,
      run.pre_instance_role_state.tags,
    ]
    error_message = "Name, description, session length and tags must stay as they were."
  }

  assert {
    condition     = jsondecode(module.role.assume_role_policy) == jsondecode(run.pre_instance_role_state.assume_role_policy)
    error_message = "The trust policy must stay as it was."
  }

  assert {
    condition     = module.role.policy_name == run.pre_instance_role_state.policy_name && jsondecode(module.role.policy) == jsondecode(run.pre_instance_role_state.policy)
    error_message = "The inline policy must stay as it was."
  }
}
