variable "name" {
  type        = string
  description = "Prefix for every platform resource name (KMS alias, ECR repository, DocumentDB cluster, ...)."
  default     = "tally"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "domain_name" {
  type        = string
  description = "Platform DNS domain; every tenant instance gets <slug>.<domain_name> (e.g. tally.example.com)."

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain_name)) && length(var.domain_name) <= 253
    error_message = "domain_name must be a lowercase fully qualified domain name such as tally.example.com."
  }
}

variable "create_dns_zone" {
  type        = bool
  description = "Create the public Route 53 zone for domain_name (true) or look up an existing one (false)."
  default     = true
}

variable "cluster_oidc_issuer_url" {
  type        = string
  description = "OIDC issuer URL of the existing Kubernetes (EKS) cluster, e.g. https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE."

  validation {
    condition     = startswith(var.cluster_oidc_issuer_url, "https://")
    error_message = "cluster_oidc_issuer_url must be an https:// URL."
  }
}

variable "oidc_provider_arn" {
  type        = string
  description = "ARN of an IAM OIDC provider that already trusts the cluster issuer; null creates one."
  default     = null
}

variable "store" {
  type        = string
  description = "Where tenants' data lives: \"documentdb\" (an Amazon DocumentDB cluster created here) or \"external\" (a MongoDB URI, e.g. Atlas, held in external_store_uri_secret_arn)."
  default     = "documentdb"

  validation {
    condition     = contains(["documentdb", "external"], var.store)
    error_message = "store must be \"documentdb\" or \"external\"."
  }
}

variable "external_store_uri_secret_arn" {
  type        = string
  description = "ARN of a Secrets Manager secret whose value is a mongodb:// or mongodb+srv:// URI; required when store = \"external\"."
  default     = null

  validation {
    condition     = var.store != "external" || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.external_store_uri_secret_arn))
    error_message = "external_store_uri_secret_arn must be a Secrets Manager secret ARN when store = \"external\"."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC of the Kubernetes cluster; the DocumentDB cluster is placed in it. Required when store = \"documentdb\"."
  default     = null

  validation {
    condition     = var.store != "documentdb" || var.vpc_id != null
    error_message = "vpc_id is required when store = \"documentdb\"."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets (two or more availability zones) for the DocumentDB subnet group."
  default     = []

  validation {
    condition     = var.store != "documentdb" || length(var.subnet_ids) >= 2
    error_message = "At least two subnet_ids are required when store = \"documentdb\"."
  }
}

variable "store_client_security_group_ids" {
  type        = list(string)
  description = "Security groups (e.g. the EKS node group's) allowed to connect to DocumentDB on port 27017."
  default     = []
}

variable "documentdb_instance_class" {
  type        = string
  description = "Instance class of the DocumentDB instances."
  default     = "db.r6g.large"
}

variable "documentdb_instance_count" {
  type        = number
  description = "Number of DocumentDB instances (one writer plus readers); 2 or more for high availability."
  default     = 2

  validation {
    condition     = var.documentdb_instance_count >= 1 && var.documentdb_instance_count <= 16
    error_message = "documentdb_instance_count must be between 1 and 16."
  }
}

variable "documentdb_backup_retention_days" {
  type        = number
  description = "Days of automated DocumentDB backups to keep."
  default     = 14

  validation {
    condition     = var.documentdb_backup_retention_days >= 7 && var.documentdb_backup_retention_days <= 35
    error_message = "documentdb_backup_retention_days must be between 7 and 35."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
