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
        """Publish (id, attempt, due_ms) items: grouped by due time, each group one task per chunk.

        Items already due go without an eta; the worker still waits out any remaining
        milliseconds, so nothing is sent early.
        """
        groups: dict[int | None, list[list]] = defaultdict(list)
        for request_id, attempt, due_ms in items:
            groups[due_ms if due_ms > now_ms else None].append([request_id, attempt, due_ms])
        for eta_ms, group in groups.items():
            for start in range(0, len(group), DELIVERY_CHUNK):
                self.send(DELIVER_REQUESTS, [group[start:start + DELIVERY_CHUNK]], eta_ms)
