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
