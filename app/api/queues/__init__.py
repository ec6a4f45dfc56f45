"""The /v1/queues resource."""
