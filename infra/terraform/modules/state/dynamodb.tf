# The one hot key-value table (shared/aws/src/dynamo.rs): burned token ids, consume-token answers, idempotency,
# rate-limit buckets, usage counters. Items expire through the TTL attribute. It also holds the signing-key
# registry (shared/aws/src/key_registry.rs: pk = signing-keys, sk = kid), whose items never expire.
resource "aws_dynamodb_table" "hot" {
  name                        = var.dynamodb_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  # DynamoDB uses the key through grants of its own: callers need no KMS permission.
  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.platform.arn
  }
}
