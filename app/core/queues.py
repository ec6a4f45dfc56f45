"""Message queues, as the API sees them: config, push, receive with long polling, ack, dead letters.

Semantics (SQS-like): a received message stays invisible until it is acknowledged or its
visibility timeout ends; then it is visible again at its original place, unless it has been
received `max_receives` times, when it moves to the dead letters, or to the queue's
`dead_letter_queue` as a new visible message there. Messages older than the
queue's retention are dropped by the sweep (counted from the time they first became available).
Names are checked here: a bad name is 422 where it would create a queue (PUT, push) and 404
where a queue is looked up, since no such queue can exist.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from app.core import clock, jsontext
from app.core.errors import Conflict, Invalid, NotFound, TooLarge
from app.core.model import NAME_RULE, is_name, ms, seconds
from app.storage import queues as store_queues
from app.storage.client import Store
from app.storage.notify import Notifier
from app.storage.queues import Acked
from config import Settings

DEFAULT_CONFIG = {"visibility_timeout": 30, "max_receives": 0, "retention": 345600, "delay": 0}
MS_FIELDS = {"visibility_timeout": "visibility_timeout_ms", "retention": "retention_ms", "delay": "delay_ms"}
MAX_BATCH = 100
SWEEP_CHUNK = 100  # queues swept per round trip
SWEEP_DROP_LIMIT = 1000  # messages dropped per queue and sweep; the next sweep drops more
REDRIVE_CHUNK = 1000
REDRIVE_MAX_ROUNDS = 1000
MIN_WAIT_S = 0.005  # a long poll never waits less than this between two checks
# Long polls re-check on every publish of their queue (push, release, redrive, delete, and the
# sweep when locks expire) and at the times they compute (a delay or lock ending); the periodic
# re-check is only a safety net, so it can be rare: 500 waiting polls cost ~130 checks/s, not 670.
RECHECK_S = 5.0


def _stored_config(fields: dict) -> dict[str, int]:
    """Config fields as stored: durations in ms under their `_ms` names."""
    return {MS_FIELDS.get(field, field): (ms(value) if field in MS_FIELDS else int(value))
            for field, value in fields.items() if field in DEFAULT_CONFIG}


STORED_DEFAULTS = _stored_config(DEFAULT_CONFIG)


def json_body(value: Any) -> str:
    """A message body for storage, from any JSON value."""
    return "j" + jsontext.dumps(value)


def json_text_body(text: str) -> str:
    """A message body for storage, from JSON text the caller has already checked (kept as sent)."""
    return "j" + text


def text_body(text: str) -> str:
    """A message body for storage, from text (returned as a JSON string)."""
    return "t" + text


def decode_body(stored: str) -> Any:
    """The body as a value; what nests too deep for the json module (stored before bodies were
    limited in depth) comes back partly as text (jsontext.loads_stored)."""
    return jsontext.loads_stored(stored[1:]) if stored[:1] == "j" else stored[1:]


def embedded_body(stored: str) -> Any:
    """The body for a JSON answer without parsing it: its JSON text written as it is (or the text)."""
    return jsontext.embedded(stored[1:]) if stored[:1] == "j" else stored[1:]


def body_size(stored: str) -> int:
    return len(stored.encode()) - 1


class QueueService:
    """What the API and compat layers call; one per process, cheap to share between threads."""

    def __init__(self, store: Store, settings: Settings, notifier: Notifier | None = None,
                 clock_ms: Callable[[], int] = clock.now_ms,
                 token: Callable[[], str] = lambda: secrets.token_urlsafe(9)):
        self.store = store
        self.settings = settings
        self.notifier = notifier
        self.now_ms = clock_ms
        self.token = token

    # -- names and config -------------------------------------------------------------------

    @staticmethod
    def _creatable(name: str) -> str:
        if not is_name(name):
            raise Invalid("Bad queue name", {"name": [NAME_RULE]})
        return name

    @staticmethod
    def _known(name: str) -> str:
        if not is_name(name):
            raise NotFound(f"No queue {name}")
        return name

    def put(self, name: str, fields: dict) -> tuple[dict, bool]:
        """Create the queue or replace its config: a field left out takes its default, whatever it
        was before (PUT replaces, for queues as for batches); (queue, created)."""
        self._creatable(name)
        target = fields.get("dead_letter_queue")
        if target is not None:
            self.check_dead_letter_queue(name, target, fields.get("max_receives", 0))
        created = store_queues.put(self.store, name, now_ms=self.now_ms(), defaults=STORED_DEFAULTS,
                                   updates={**STORED_DEFAULTS, **_stored_config(fields),
                                            "dead_letter_queue": target or ""})
        return self.get(name), created

    def check_dead_letter_queue(self, name: str, target: str, max_receives: int) -> None:
        """A target must be another existing queue, reached after max_receives receives, and must
        not lead back here through its own dead_letter_queue (a message would circle for ever).
        Checked when named: a target deleted later makes the queue use its own dead letters."""
        def refuse(message: str) -> Invalid:
            return Invalid("Bad dead_letter_queue", {"dead_letter_queue": [message]})

        if not is_name(target):
            raise refuse(NAME_RULE)
        if target == name:
            raise refuse("A queue cannot be its own dead_letter_queue.")
        if not max_receives:
            raise refuse("Needs max_receives of 1 or more: the receives after which a message moves.")
        if not store_queues.exists(self.store, target):
            raise refuse(f"No queue {target}: create it first.")
        seen, hop = {target}, store_queues.dead_letter_queue(self.store, target)
        while hop is not None and hop not in seen:
            if hop == name:
                raise refuse(f"{target} leads back to {name} through dead_letter_queue: no cycles.")
            seen.add(hop)
            hop = store_queues.dead_letter_queue(self.store, hop)

    def ensure(self, name: str) -> bool:
        """Create the queue with the defaults unless it exists; an existing queue keeps its config.
        True if it was created."""
        self._creatable(name)
        return store_queues.put(self.store, name, now_ms=self.now_ms(), defaults=STORED_DEFAULTS, updates={})

    def get(self, name: str) -> dict:
        stats = store_queues.stats(self.store, self._known(name), now_ms=self.now_ms())
        if stats is None:
            raise NotFound(f"No queue {name}")
        return to_queue(name, stats)

    def list(self) -> list[dict]:
        names = store_queues.names(self.store)
        found = store_queues.stats_many(self.store, names, now_ms=self.now_ms())
        return [to_queue(name, stats) for name, stats in zip(names, found, strict=True) if stats is not None]

    def delete(self, name: str) -> None:
        if not store_queues.delete(self.store, self._known(name)):
            raise NotFound(f"No queue {name}")

    # -- messages ---------------------------------------------------------------------------

    def push(self, name: str, body: str, delay_s: float | None = None, *, uuid_id: bool = False) -> str:
        """Push one stored body (json_body/text_body); the queue is created if needed. Returns its id,
        UUID-formatted with uuid_id (for clients that expect one, such as WQ's)."""
        self._check_message(body, delay_s)
        return self._push(name, [(body, delay_s)], uuid_ids=uuid_id)[0]

    def push_many(self, name: str, messages: list[tuple[str, float | None]],
                  attributes: list[str] | None = None, *, existing: bool = False) -> list[str]:
        """Push up to 100 (stored body, delay) pairs at once: all or none. `attributes` (the SQS
        API's) holds each message's attributes as JSON text, "" for none. With `existing`, the
        queue is not created: NotFound without it (SQS never creates a queue by sending)."""
        if not 1 <= len(messages) <= MAX_BATCH:
            raise Invalid("Bad batch", {"messages": [f"1 to {MAX_BATCH} messages."]})
        for index, (body, delay_s) in enumerate(messages):
            self._check_message(body, delay_s, index)
        return self._push(name, messages, attributes=attributes, existing=existing)

    def _check_message(self, body: str, delay_s: float | None, index: int | None = None) -> None:
        def nest(field: str, message: str) -> dict:
            return {field: [message]} if index is None else {"messages": {index: {field: [message]}}}

        size = body_size(body)
        if size > self.settings.max_body_bytes:
            raise TooLarge(f"The message is {size} bytes, over the limit of {self.settings.max_body_bytes}",
                           nest("body", f"at most {self.settings.max_body_bytes} bytes"))
        if delay_s is not None and not 0 <= delay_s <= self.settings.max_delay_s:
            raise Invalid("Bad delay", nest("delay", f"0 to {self.settings.max_delay_s} seconds"))

    def _push(self, name: str, messages: list[tuple[str, float | None]], uuid_ids: bool = False,
              attributes: list[str] | None = None, existing: bool = False) -> list[str]:
        self._creatable(name)
        suffix = uuid_suffix() if uuid_ids else secrets.token_urlsafe(6)
        ids = store_queues.push(
            self.store, name, now_ms=self.now_ms(), id_suffix=suffix, defaults=STORED_DEFAULTS,
            messages=[(body, None if delay_s is None else ms(delay_s)) for body, delay_s in messages],
            attributes=attributes, existing=existing)
        if ids is None:
            raise NotFound(f"No queue {name}")
        return ids

    def receive(self, name: str, max_messages: int = 10, visibility_timeout_s: float | None = None,
                wait_s: float = 0.0, body: Callable[[str], Any] = decode_body,
                convert: Callable[[store_queues.Received], Any] | None = None) -> list:
        """Up to max_messages visible messages, oldest available first, each locked for the
        visibility timeout (the queue's unless given). With wait_s, long-polls: returns as soon as
        one arrives (woken through Redis pub/sub), or [] once wait_s has passed. `body` turns each
        stored body into what the caller gets (embedded_body for a JSON answer); `convert`, when
        given, makes each whole message instead (the SQS API's, with its attributes)."""
        self._known(name)
        vt_ms = None if visibility_timeout_s is None else ms(visibility_timeout_s)
        next_ms = store_queues.NO_NEXT

        def attempt() -> list[dict] | None:
            nonlocal next_ms
            result = store_queues.receive(self.store, name, now_ms=self.now_ms(), max_messages=max_messages,
                                          visibility_timeout_ms=vt_ms, token=self.token())
            if result is None:
                raise NotFound(f"No queue {name}")
            messages, next_ms = result
            if convert is not None:
                return [convert(m) for m in messages] or None
            return [to_message(m, body) for m in messages] or None

        deadline = time.monotonic() + wait_s
        found = attempt()
        if found or wait_s <= 0 or self.notifier is None:
            return found or []
        just_checked = True

        def check() -> list[dict] | None:
            # wait_for checks once before it listens and once after: the first is the attempt
            # just made, so it is skipped.
            nonlocal just_checked
            if just_checked:
                just_checked = False
                return None
            return attempt()

        while (remaining := deadline - time.monotonic()) > 0:
            # Pushes, releases and sweeps publish; a delay or lock that ends is a time we know.
            if next_ms != store_queues.NO_NEXT:
                remaining = min(remaining, max(MIN_WAIT_S, seconds(next_ms - self.now_ms())))
            found = self.notifier.wait_for(store_queues.channel(name), remaining, check, recheck_s=RECHECK_S,
                                           share=True)
            if found:
                return found
        return []

    def ack(self, name: str, message_id: str, receipt: str | None = None) -> None:
        """Delete a message. With a receipt, 409 if the message was received again since."""
        result = self._ack(name, [(message_id, receipt)])[0]
        if result is Acked.NOT_FOUND:
            raise NotFound(f"No message {message_id} in queue {name}")
        if result is Acked.STALE:
            raise Conflict(f"Stale receipt: message {message_id} was received again since, or dead-lettered")

    def ack_locked(self, name: str, message_id: str) -> bool:
        """Delete a message only while a receive holds its lock (WQ's confirm); False otherwise.
        The lock seen is the one released: a receive in between makes the receipt stale."""
        lock = store_queues.lock(self.store, self._known(name), message_id)
        if lock is None or lock.expiry_ms <= self.now_ms():
            return False
        return self._ack(name, [(message_id, lock.receipt)])[0] is Acked.ACKED

    def ack_many(self, name: str, items: list[tuple[str, str | None]]) -> dict:
        results = self._ack(name, items)
        failed = [{"id": message_id, "reason": result.value}
                  for (message_id, _), result in zip(items, results, strict=True) if result is not Acked.ACKED]
        return {"acked": len(items) - len(failed), "failed": failed}

    def _ack(self, name: str, items: list[tuple[str, str | None]]) -> list[Acked]:
        results = store_queues.ack(self.store, self._known(name), items)
        if results is None:
            raise NotFound(f"No queue {name}")
        return results

    def change_visibility(self, name: str, message_id: str, receipt: str, visibility_timeout_s: float) -> dict:
        """Extend (or with 0 end) the lock of a message received with `receipt`."""
        now = self.now_ms()
        changed = store_queues.change_visibility(
            self.store, self._known(name), message_id, receipt, now_ms=now,
            visibility_timeout_ms=ms(visibility_timeout_s))
        if changed.result == "missing":
            raise NotFound(f"No queue {name}")
        if changed.result == "not_found":
            raise NotFound(f"No message {message_id} in queue {name}")
        if changed.result == "stale":
            raise Conflict(f"Stale receipt: message {message_id} was received again since, or dead-lettered")
        return {"id": message_id, "receipt": receipt, "visible_at": clock.to_rfc3339(changed.visible_at_ms),
                "dead": changed.visible_at_ms is None}

    # -- dead letters -----------------------------------------------------------------------

    def dead(self, name: str, limit: int = 100) -> list[dict]:
        self.get(name)
        return [to_dead(message) for message in store_queues.dead(self.store, name, limit=limit)]

    def redrive(self, name: str) -> int:
        """Move every dead letter back to the queue, visible now, receive count reset."""
        self._known(name)
        moved = 0
        for _ in range(REDRIVE_MAX_ROUNDS):
            count = store_queues.redrive(self.store, name, now_ms=self.now_ms(), limit=REDRIVE_CHUNK)
            if count is None:
                raise NotFound(f"No queue {name}")
            moved += count
            if count < REDRIVE_CHUNK:
                break
        return moved

    # -- time -------------------------------------------------------------------------------

    def sweep(self) -> dict[str, int]:
        """Beat: return expired locks and drop messages past retention on every queue."""
        totals = {"queues": 0, "returned": 0, "dropped": 0}
        chunk: list[str] = []

        def run() -> None:
            for swept in store_queues.sweep_many(self.store, chunk, now_ms=self.now_ms(), drop_limit=SWEEP_DROP_LIMIT):
                totals["returned"] += swept.returned
                totals["dropped"] += swept.dropped
            totals["queues"] += len(chunk)
            chunk.clear()

        for name in store_queues.iter_names(self.store):
            chunk.append(name)
            if len(chunk) >= SWEEP_CHUNK:
                run()
        if chunk:
            run()
        return totals


def uuid_suffix() -> str:
    """The random part of a UUID-formatted message id: "-4xxx-yxxx-xxxxxxxxxxxx" (version 4 and
    RFC 4122 variant bits; the first 48 bits are the queue's counter, so ids sort in push order)."""
    digits = secrets.token_hex(10)
    return f"-4{digits[:3]}-{'89ab'[int(digits[3], 16) % 4]}{digits[4:7]}-{digits[7:19]}"


def to_queue(name: str, stats: store_queues.Stats) -> dict:
    config = stats.config
    return {
        "name": name,
        "visibility_timeout": seconds(int(config["visibility_timeout_ms"])),
        "max_receives": int(config["max_receives"]),
        "retention": seconds(int(config["retention_ms"])),
        "delay": seconds(int(config["delay_ms"])),
        "dead_letter_queue": config.get("dead_letter_queue") or None,
        "created_at": clock.to_rfc3339(int(config["created_ms"])),
        "updated_at": clock.to_rfc3339(int(config["updated_ms"])),
        "visible": stats.visible,
        "in_flight": stats.in_flight,
        "delayed": stats.delayed,
        "dead": stats.dead,
    }


# Messages pushed together share their enqueue time: format each time once.
_rfc3339 = lru_cache(maxsize=1024)(clock.to_rfc3339)


def to_message(message: store_queues.Received, body: Callable[[str], Any] = decode_body) -> dict:
    return {"id": message.id, "receipt": message.receipt, "body": body(message.body),
            "receive_count": message.receive_count, "enqueued_at": _rfc3339(message.enqueued_ms)}


def to_dead(message: store_queues.StoredMessage) -> dict:
    return {"id": message.id, "body": decode_body(message.body), "receive_count": message.receive_count,
            "enqueued_at": clock.to_rfc3339(message.enqueued_ms), "dead_at": clock.to_rfc3339(message.dead_ms)}
