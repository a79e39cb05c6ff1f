# One tenant instance with a custom domain, on an existing platform.
provider "aws" {
  region = "eu-west-1"
}

module "acme" {
  source = "../.."

  slug          = "acme"
  display_name  = "Acme Corp"
  plan          = "enterprise"
  namespace     = "tally-acme"
  primary_color = "#FF6600"
  domain        = "numbers.acme.com"
  timezone      = "Europe/Berlin"

  platform_domain     = "tally.example.com"
  zone_id             = "Z0123456789ABCDEFGHIJ"
  ingress_hostname    = "k8s-ingress-1234.eu-west-1.elb.amazonaws.com"
  oidc_provider_arn   = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
  oidc_issuer         = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
  kms_key_arn         = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  store_ca_secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/platform/store-ca-AbCdEf"
}

output "custom_domain_dns_records" {
  description = "The CNAME the client publishes for numbers.acme.com."
  value       = module.acme.custom_domain_dns_records
}
