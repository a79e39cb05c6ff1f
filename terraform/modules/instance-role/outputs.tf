output "arn" {
  description = "ARN of the IAM role (the service account's eks.amazonaws.com/role-arn annotation)."
  value       = aws_iam_role.this.arn
}

output "name" {
  description = "Name of the IAM role."
  value       = aws_iam_role.this.name
}

output "unique_id" {
  description = "Stable unique ID of the IAM role (changes only when the role is replaced)."
  value       = aws_iam_role.this.unique_id
}

output "description" {
  description = "Description of the IAM role."
  value       = aws_iam_role.this.description
}

output "max_session_duration" {
  description = "Longest session, in seconds, of the role (the SDKs refresh IRSA credentials before it ends)."
  value       = aws_iam_role.this.max_session_duration
}

output "tags" {
  description = "Tags of the IAM role."
  value       = aws_iam_role.this.tags
}

output "assume_role_policy" {
  description = "Trust policy of the role (JSON): the cluster's OIDC provider, for one service account and the STS audience."
  value       = aws_iam_role.this.assume_role_policy
}

output "policy_name" {
  description = "Name of the role's inline policy."
  value       = aws_iam_role_policy.this.name
}

output "policy" {
  description = "Inline policy of the role (JSON): read the given secrets, decrypt them with the given key."
  value       = aws_iam_role_policy.this.policy
}
