"""The SQS-compatible endpoint: AWS JSON 1.0 at POST /sqs."""
