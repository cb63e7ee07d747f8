# Email notifications (docs/notifications.md): the SES identities tenants' emails may be sent from. The notifier
# sends them (SES v2 SendEmail, iam.tf); every function that builds or checks a tenant's email settings gets the same
# list as VAULT_EMAIL_FROM_IDENTITIES (environment.tf). No identities: the SES transport refuses email.

locals {
  email_enabled = length(var.email_identities) > 0
  # Deterministic, like the other ARNs in iam.tf: the grant does not wait for the identities.
  email_identity_arns = [
    for identity in var.email_identities : "arn:${local.partition}:ses:${var.aws_region}:${local.account_id}:identity/${identity}"
  ]
  # Domains are verified by DKIM records the operator publishes; an address by the link SES mails to it.
  email_domain_identities = [for identity in var.email_identities : identity if !strcontains(identity, "@")]
}

resource "aws_sesv2_email_identity" "sender" {
  for_each = toset(var.email_identities)

  email_identity = each.value
}
