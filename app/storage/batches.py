"""Storage of batch forwarding: each function is one Lua script or one round trip."""
from __future__ import annotations

import json
from dataclasses import dataclass

from app.storage import keys
from app.storage.client import Store

# The fields of a batch's config hash that are its configuration (the rest is state).
CONFIG_FIELDS = ("endpoint", "max_records", "max_bytes", "interval_ms", "headers", "max_attempts",
                 "backoff_base_ms", "timeout_ms")


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

    def args(self) -> list:
        return [self.endpoint, self.max_records, self.max_bytes, self.interval_ms, json.dumps(self.headers),
                self.max_attempts, self.backoff_base_ms, self.timeout_ms]


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


def _keys(name: str, *extra: str) -> list[str]:
    return [*keys.batch_keys(name), keys.batches_due(), *extra]


def configure(store: Store, name: str, config: BatchConfig, *, now_ms: int, grace_ms: int, epoch: str,
              mode: str = "replace") -> tuple[bool, list[str]]:
    """(created, ids of batches taken because the new limits are below what is pending)."""
    result = store.scripts.batch_configure(
        keys=_keys(name, keys.batches()), args=[name, now_ms, grace_ms, mode, epoch, *config.args()])
    return bool(result[0]), list(result[1:])


def add(store: Store, name: str, records: list[str], *, now_ms: int, grace_ms: int) -> list:
    """Run batch_add.lua on records (non-empty JSON texts, which never contain NUL): {"missing"},
    {"too_large", index, max_bytes} or {"added", epoch, first, ids...}."""
    return store.scripts.batch_add(keys=_keys(name), args=[name, now_ms, grace_ms, "\0".join(records)])


def load(store: Store, name: str) -> dict | None:
    """The config hash plus pending, in_flight and dead counts, read in one MULTI."""
    batch_keys = keys.batch_keys(name)
    pipe = store.redis.pipeline(transaction=True)
    pipe.hgetall(batch_keys[0])
    pipe.llen(batch_keys[1])
    pipe.zcard(batch_keys[4])
    pipe.zcard(batch_keys[5])
    config, pending, in_flight, dead = pipe.execute()
    if not config:
        return None
    return {**config, "pending": pending, "in_flight": in_flight, "dead_batches": dead}


def names(store: Store) -> list[str]:
    return sorted(store.redis.smembers(keys.batches()))


def delete(store: Store, name: str) -> bool:
    return bool(store.scripts.batch_delete(keys=_keys(name, keys.batches()), args=[name]))


def due_names(store: Store, *, now_ms: int, limit: int) -> list[str]:
    return store.redis.zrangebyscore(keys.batches_due(), "-inf", now_ms, start=0, num=limit)


def flush(store: Store, batch_names: list[str], *, now_ms: int, grace_ms: int,
          limit: int) -> list[tuple[str, str, str, int]]:
    """Run batch_flush.lua for each name in one round trip: (kind, name, id, attempt) items."""
    pipe = store.redis.pipeline(transaction=False)
    for name in batch_names:
        store.scripts.batch_flush(keys=_keys(name), args=[name, now_ms, grace_ms, limit], client=pipe)
    items = []
    for name, flat in zip(batch_names, pipe.execute()):
        items.extend((flat[i], name, flat[i + 1], int(flat[i + 2])) for i in range(0, len(flat), 3))
    return items


def claim(store: Store, name: str, batch_id: str, attempt: int, *, now_ms: int,
          lease_margin_ms: int) -> Claimed | list:
    """A Claimed batch, or the script's refusal: ["gone"] or ["skip", state]."""
    result = store.scripts.batch_claim(keys=_keys(name), args=[name, batch_id, attempt, now_ms, lease_margin_ms])
    if result[0] != "send":
        return result
    _, body, endpoint, headers, timeout_ms, records, max_attempts, backoff_base_ms = result
    return Claimed(name=name, batch_id=batch_id, attempt=attempt, body=body.encode(), endpoint=endpoint,
                   headers=json.loads(headers), timeout_ms=int(timeout_ms), records=int(records),
                   max_attempts=int(max_attempts), backoff_base_ms=int(backoff_base_ms))


def finish(store: Store, name: str, batch_id: str, attempt: int, *, now_ms: int, verdict: str,
           status_code: int | None, error: str | None, deadline_ms: int) -> list:
    return store.scripts.batch_finish(
        keys=_keys(name),
        args=[name, batch_id, attempt, now_ms, verdict, "" if status_code is None else status_code,
              error or "", deadline_ms])


def redrive(store: Store, name: str, *, now_ms: int, grace_ms: int, limit: int) -> list[str]:
    return store.scripts.batch_redrive(keys=_keys(name), args=[name, now_ms, grace_ms, limit])


def dead(store: Store, name: str, *, limit: int) -> list[tuple[str, str, dict]]:
    """(id, body, meta) of up to `limit` dead batches, oldest first."""
    batch_keys = keys.batch_keys(name)
    ids = store.redis.zrange(batch_keys[5], 0, limit - 1)
    if not ids:
        return []
    pipe = store.redis.pipeline(transaction=True)
    pipe.hmget(batch_keys[2], ids)
    pipe.hmget(batch_keys[3], ids)
    bodies, metas = pipe.execute()
    return [(batch_id, body, json.loads(meta)) for batch_id, body, meta in zip(ids, bodies, metas)
            if body is not None and meta is not None]


def taken(store: Store, name: str) -> dict[str, dict]:
    """Every taken (not dead) batch's meta by id: for operators and tests."""
    batch_keys = keys.batch_keys(name)
    ids = store.redis.zrange(batch_keys[4], 0, -1)
    if not ids:
        return {}
    return {batch_id: json.loads(meta) for batch_id, meta in zip(ids, store.redis.hmget(batch_keys[3], ids))
            if meta is not None}
