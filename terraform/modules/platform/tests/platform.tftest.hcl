mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "111122223333"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }

  mock_data "aws_route53_zone" {
    defaults = {
      zone_id = "ZEXISTING"
    }
  }

  mock_resource "aws_route53_zone" {
    defaults = {
      zone_id = "ZCREATED"
    }
  }

  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:eu-west-1:111122223333:key/platform"
    }
  }

  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:eu-west-1:111122223333:certificate/wildcard"
      # The apex and the wildcard name share one validation record.
      domain_validation_options = [
        {
          domain_name           = "tally.example.com"
          resource_record_name  = "_v.tally.example.com."
          resource_record_type  = "CNAME"
          resource_record_value = "_x.acm-validations.aws."
        },
        {
          domain_name           = "*.tally.example.com"
          resource_record_name  = "_v.tally.example.com."
          resource_record_type  = "CNAME"
          resource_record_value = "_x.acm-validations.aws."
        },
      ]
    }
  }

  mock_resource "aws_acm_certificate_validation" {
    defaults = {
      certificate_arn = "arn:aws:acm:eu-west-1:111122223333:certificate/wildcard"
    }
  }

  mock_resource "aws_iam_openid_connect_provider" {
    defaults = {
      arn = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
    }
  }

  mock_resource "aws_docdb_cluster" {
    defaults = {
      endpoint = "tally.cluster-abc.eu-west-1.docdb.amazonaws.com"
      port     = 27017
      master_user_secret = [
        {
          kms_key_id    = "arn:aws:kms:eu-west-1:111122223333:key/platform"
          secret_arn    = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!cluster-abc"
          secret_status = "active"
        },
      ]
    }
  }
}

variables {
  domain_name                     = "tally.example.com"
  cluster_oidc_issuer_url         = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
  vpc_id                          = "vpc-0123456789abcdef0"
  subnet_ids                      = ["subnet-a", "subnet-b"]
  store_client_security_group_ids = ["sg-nodes"]
  tags                            = { "environment" = "test" }
}

run "creates_zone_wildcard_certificate_and_validation" {
  command = apply

  assert {
    condition     = aws_route53_zone.this[0].name == "tally.example.com" && output.zone_id == "ZCREATED"
    error_message = "The platform zone must be created for the domain."
  }

  assert {
    condition     = aws_acm_certificate.this.subject_alternative_names == toset(["*.tally.example.com"]) && aws_acm_certificate.this.validation_method == "DNS"
    error_message = "The certificate must cover the wildcard and validate through DNS."
  }

  assert {
    condition     = aws_route53_record.validation.name == "_v.tally.example.com." && aws_route53_record.validation.zone_id == "ZCREATED"
    error_message = "One validation record, in the platform zone."
  }

  assert {
    condition     = output.certificate_arn == "arn:aws:acm:eu-west-1:111122223333:certificate/wildcard"
    error_message = "The certificate output must be the validated certificate."
  }
}

run "looks_up_an_existing_zone" {
  command = plan

  variables {
    create_dns_zone = false
  }

  assert {
    condition     = length(aws_route53_zone.this) == 0 && output.zone_id == "ZEXISTING"
    error_message = "With create_dns_zone = false the zone is looked up, not created."
  }
}

run "registry_and_key_are_hardened" {
  command = apply

  assert {
    condition     = aws_ecr_repository.this.name == "tally" && aws_ecr_repository.this.image_tag_mutability == "IMMUTABLE"
    error_message = "Image tags must be immutable."
  }

  assert {
    condition     = aws_ecr_repository.this.image_scanning_configuration[0].scan_on_push
    error_message = "Images must be scanned on push."
  }

  assert {
    condition     = aws_kms_key.this.enable_key_rotation && aws_kms_alias.this.name == "alias/tally"
    error_message = "The KMS key rotates and has an alias."
  }

  assert {
    condition     = output.kms_key_arn == "arn:aws:kms:eu-west-1:111122223333:key/platform"
    error_message = "The key ARN is an output."
  }
}

run "documentdb_is_encrypted_backed_up_and_protected" {
  command = apply

  assert {
    condition     = aws_docdb_cluster.this[0].storage_encrypted && aws_docdb_cluster.this[0].kms_key_id == "arn:aws:kms:eu-west-1:111122223333:key/platform"
    error_message = "Storage must be encrypted with the platform key."
  }

  assert {
    condition     = aws_docdb_cluster.this[0].deletion_protection && !aws_docdb_cluster.this[0].skip_final_snapshot && aws_docdb_cluster.this[0].backup_retention_period == 14
    error_message = "Deletion protection, a final snapshot and backups are required."
  }

  assert {
    condition     = one([for p in aws_docdb_cluster_parameter_group.this[0].parameter : p.value if p.name == "tls"]) == "enabled"
    error_message = "TLS must be enforced."
  }

  assert {
    condition     = aws_docdb_cluster.this[0].manage_master_user_password && output.store_secret_arn == "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!cluster-abc"
    error_message = "The master password is managed by AWS and its secret is the store secret."
  }

  assert {
    condition     = length(aws_docdb_cluster_instance.this) == 2 && output.store_endpoint == "tally.cluster-abc.eu-west-1.docdb.amazonaws.com"
    error_message = "Two instances by default; the endpoint is an output."
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.this["sg-nodes"].from_port == 27017 && aws_vpc_security_group_ingress_rule.this["sg-nodes"].referenced_security_group_id == "sg-nodes"
    error_message = "Only the cluster nodes may reach the store."
  }
}

run "external_store_creates_no_documentdb" {
  command = plan

  variables {
    store                         = "external"
    external_store_uri_secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:atlas-uri"
    external_store_host           = "cluster0.abcde.mongodb.net"
    vpc_id                        = null
    subnet_ids                    = []
  }

  assert {
    condition     = output.store_scheme == "mongodb+srv" && output.store_host == "cluster0.abcde.mongodb.net" && output.store_url_options == "retryWrites=true&w=majority"
    error_message = "An external replica set gets its own host and retryable writes."
  }

  assert {
    condition     = output.documentdb_engine_version == null && output.store_ca_secret_arn == null
    error_message = "No DocumentDB engine and no CA bundle for an external store."
  }

  assert {
    condition     = length(aws_docdb_cluster.this) == 0 && length(aws_security_group.this) == 0
    error_message = "No DocumentDB for an external store."
  }

  assert {
    condition     = output.store_secret_arn == "arn:aws:secretsmanager:eu-west-1:111122223333:secret:atlas-uri" && output.store_endpoint == null
    error_message = "The external URI secret is the store secret."
  }
}

run "oidc_provider_trusts_the_cluster_issuer" {
  command = apply

  assert {
    condition     = aws_iam_openid_connect_provider.this[0].url == "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE" && aws_iam_openid_connect_provider.this[0].client_id_list == toset(["sts.amazonaws.com"])
    error_message = "The OIDC provider must trust the cluster issuer for STS."
  }

  assert {
    condition     = output.oidc_issuer == "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
    error_message = "The issuer output has no scheme (IRSA condition keys)."
  }
}

run "reuses_an_existing_oidc_provider" {
  command = plan

  variables {
    oidc_provider_arn = "arn:aws:iam::111122223333:oidc-provider/existing"
  }

  assert {
    condition     = length(aws_iam_openid_connect_provider.this) == 0 && output.oidc_provider_arn == "arn:aws:iam::111122223333:oidc-provider/existing"
    error_message = "An existing OIDC provider is reused."
  }
}

run "tags_are_merged" {
  command = plan

  assert {
    condition     = aws_ecr_repository.this.tags == tomap({ "environment" = "test", "tally:component" = "platform" })
    error_message = "Tags must merge the caller's tags."
  }
}

run "rejects_bad_domain" {
  command = plan

  variables {
    domain_name = "Tally_Example.com"
  }

  expect_failures = [var.domain_name]
}

run "external_store_requires_secret_arn" {
  command = plan

  variables {
    store               = "external"
    external_store_host = "cluster0.abcde.mongodb.net"
  }

  expect_failures = [var.external_store_uri_secret_arn]
}

run "documentdb_engine_and_url_agree" {
  command = apply

  assert {
    condition     = aws_docdb_cluster.this[0].engine_version == "5.0.0" && aws_docdb_cluster_parameter_group.this[0].family == "docdb5.0" && output.documentdb_engine_version == "5.0.0"
    error_message = "DocumentDB 5.0 with its own parameter-group family."
  }

  assert {
    condition = toset(split("&", output.store_url_options)) == toset([
      "tls=true",
      "tlsCAFile=/var/run/tally/store-ca/global-bundle.pem",
      "replicaSet=rs0",
      "readPreference=primary",
      "retryWrites=false",
      "w=majority",
    ])
    error_message = "DocumentDB has no retryable writes: the URL must say retryWrites=false, with majority writes, TLS and primary reads."
  }

  assert {
    condition     = output.store_scheme == "mongodb" && output.store_host == "tally.cluster-abc.eu-west-1.docdb.amazonaws.com:27017"
    error_message = "Instances reach the cluster endpoint."
  }

  assert {
    condition     = aws_secretsmanager_secret.store_ca[0].name == "tally/platform/store-ca" && length(aws_secretsmanager_secret_version.store_ca) == 0
    error_message = "The CA bundle secret exists; without store_ca_bundle the operator fills it."
  }
}

run "store_ca_bundle_is_written_when_given" {
  command = plan

  variables {
    store_ca_bundle = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
  }

  assert {
    condition     = aws_secretsmanager_secret_version.store_ca[0].secret_string == var.store_ca_bundle
    error_message = "The given CA bundle is stored."
  }
}

run "pooled_instance_has_its_own_role_and_secrets" {
  command = apply

  assert {
    condition     = module.pooled_role.name == "tally-pooled" && jsondecode(module.pooled_role.assume_role_policy).Statement[0].Condition.StringEquals["oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE:sub"] == "system:serviceaccount:tally:tally"
    error_message = "Only the pooled instance's service account may assume the pooled role."
  }

  assert {
    condition     = toset(jsondecode(module.pooled_role.policy).Statement[0].Resource) == toset([aws_secretsmanager_secret.pooled_store.arn, aws_secretsmanager_secret.pooled_signing_keys.arn, aws_secretsmanager_secret.store_ca[0].arn])
    error_message = "The pooled role reads its own secrets and the CA bundle, never the admin secret."
  }

  assert {
    condition     = output.pooled.store_secret_name == "tally/pooled/store" && output.pooled.store_username == "tally_pooled"
    error_message = "The pooled instance has its own database user."
  }

  assert {
    condition     = output.pooled.hosts == ["tally.example.com"] && output.pooled.public_url == "https://tally.example.com" && output.pooled.service_account_name == "tally"
    error_message = "The pooled instance serves the platform domain, the host CD smoke-tests."
  }
}

# State written before modules/instance-role existed (aws_iam_role.pooled and
# aws_iam_role_policy.pooled in this module) moves into module.pooled_role: the same
# role, not replaced (its unique_id survives), with every attribute as it was.
run "pre_instance_role_state" {
  command   = apply
  state_key = "pre-instance-role"

  module {
    source = "./tests/fixtures/pre-instance-role"
  }

  variables {
    name              = "tally"
    pooled_namespace  = "tally"
    oidc_provider_arn = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
    oidc_issuer       = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
    kms_key_arn       = "arn:aws:kms:eu-west-1:111122223333:key/platform"
    pooled_secrets = [
      "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/pooled/store-AbCdEf",
      "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/pooled/signing-keys-GhIjKl",
      "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/platform/store-ca-MnOpQr",
    ]
  }
}

run "pooled_role_moves_into_the_instance_role_module_unchanged" {
  command   = apply
  state_key = "pre-instance-role"

  override_resource {
    target = aws_secretsmanager_secret.pooled_store
    values = {
      arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/pooled/store-AbCdEf"
    }
  }

  override_resource {
    target = aws_secretsmanager_secret.pooled_signing_keys
    values = {
      arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/pooled/signing-keys-GhIjKl"
    }
  }

  override_resource {
    target = aws_secretsmanager_secret.store_ca
    values = {
      arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/platform/store-ca-MnOpQr"
    }
  }

  assert {
    condition     = module.pooled_role.unique_id == run.pre_instance_role_state.unique_id && output.pooled.role_arn == run.pre_instance_role_state.arn
    error_message = "The pooled role must move into module.pooled_role, not be replaced."
  }

  assert {
    condition = [module.pooled_role.name, module.pooled_role.description, module.pooled_role.max_session_duration, module.pooled_role.tags] == [
      run.pre_instance_role_state.name,
      run.pre_instance_role_state.description,
      run.pre_instance_role_state.max_session_duration,
      run.pre_instance_role_state.tags,
    ]
    error_message = "Name, description, session length and tags must stay as they were."
  }

  assert {
    condition     = jsondecode(module.pooled_role.assume_role_policy) == jsondecode(run.pre_instance_role_state.assume_role_policy)
    error_message = "The trust policy must stay as it was."
  }

  assert {
    condition     = module.pooled_role.policy_name == run.pre_instance_role_state.policy_name && jsondecode(module.pooled_role.policy) == jsondecode(run.pre_instance_role_state.policy)
    error_message = "The inline policy must stay as it was."
  }
}
