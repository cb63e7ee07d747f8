# The judge queue (FIFO: group = tenant + session shard, deduplication id = request id) and its dead-letter queue.
# SSE with SQS-managed keys: senders and the event source mapping need no KMS permission.

resource "aws_sqs_queue" "judge_dlq" {
  name                      = "${var.name_prefix}-judge-dlq.fifo"
  fifo_queue                = true
  message_retention_seconds = 1209600 # 14 days, SQS's maximum: time to inspect and redrive
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "judge" {
  name                        = "${var.name_prefix}-judge.fifo"
  fifo_queue                  = true
  content_based_deduplication = false # the code sets MessageDeduplicationId = request id
  deduplication_scope         = "messageGroup"
  fifo_throughput_limit       = "perMessageGroupId" # high-throughput FIFO: limits per group, not per queue
  visibility_timeout_seconds  = var.judge_queue_visibility_timeout_seconds
  message_retention_seconds   = 345600 # 4 days
  receive_wait_time_seconds   = 20
  sqs_managed_sse_enabled     = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.judge_dlq.arn
    maxReceiveCount     = var.judge_queue_max_receive_count
  })

  lifecycle {
    precondition {
      # AWS: a Lambda event source's visibility timeout should be at least 6 x the function timeout, or messages
      # being worked on (and retried by the poller) reappear and are decided twice in parallel.
      condition     = var.judge_queue_visibility_timeout_seconds >= 6 * var.judge_worker_timeout_seconds
      error_message = "The judge queue's visibility timeout (${var.judge_queue_visibility_timeout_seconds} s) must be at least 6 x the judge-worker timeout (${6 * var.judge_worker_timeout_seconds} s)."
    }
  }
}

# Only the judge queue may use the DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "judge_dlq" {
  queue_url = aws_sqs_queue.judge_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.judge.arn]
  })
}

# The notify queue (standard: a job names a tenant and a delivery, nothing secret; order does not matter and a
# duplicate is harmless, the delivery log's conditional update lets one attempt through) and its dead-letter queue.
# The notifier re-sends a failed webhook's job itself, with DelaySeconds up to 900 (shared/aws/src/notify_queue.rs),
# so a message reaches the DLQ only when its attempt failed on the delivery log or the queue (DynamoDB, KMS, SQS),
# or the invocation crashed or timed out, at every one of its receives. SSE with SQS-managed keys, as the judge
# queue: senders and the event source mapping need no KMS permission.

locals {
  # shared/aws/src/notify_queue.rs: "a dead-letter queue after 5 receives".
  notify_queue_max_receive_count = 5
}

resource "aws_sqs_queue" "notify_dlq" {
  name                      = "${var.name_prefix}-notify-dlq"
  fifo_queue                = false
  message_retention_seconds = 1209600 # 14 days, SQS's maximum: time to inspect and redrive
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "notify" {
  name                       = "${var.name_prefix}-notify"
  fifo_queue                 = false # standard: see above
  visibility_timeout_seconds = var.notify_queue_visibility_timeout_seconds
  message_retention_seconds  = 345600 # 4 days; deliveries are retried for 24 hours
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.notify_dlq.arn
    maxReceiveCount     = local.notify_queue_max_receive_count
  })

  lifecycle {
    precondition {
      # As for the judge queue: a job being attempted must not reappear for a second notifier meanwhile.
      condition     = var.notify_queue_visibility_timeout_seconds >= 6 * var.notifier_timeout_seconds
      error_message = "The notify queue's visibility timeout (${var.notify_queue_visibility_timeout_seconds} s) must be at least 6 x the notifier timeout (${6 * var.notifier_timeout_seconds} s)."
    }
  }
}

# Only the notify queue may use its DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "notify_dlq" {
  queue_url = aws_sqs_queue.notify_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.notify.arn]
  })
}
