# The platform on DocumentDB, in an existing VPC and EKS cluster.
provider "aws" {
  region = "eu-west-1"
}

module "platform" {
  source = "../.."

  domain_name                     = "tally.example.com"
  cluster_oidc_issuer_url         = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
  vpc_id                          = "vpc-0123456789abcdef0"
  subnet_ids                      = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
  store_client_security_group_ids = ["sg-0123456789abcdef0"]
  tags                            = { "environment" = "example" }
}

output "store_url_options" {
  description = "What every instance's store URL carries (retryWrites=false for DocumentDB)."
  value       = module.platform.store_url_options
}
