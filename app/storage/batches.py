"""Storage of batch forwarding: each function is one Lua script or one round trip, and decodes
what Redis answers into the typed results below."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

from app.storage import keys
from app.storage.client import Store
from app.storage.scripts import Script

_CONFIGURE = Script("batch_configure")
_ADD = Script("batch_add")
_DELETE = Script("batch_delete")
_FLUSH = Script("batch_flush")
_CLAIM = Script("batch_claim")
_FINISH = Script("batch_finish")
_REDRIVE = Script("batch_redrive")
_LOAD = Script("batch_load")
_SPLIT = Script("batch_split")
_RECORD = Script("batch_record")

@dataclass(frozen=True)
class BatchConfig:
    endpoint: str
    max_records: int
    max_bytes: int
    interval_ms: int
    headers: dict[str, str]
    max_attempts: int
    backoff_base_ms: int
    timeout_ms: int
    token_id: str | None = None  # the token that configured it ("env" for HTQ_API_TOKENS)
    allowed_hosts: tuple[str, ...] = ()  # that token's, checked again when a batch is sent

    def args(self) -> dict:
        """The script arguments of the configuration (batch_configure.lua), by name."""
        return {"endpoint": self.endpoint, "max_records": self.max_records, "max_bytes": self.max_bytes,
                "interval_ms": self.interval_ms, "headers": json.dumps(self.headers),
                "max_attempts": self.max_attempts, "backoff_base_ms": self.backoff_base_ms,
                "timeout_ms": self.timeout_ms, "token_id": self.token_id or "",
                "allowed_hosts": json.dumps(list(self.allowed_hosts))}


@dataclass(frozen=True)
class Claimed:
    """A taken batch a worker has claimed for one attempt and must now POST."""

    name: str
    batch_id: str
    attempt: int
    body: bytes
    endpoint: str
    headers: dict[str, str]
    timeout_ms: int
    records: int
    max_attempts: int
    backoff_base_ms: int
    worker: str  # the worker that claimed it, which holds it until the attempt is settled
    allowed_hosts: tuple[str, ...] = ()  # of the token that configured the batch: empty admits every host


class Configured(NamedTuple):
    created: bool
    taken: list[str]  # batches taken at once because the new limits are below what is pending


class Added(NamedTuple):
    """Records stored: `ids` in order, and `taken` the batches they filled (to publish); or
    nothing, because record `too_large` (its index) cannot fit in a batch of `max_bytes` alone."""

    ids: list[str]
    taken: list[str]
    too_large: int | None = None
    max_bytes: int = 0


class Flushed(NamedTuple):
    """One batch beat handled: `kind` is "taken" (attempt 1 due), "republish" (published but never
    claimed), "lost" (its worker died; the next attempt is due) or "dead" (no attempts left)."""

    kind: str
    name: str
    batch_id: str
    attempt: int


class Refused(NamedTuple):
    """Why an attempt was not claimed: "gone" (sent, or the batch deleted) or "skip" with the
    batch's `state` (a duplicate or stale task message)."""

    reason: str
    state: str | None = None


class Finished(NamedTuple):
    """What storing an attempt's outcome did: `result` "sent", "dead", "retry" (with
    `next_attempt`), "split" (into the first half `released[0]`, queued, and the second `state`,
    parked behind it), "stale" (not the current attempt: the batch's `state`) or "gone".
    `released` are the batches whose attempt 1 is now due, to publish: the first half of a
    split, or the half that was parked behind this batch."""

    result: str
    next_attempt: int | None = None
    state: str | None = None
    released: tuple[str, ...] = ()


class Receipt(NamedTuple):
    """Where a record is: `state` "unknown", "pending", "sending" (in taken batch `batch_id`), "sent" (by
    `batch_id`'s POST at `sent_ms`, answered `status_code`) or "dead" (`status_code` is the
    last answer, if any)."""

    state: str
    batch_id: str | None = None
    sent_ms: int | None = None
    status_code: int | None = None


class DeadBatch(NamedTuple):
    batch_id: str
    body: str  # the JSON array that was POSTed
    meta: dict  # attempts, last_status_code, error ...


def configure(store: Store, name: str, config: BatchConfig, *, now_ms: int, grace_ms: int, epoch: str,
              mode: str = "replace") -> Configured:
    """Create or update a batch's configuration; mode "env" keeps the fields WEBHOOK_* does not set."""
    reply = store.run(_CONFIGURE, keys={**keys.batch_keys(name), "names": keys.batches()}, args={
        "name": name, "now_ms": now_ms, "grace_ms": grace_ms, "mode": mode, "epoch": epoch, **config.args()},
        durable=True)
    return Configured(bool(reply[0]), list(reply[1:]))


def add(store: Store, name: str, records: list[str], *, now_ms: int, grace_ms: int) -> Added | None:
    """Append records (non-empty JSON texts, which never contain NUL) to the pending list; None
    when the batch is not configured. Record ids are `<epoch>.<number>`."""
    reply = store.run(_ADD, keys=keys.batch_keys(name),
                      args={"name": name, "now_ms": now_ms, "grace_ms": grace_ms, "records": "\0".join(records)},
                      durable=True)
    if reply[0] == "missing":
        return None
    if reply[0] == "too_large":
        return Added([], [], too_large=int(reply[1]) - 1, max_bytes=int(reply[2]))
    _, epoch, first, *taken = reply
    return Added([f"{epoch}.{int(first) + offset}" for offset in range(len(records))], taken)


def load(store: Store, name: str) -> dict | None:
    """The config hash plus pending, in_flight and dead counts, read at one instant."""
    reply = store.run(_LOAD, keys=keys.batch_keys(name), args={})
    if not reply:
        return None
    flat, pending, in_flight, dead_count = reply
    config = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
    return {**config, "pending": pending, "in_flight": in_flight, "dead_batches": dead_count}


def names(store: Store) -> list[str]:
    return sorted(store.redis.smembers(keys.batches()))


def delete(store: Store, name: str) -> bool:
    return bool(store.run(_DELETE, keys={**keys.batch_keys(name), "names": keys.batches()}, args={"name": name}))


def due_names(store: Store, *, now_ms: int, limit: int) -> list[str]:
    return store.redis.zrangebyscore(keys.batches_due(), "-inf", now_ms, start=0, num=limit)


def flush(store: Store, batch_names: list[str], *, now_ms: int, grace_ms: int, limit: int, alive_after_ms: int,
          held_after_ms: int = 0, backlog: int = 0) -> list[Flushed]:
    """Beat's work on each named batch, in one round trip (see batch_flush.lua); `backlog` is the
    number of task messages waiting in the broker, a worker last seen before `alive_after_ms` dead."""
    pipe = store.pipeline()
    for name in batch_names:
        store.run(_FLUSH, keys={**keys.batch_keys(name), "workers": keys.workers()}, args={
            "name": name, "now_ms": now_ms, "grace_ms": grace_ms, "limit": limit, "backlog": backlog,
            "alive_after_ms": alive_after_ms, "held_after_ms": held_after_ms}, pipeline=pipe)
    return [Flushed(flat[i], name, flat[i + 1], int(flat[i + 2]))
            for name, flat in zip(batch_names, pipe.execute()) for i in range(0, len(flat), 3)]


def claim(store: Store, name: str, batch_id: str, attempt: int, *, worker: str, now_ms: int,
          lease_margin_ms: int) -> Claimed | Refused:
    """Claim an attempt of a taken batch for `worker` to send, holding a lease of its timeout plus the margin."""
    reply = store.run(_CLAIM, keys={**keys.batch_keys(name), "held_batches": keys.worker_held_batches(worker)}, args={
        "name": name, "id": batch_id, "attempt": attempt, "now_ms": now_ms, "lease_margin_ms": lease_margin_ms,
        "worker": worker})
    if reply[0] != "send":
        return Refused(reply[0], reply[1] if len(reply) > 1 else None)
    _, body, endpoint, headers, timeout_ms, records, max_attempts, backoff_base_ms, allowed_hosts = reply
    return Claimed(name=name, batch_id=batch_id, attempt=attempt, body=body.encode(), endpoint=endpoint,
                   headers=json.loads(headers), timeout_ms=int(timeout_ms), records=int(records),
                   max_attempts=int(max_attempts), backoff_base_ms=int(backoff_base_ms), worker=worker,
                   allowed_hosts=tuple(json.loads(allowed_hosts or "[]")))


def finish(store: Store, name: str, batch_id: str, attempt: int, *, worker: str, now_ms: int, verdict: str,
           status_code: int | None, error: str | None, deadline_ms: int, grace_ms: int,
           retention_ms: int) -> Finished:
    """Store an attempt's outcome; `worker`, which ran it, no longer holds the batch. A sent
    batch's receipt is kept `retention_ms`."""
    reply = store.run(_FINISH, keys={**keys.batch_keys(name), "held_batches": keys.worker_held_batches(worker)}, args={
        "name": name, "id": batch_id, "attempt": attempt, "now_ms": now_ms, "verdict": verdict,
        "status_code": "" if status_code is None else status_code, "error": error or "", "deadline_ms": deadline_ms,
        "worker": worker, "grace_ms": grace_ms, "retention_ms": retention_ms})
    return _finished(reply)


def split(store: Store, name: str, batch_id: str, attempt: int, *, worker: str, now_ms: int, grace_ms: int,
          at: int, first_records: int) -> Finished:
    """Store an attempt answered 413 by splitting the batch after its record `first_records`,
    whose JSON ends just before byte `at` (0-based) of the body: see batch_split.lua."""
    reply = store.run(_SPLIT, keys={**keys.batch_keys(name), "held_batches": keys.worker_held_batches(worker)}, args={
        "name": name, "id": batch_id, "attempt": attempt, "now_ms": now_ms, "grace_ms": grace_ms, "worker": worker,
        "at": at + 1, "first_records": first_records})
    return _finished(reply)


def _finished(reply: list) -> Finished:
    result = reply[0]
    if result == "retry":
        return Finished("retry", next_attempt=int(reply[1]))
    if result == "stale":
        return Finished("stale", state=reply[1])
    if result == "split":
        return Finished("split", state=reply[2], released=(reply[1],))
    return Finished(result, released=tuple(reply[1:]))


def record(store: Store, name: str, epoch: str, number: int, *, now_ms: int) -> Receipt | None:
    """The receipt of record `number` of the batch's `epoch` (state "unknown" for a record that
    never was, or whose receipt expired); None when the batch is not configured."""
    reply = store.run(_RECORD, keys=keys.batch_keys(name), args={"epoch": epoch, "number": number, "now_ms": now_ms})
    state = reply[0]
    if state == "missing":
        return None
    if state in ("unknown", "pending"):
        return Receipt(state)
    if state == "sent":
        return Receipt("sent", reply[1], int(reply[2]), _int_or_none(reply[3]))
    return Receipt(state, reply[1], status_code=_int_or_none(reply[2]))


def _int_or_none(value) -> int | None:
    return None if value in (None, "") else int(value)


def redrive(store: Store, name: str, *, now_ms: int, grace_ms: int, limit: int) -> list[str]:
    """Move up to `limit` dead batches back to taken with a fresh budget; the ids moved."""
    return store.run(_REDRIVE, keys=keys.batch_keys(name),
                     args={"name": name, "now_ms": now_ms, "grace_ms": grace_ms, "limit": limit}, durable=True)


def dead(store: Store, name: str, *, limit: int) -> list[DeadBatch]:
    """Up to `limit` dead batches, oldest first."""
    ids = store.redis.zrange(keys.batch_dead(name), 0, limit - 1)
    if not ids:
        return []
    pipe = store.pipeline()  # no MULTI, which Redis refuses at maxmemory; a batch redriven meanwhile is left out
    pipe.hmget(keys.batch_bodies(name), ids)
    pipe.hmget(keys.batch_meta(name), ids)
    bodies, metas = pipe.execute()
    return [DeadBatch(batch_id, body, json.loads(meta)) for batch_id, body, meta in zip(ids, bodies, metas)
            if body is not None and meta is not None]


def taken(store: Store, name: str) -> dict[str, dict]:
    """Every taken (not dead) batch's meta by id: for operators and tests."""
    ids = store.redis.zrange(keys.batch_taken(name), 0, -1)
    if not ids:
        return {}
    return {batch_id: json.loads(meta) for batch_id, meta in zip(ids, store.redis.hmget(keys.batch_meta(name), ids))
            if meta is not None}
