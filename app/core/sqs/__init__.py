"""The SQS wire vocabulary over htq's queues: AWS's errors, digests, queue and message attributes,
and the service the /sqs endpoint calls (no Flask here; app/api/sqs speaks the protocol)."""
