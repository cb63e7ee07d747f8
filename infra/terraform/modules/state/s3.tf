# The anchor bucket: signed checkpoints, C2SP checkpoint notes and tlog tiles, under <prefix>/<tenant>/.
# Versioned (the code refuses to start otherwise and records export version ids), optionally object-locked.

locals {
  anchor_bucket_name = coalesce(var.anchor_bucket_name, "${var.name_prefix}-anchors-${var.account_id}-${var.aws_region}")
}

resource "aws_s3_bucket" "anchors" {
  #checkov:skip=CKV_AWS_18:Server access logs would need a second bucket; use CloudTrail S3 data events for an audit trail of reads
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice per deployment (and needs a second region)
  #checkov:skip=CKV2_AWS_62:Nothing consumes object-created events; anchors are read on demand by auditors
  bucket              = local.anchor_bucket_name
  object_lock_enabled = var.anchor_object_lock_enabled
  force_destroy       = false # audit evidence: empty it deliberately before a destroy
}

resource "aws_s3_bucket_ownership_controls" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "anchors" {
  bucket                  = aws_s3_bucket.anchors.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.platform.arn
    }
    bucket_key_enabled = true # one KMS request per bucket key, not per object
  }
}

resource "aws_s3_bucket_object_lock_configuration" "anchors" {
  count = var.anchor_object_lock_enabled ? 1 : 0

  bucket = aws_s3_bucket.anchors.id
  rule {
    default_retention {
      mode = var.anchor_object_lock_mode
      days = var.anchor_object_lock_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.anchors]
}

# Nothing is ever expired: current objects are the log, and noncurrent versions are referenced by the ledger's
# export records. Old versions only move to a cheaper class.
resource "aws_s3_bucket_lifecycle_configuration" "anchors" {
  bucket = aws_s3_bucket.anchors.id

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  rule {
    id     = "noncurrent-versions-to-infrequent-access"
    status = "Enabled"
    filter {}
    noncurrent_version_transition {
      noncurrent_days = var.anchor_noncurrent_transition_days
      storage_class   = "STANDARD_IA"
    }
  }

  depends_on = [aws_s3_bucket_versioning.anchors]
}

resource "aws_s3_bucket_policy" "anchors" {
  bucket = aws_s3_bucket.anchors.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.anchors.arn, "${aws_s3_bucket.anchors.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })

  depends_on = [aws_s3_bucket_public_access_block.anchors]
}
