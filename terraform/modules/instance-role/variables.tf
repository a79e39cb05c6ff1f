variable "name" {
  type        = string
  description = "Name of the IAM role."
}

variable "description" {
  type        = string
  description = "Description of the IAM role."
}

variable "oidc_provider_arn" {
  type        = string
  description = "ARN of the IAM OIDC provider of the cluster, the only principal the role trusts."
}

variable "oidc_issuer" {
  type        = string
  description = "Cluster OIDC issuer without https://, prefix of the trust-policy condition keys."

  # With the scheme the condition keys never match and no pod can assume the role.
  validation {
    condition     = !startswith(var.oidc_issuer, "https://") && length(var.oidc_issuer) > 0
    error_message = "oidc_issuer is the issuer URL without https:// (e.g. oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE)."
  }
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace of the service account that may assume the role."
}

variable "service_account_name" {
  type        = string
  description = "Name of the Kubernetes service account that may assume the role."
}

variable "secret_arns" {
  type        = list(string)
  description = "Secrets Manager secrets the role may read; kms:Decrypt is limited to their encryption context."

  # An empty Resource list is an invalid policy document.
  validation {
    condition     = length(var.secret_arns) > 0
    error_message = "secret_arns must name at least one secret."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key that encrypts the secrets."
}

variable "tags" {
  type        = map(string)
  description = "Tags of the IAM role."
  default     = {}
}
