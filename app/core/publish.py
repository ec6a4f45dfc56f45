"""Publishing tasks by name through an injected sender, so the core never imports Celery.

The sender is anything with Celery's `send_task(name, args=..., eta=...)`: the web side passes
its Celery client, the workers their own app, tests a recorder.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

DELIVER_REQUESTS = "htq.deliver_requests"
NOTIFY_CANCEL = "htq.notify_cancel"
SEND_CALLBACK = "htq.send_callback"

# Requests due at the same millisecond travel in one task message, up to this many.
DELIVERY_CHUNK = 50
# Requests due within the same window travel in one task, published DISPATCH_LEAD_MS before the
# first of them: the worker sleeps out each one's remaining milliseconds, so Celery's timer and
# pool dispatch delay is absorbed and nothing is sent early.
DELIVERY_WINDOW_MS = 100
DISPATCH_LEAD_MS = 50


class Sender(Protocol):
    def send_task(self, name: str, args: list | None = None, eta: datetime | None = None, **options): ...


class PublishFailed(Exception):
    """The broker did not take a task. Stored work is not lost: the relay publishes it again."""


class Publisher:
    def __init__(self, sender: Sender, transient_errors: tuple[type[BaseException], ...] = ()):
        """`transient_errors` are the sender's exceptions for an unreachable broker; they become
        PublishFailed so callers can rely on the relay instead of failing a stored request."""
        self._sender = sender
        self._transient_errors = transient_errors

    def send(self, name: str, args: list, eta_ms: int | None = None) -> None:
        eta = None if eta_ms is None else datetime.fromtimestamp(eta_ms / 1000, tz=UTC)
        try:
            self._sender.send_task(name, args=args, eta=eta)
        except self._transient_errors as exc:
            raise PublishFailed(f"{name}: {exc}") from exc

    def deliver(self, items: Iterable[tuple[str, int, int]], now_ms: int) -> None:
        """Publish (id, attempt, due_ms) items: those due within one DELIVERY_WINDOW_MS go in one task
        per chunk, due DISPATCH_LEAD_MS before its first item; items due sooner go at once.

        The worker waits out each item's remaining milliseconds, so nothing is sent early.
        """
        groups: dict[int | None, list[list]] = defaultdict(list)
        for request_id, attempt, due_ms in items:
            window = None if due_ms - DISPATCH_LEAD_MS <= now_ms else due_ms // DELIVERY_WINDOW_MS
            groups[window].append([request_id, attempt, due_ms])
        for window, group in groups.items():
            group.sort(key=lambda item: item[2])
            for start in range(0, len(group), DELIVERY_CHUNK):
                chunk = group[start:start + DELIVERY_CHUNK]
                self.send(DELIVER_REQUESTS, [chunk], None if window is None else chunk[0][2] - DISPATCH_LEAD_MS)
