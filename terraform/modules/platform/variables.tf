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

variable "external_store_host" {
  type        = string
  description = "Host of the external store (e.g. cluster0.abcde.mongodb.net); each instance's URL names its own user on it. Required when store = \"external\"."
  default     = null

  validation {
    condition     = var.store != "external" || var.external_store_host != null
    error_message = "external_store_host is required when store = \"external\"."
  }
}

variable "external_store_scheme" {
  type        = string
  description = "URI scheme of the external store: mongodb+srv (Atlas) or mongodb."
  default     = "mongodb+srv"

  validation {
    condition     = contains(["mongodb", "mongodb+srv"], var.external_store_scheme)
    error_message = "external_store_scheme must be mongodb or mongodb+srv."
  }
}

variable "external_store_url_options" {
  type        = string
  description = "Query options of the external store's URL (a MongoDB replica set supports retryable writes)."
  default     = "retryWrites=true&w=majority"
}

variable "store_ca_file" {
  type        = string
  description = "Path, inside the pod, of the CA bundle DocumentDB's TLS needs (chart storeCA.mountPath/secretKey); written into the URL as tlsCAFile."
  default     = "/var/run/tally/store-ca/global-bundle.pem"
}

variable "store_ca_bundle" {
  type        = string
  description = "PEM of the Amazon RDS CA bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem, public); null leaves the secret for the operator to fill."
  default     = null
}

variable "pooled_namespace" {
  type        = string
  description = "Kubernetes namespace of the pooled instance (its service account tally may assume the pooled role)."
  default     = "tally"
}

variable "pooled_database" {
  type        = string
  description = "Database of the pooled instance (chart tally.mongoDatabase)."
  default     = "tally"
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
