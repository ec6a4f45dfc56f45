"""Publishing tasks by name through an injected sender, so the core never imports Celery.

The sender is anything with Celery's `send_task(name, args=..., eta=...)`: `app/broker.py` builds
the one Publisher that the web side and the workers both use, tests pass a recorder. A broker
that does not take a task is handled here, the same way for every caller: what was published is
already stored, so it is logged and left to the relay (requests) or the sweep (batches), which
publish it again once its publish grace has passed. Notices (callbacks, cancel notices) are
recorded in the outbox (app/storage/outbox.py) when the request ends, and the relay publishes
them again the same way.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from app.core import clock
from app.core.task_names import DELIVER_REQUESTS, SEND_BATCHES

log = logging.getLogger(__name__)

# Requests due at the same millisecond travel in one task message, up to this many.
DELIVERY_CHUNK = 50
# Requests due within the same window travel in one task, published DISPATCH_LEAD_MS before the
# first of them: the worker sleeps out each one's remaining milliseconds, so Celery's timer and
# pool dispatch delay is absorbed and nothing is sent early.
DELIVERY_WINDOW_MS = 100
DISPATCH_LEAD_MS = 50
# Batches of one name per task message, sent concurrently by the worker that gets it: fewer messages
# (each costs the broker, the web side and the worker's pool), yet work still spreads over workers.
SEND_CHUNK = 8


def shown_items(kind: str, items: Iterable[tuple[str, int] | list]) -> str:
    """What a task message carries, as Flower's task list shows it: `requests=ID#ATTEMPT,...`.
    The message itself keeps its compact JSON arguments."""
    return f"{kind}=" + ",".join(f"{item_id}#{attempt}" for item_id, attempt in items)


class Sender(Protocol):
    def send_task(self, name: str, args: list | None = None, eta: datetime | None = None, **options): ...


class PublishFailed(Exception):
    """The broker did not take a task."""


class Publisher:
    def __init__(self, sender: Sender, broker_errors: tuple[type[BaseException], ...] = ()):
        """`broker_errors` are the sender's exceptions for an unreachable broker; each becomes
        PublishFailed (app/broker.py names them for Celery)."""
        self._sender = sender
        self._broker_errors = broker_errors

    def send(self, name: str, args: list, eta_ms: int | None = None, shown_as: str | None = None) -> None:
        """Publish one task; raises PublishFailed when the broker does not take it. `shown_as` is
        how monitors (Flower, `celery events`) and Celery's own logs show its arguments."""
        # An eta is the system's time (Celery's), also when the timetable runs on a virtual clock.
        eta = None if eta_ms is None else datetime.fromtimestamp(clock.to_real_ms(eta_ms) / 1000, tz=UTC)
        options = {} if shown_as is None else {"argsrepr": shown_as}
        try:
            self._sender.send_task(name, args=args, eta=eta, **options)
        except self._broker_errors as exc:
            raise PublishFailed(f"{name}: {exc}") from exc

    def notify(self, name: str, request_id: str) -> bool:
        """Publish a notice task about a request (a callback, a cancel notice); False if it failed."""
        try:
            self.send(name, [request_id], shown_as=f"request={request_id}")
        except PublishFailed as exc:
            log.warning("request %s: %s not published (%s); it waits in the outbox, and is published again "
                        "once its publish grace has passed", request_id, name, exc)
            return False
        return True

    def deliver(self, items: Iterable[tuple[str, int, int]], now_ms: int) -> None:
        """Publish stored (id, attempt, due_ms) attempts: those due within one DELIVERY_WINDOW_MS
        go in one task per chunk, due DISPATCH_LEAD_MS before its first item; items due sooner go
        at once. The worker waits out each item's remaining milliseconds, so nothing is sent early.
        """
        groups: dict[int | None, list[list]] = defaultdict(list)
        for request_id, attempt, due_ms in items:
            window = None if due_ms - DISPATCH_LEAD_MS <= now_ms else due_ms // DELIVERY_WINDOW_MS
            groups[window].append([request_id, attempt, due_ms])
        for window, group in groups.items():
            group.sort(key=lambda item: item[2])
            for start in range(0, len(group), DELIVERY_CHUNK):
                chunk = group[start:start + DELIVERY_CHUNK]
                eta_ms = None if window is None else chunk[0][2] - DISPATCH_LEAD_MS
                self._send_stored(DELIVER_REQUESTS, [chunk], eta_ms, "requests", [item[0] for item in chunk],
                                  shown_as=shown_items("requests", ((item[0], item[1]) for item in chunk)))

    def send_batches(self, name: str, items: list[tuple[str, int]], eta_ms: int | None = None) -> None:
        """Publish stored (batch id, attempt) items of the batch `name`, SEND_CHUNK a message."""
        for start in range(0, len(items), SEND_CHUNK):
            chunk = [[batch_id, attempt] for batch_id, attempt in items[start:start + SEND_CHUNK]]
            self._send_stored(SEND_BATCHES, [name, chunk], eta_ms, f"batch {name}", [item[0] for item in chunk],
                              shown_as=f"batch={name} " + shown_items("batches", chunk))

    def _send_stored(self, task: str, args: list, eta_ms: int | None, what: str, ids: list[str],
                     shown_as: str) -> None:
        try:
            self.send(task, args, eta_ms, shown_as)
        except PublishFailed as exc:
            log.warning("%s %s not published (%s); they are stored, and published again once their "
                        "publish grace has passed", what, " ".join(ids), exc)
