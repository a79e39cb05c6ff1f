# The role of one instance's service account, reading two secrets encrypted by one key.
provider "aws" {
  region = "eu-west-1"
}

module "role" {
  source = "../.."

  name                 = "tally-pooled"
  description          = "Pooled Tally instance (system:serviceaccount:tally:tally)"
  oidc_provider_arn    = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
  oidc_issuer          = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE"
  namespace            = "tally"
  service_account_name = "tally"
  secret_arns = [
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/pooled/store-AbCdEf",
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:tally/pooled/signing-keys-GhIjKl",
  ]
  kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  tags        = { "tally:component" = "platform" }
}

output "role_arn" {
  description = "The serviceAccount.roleArn of the instance's Helm release."
  value       = module.role.arn
}
