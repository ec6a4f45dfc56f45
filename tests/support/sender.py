"""A task sender that records what the core publishes, for tests that drive the core by hand."""
from __future__ import annotations


class RecordingSender:
    """Stands in for Celery's send_task when a test drives the core by hand."""

    def __init__(self):
        self.sent: list[tuple[str, list, object]] = []

    def send_task(self, name, args=None, eta=None, **options):
        self.sent.append((name, args, eta))

    def deliveries(self) -> list[list]:
        return [item for name, args, _ in self.sent if name == "htq.deliver_requests" for item in args[0]]

    def batches(self) -> list[tuple[str, str, int]]:
        """(batch name, batch id, attempt) of every batch published."""
        return [(args[0], batch_id, attempt) for name, args, _ in self.sent if name == "htq.send_batches"
                for batch_id, attempt in args[1]]
