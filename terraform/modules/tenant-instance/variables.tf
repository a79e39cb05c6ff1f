################################################################################
# Tenant file keys: terraform/live/tenants/<slug>.json holds exactly these
# (written by `tally provision`; schema in terraform/live/tenant.schema.json).
################################################################################

variable "slug" {
  type        = string
  description = "Tenant slug, a DNS label: the instance is served at <slug>.<platform_domain>."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.slug))
    error_message = "slug must be 2-32 characters of lowercase letters, digits and hyphens, start with a letter and not end with a hyphen."
  }

  # tenants.schemas.RESERVED_SLUGS: "pooled" would share the pooled instance's secrets and role.
  validation {
    condition     = !contains(["admin", "platform", "pooled"], var.slug)
    error_message = "slug must not be admin, platform or pooled (reserved: pooled names the pooled instance's secrets and role)."
  }
}

variable "display_name" {
  type        = string
  description = "Client's display name, shown in the branded instance."

  validation {
    condition     = length(trimspace(var.display_name)) > 0 && length(var.display_name) <= 100
    error_message = "display_name must be 1-100 characters."
  }
}

variable "plan" {
  type        = string
  description = "Commercial plan of the tenant; tagged on every resource for cost allocation."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.plan))
    error_message = "plan must be a lowercase word (letters, digits, hyphens), e.g. enterprise."
  }
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace of the tenant's instance; only its service account may assume the instance role."

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a Kubernetes namespace name (DNS label)."
  }

  # The namespace CD deploys the instance to (tally-<slug>). Any other would let the pods
  # of another namespace (the pooled instance's tally, another tenant's) assume this role.
  validation {
    condition     = var.namespace == "tally-${var.slug}"
    error_message = "namespace must be tally-<slug>, where the CD pipeline deploys the instance; only its service account may assume the instance's role."
  }
}

variable "domain" {
  type        = string
  description = "Optional custom domain of the client (e.g. numbers.acme.com); null serves only <slug>.<platform_domain>."
  default     = null

  validation {
    condition     = var.domain == null || (can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain)) && length(coalesce(var.domain, "x")) <= 253)
    error_message = "domain must be a lowercase fully qualified domain name such as numbers.acme.com."
  }
}

variable "primary_color" {
  type        = string
  description = "Brand colour as #RRGGBB."

  validation {
    condition     = can(regex("^#[0-9A-Fa-f]{6}$", var.primary_color))
    error_message = "primary_color must be a #RRGGBB hex colour."
  }
}

variable "logo_url" {
  type        = string
  description = "Optional https:// URL of the client's logo; null shows no logo."
  default     = null

  validation {
    condition     = var.logo_url == null || startswith(coalesce(var.logo_url, "https://"), "https://")
    error_message = "logo_url must be an https:// URL."
  }
}

variable "timezone" {
  type        = string
  description = "IANA time zone of the tenant (period resets of its sequences), e.g. Europe/Berlin."
  default     = "UTC"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", var.timezone))
    error_message = "timezone must be an IANA time zone name such as Europe/Berlin or UTC."
  }
}

################################################################################
# Platform-supplied inputs (from the platform module in the root)
################################################################################

variable "platform_domain" {
  type        = string
  description = "Platform DNS domain (platform module output domain_name)."
}

variable "zone_id" {
  type        = string
  description = "Route 53 zone ID of the platform domain."
}

variable "ingress_hostname" {
  type        = string
  description = "DNS name of the cluster's ingress load balancer that <slug>.<platform_domain> points to."
}

variable "oidc_provider_arn" {
  type        = string
  description = "ARN of the IAM OIDC provider of the cluster."
}

variable "oidc_issuer" {
  type        = string
  description = "Cluster OIDC issuer without https://, prefix of the trust-policy condition keys."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the instance secret."
}

variable "store_ca_secret_arn" {
  type        = string
  description = "ARN of the platform's store CA bundle secret the instance may read (DocumentDB), or null."
  default     = null
}

variable "service_account_name" {
  type        = string
  description = "Name of the Kubernetes service account of the instance (the Helm release's)."
  default     = "tally"
}

variable "name_prefix" {
  type        = string
  description = "Prefix of the IAM role and secret names."
  default     = "tally"
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource (tenant and plan tags are added on top)."
  default     = {}
}
