variable "region" {
  type        = string
  description = "AWS region of the platform (same region as the Kubernetes cluster)."
}

variable "domain_name" {
  type        = string
  description = "Platform DNS domain; tenant instances are served at <slug>.<domain_name>."
}

variable "create_dns_zone" {
  type        = bool
  description = "Create the platform zone (true) or look up an existing one (false)."
  default     = true
}

variable "cluster_oidc_issuer_url" {
  type        = string
  description = "OIDC issuer URL of the existing EKS cluster."
}

variable "oidc_provider_arn" {
  type        = string
  description = "Existing IAM OIDC provider of the cluster; null creates one."
  default     = null
}

variable "ingress_hostname" {
  type        = string
  description = "DNS name of the cluster's ingress load balancer; every tenant host is a CNAME to it."
}

variable "store" {
  type        = string
  description = "\"documentdb\" (created by the platform module) or \"external\" (MongoDB URI secret)."
  default     = "documentdb"
}

variable "external_store_uri_secret_arn" {
  type        = string
  description = "Secret holding the external MongoDB URI when store = \"external\"."
  default     = null
}

variable "vpc_id" {
  type        = string
  description = "VPC of the cluster (DocumentDB placement)."
  default     = null
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets for DocumentDB."
  default     = []
}

variable "store_client_security_group_ids" {
  type        = list(string)
  description = "Security groups allowed to reach DocumentDB (the cluster nodes')."
  default     = []
}

variable "external_store_host" {
  type        = string
  description = "Host of the external store when store = \"external\" (each instance's URL names its own user on it)."
  default     = null
}

variable "store_ca_file" {
  type        = string
  description = "Path, inside the pod, of the Amazon RDS CA bundle DocumentDB's TLS needs (chart storeCA.mountPath/secretKey)."
  default     = "/var/run/tally/store-ca/global-bundle.pem"
}

variable "store_ca_bundle" {
  type        = string
  description = "PEM of the Amazon RDS CA bundle (public); null leaves the platform's store-ca secret for the operator to fill."
  default     = null
}

variable "ingress_class_name" {
  type        = string
  description = "IngressClass of the cluster's ingress controller (chart ingress.className; ingress-nginx by default)."
  default     = "nginx"
}

variable "cluster_issuer" {
  type        = string
  description = "cert-manager ClusterIssuer that issues every instance's TLS certificate (ACME HTTP-01 through ingress_class_name)."
  default     = "letsencrypt"
}

variable "tenants_dir" {
  type        = string
  description = "Directory of tenant files (<slug>.json, written by `tally provision`), relative to this root or absolute."
  default     = "tenants"
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
