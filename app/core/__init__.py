"""The domain: deferred requests, queues and batches. No Flask, no Celery."""
