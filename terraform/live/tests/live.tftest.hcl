# The root reads tenant files as `tally provision` writes them: one with every
# optional key set, one with the optional keys null.
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

  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:eu-west-1:111122223333:key/platform"
    }
  }

  mock_resource "aws_iam_openid_connect_provider" {
    defaults = {
      arn = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
    }
  }

  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/tenant/instance-AbCdEf"
    }
  }

  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:eu-west-1:111122223333:certificate/mock"
      domain_validation_options = [
        {
          domain_name           = "tally.example.com"
          resource_record_name  = "_v.tally.example.com."
          resource_record_type  = "CNAME"
          resource_record_value = "_x.acm-validations.aws."
        },
      ]
    }
  }

  mock_resource "aws_docdb_cluster" {
    defaults = {
      endpoint = "tally.cluster-abc.eu-west-1.docdb.amazonaws.com"
      port     = 27017
      master_user_secret = [
        {
          kms_key_id    = "k"
          secret_arn    = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!cluster-abc"
          secret_status = "active"
        },
      ]
    }
  }
}

variables {
  region                  = "eu-west-1"
  domain_name             = "tally.example.com"
  cluster_oidc_issuer_url = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
  ingress_hostname        = "k8s-ingress-1234.eu-west-1.elb.amazonaws.com"
  vpc_id                  = "vpc-0123456789abcdef0"
  subnet_ids              = ["subnet-a", "subnet-b"]
  tenants_dir             = "tests/fixtures/tenants"
}

run "one_tenant_instance_per_tenant_file" {
  command = apply

  assert {
    condition     = toset(keys(module.tenant)) == toset(["acme", "globex"])
    error_message = "Every tenant file must become one tenant-instance."
  }

  assert {
    condition     = output.tenants["acme"].hosts == tolist(["acme.tally.example.com", "numbers.acme.com"]) && output.tenants["globex"].hosts == tolist(["globex.tally.example.com"])
    error_message = "Optional custom domains must be honoured, and absent ones ignored."
  }

  assert {
    condition     = output.tenants["globex"].namespace == "tally-globex" && output.tenants["globex"].database == "tally_globex"
    error_message = "Namespace and database come from the tenant file."
  }
}

run "store_urls_carry_no_admin_credentials" {
  command = apply

  assert {
    condition     = output.platform.store_url_options == "tls=true&tlsCAFile=/var/run/tally/store-ca/global-bundle.pem&replicaSet=rs0&readPreference=primary&retryWrites=false&w=majority" && output.platform.documentdb_engine_version == "5.0.0"
    error_message = "Every instance's URL options come from the platform module, for its DocumentDB version."
  }

  assert {
    condition     = output.tenants["acme"].store_username == "tally-acme" && output.tenants["acme"].store_secret_name == "tally/acme/store" && output.platform.pooled.store_username == "tally_pooled"
    error_message = "Each instance, the pooled one too, has its own database user."
  }

  assert {
    condition     = alltrue([for slug, tenant in module.tenant : !strcontains(tenant.secret_arn, "rds!")])
    error_message = "No tenant secret is the admin secret."
  }
}

# Fixture directories only: the committed tenants/ directory may hold real tenants.
run "no_tenant_files_no_tenants" {
  command = plan

  variables {
    tenants_dir = "tests/fixtures/empty"
  }

  assert {
    condition     = length(module.tenant) == 0
    error_message = "An empty tenants directory provisions only the platform."
  }
}

# globex.json holding slug acme would plan acme's secrets and role under module.tenant["globex"]
# (what CD targets for "globex"); the plan fails, also when targeted as CD targets it.
run "refuses_a_tenant_file_not_named_by_its_slug" {
  command = plan

  variables {
    tenants_dir = "tests/fixtures/misnamed"
  }

  expect_failures = [output.tenants]
}

run "refuses_a_misnamed_tenant_file_in_a_targeted_plan" {
  command = plan

  variables {
    tenants_dir = "tests/fixtures/misnamed"
  }

  plan_options {
    target = [module.tenant["globex"]]
  }

  expect_failures = [output.tenants]
}
