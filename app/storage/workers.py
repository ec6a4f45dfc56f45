"""Storage of live workers: heartbeats, what each holds, and handing it back when one stops."""
from __future__ import annotations

from typing import NamedTuple

from app.storage import keys
from app.storage.client import Store
from app.storage.requests import Overdue, overdue_from
from app.storage.scripts import Script

_HOLD = Script("worker_hold")
_HOLD_BATCHES = Script("worker_hold_batches")
_REAP = Script("worker_reap")
_REAP_BATCHES = Script("worker_reap_batches")
_RELEASE = Script("worker_release")
_RELEASE_BATCHES = Script("worker_release_batches")


class WorkerInfo(NamedTuple):
    name: str
    host: str
    pid: int
    started_ms: int
    last_seen_ms: int


def heartbeat(store: Store, name: str, *, host: str, pid: int, started_ms: int, now_ms: int) -> None:
    """Say that the worker `name` is alive now (one MULTI: its registration and its time)."""
    pipe = store.pipeline(transaction=True)
    pipe.hset(keys.worker(name), mapping={"host": host, "pid": pid, "started_ms": started_ms})
    pipe.zadd(keys.workers(), {name: now_ms})
    pipe.execute()


def live(store: Store, *, alive_after_ms: int) -> list[WorkerInfo]:
    """The workers that heartbeated after `alive_after_ms`, by name."""
    seen = store.redis.zrangebyscore(keys.workers(), f"({alive_after_ms}", "+inf", withscores=True)
    pipe = store.pipeline()
    for name, _ in seen:
        pipe.hmget(keys.worker(name), "host", "pid", "started_ms")
    return sorted(WorkerInfo(name, host or "", int(pid or 0), int(started_ms or 0), int(last_seen))
                  for (name, last_seen), (host, pid, started_ms) in zip(seen, pipe.execute()))


def dead(store: Store, *, alive_after_ms: int, limit: int) -> list[str]:
    """Registered workers whose last heartbeat is not after `alive_after_ms`."""
    return store.redis.zrangebyscore(keys.workers(), "-inf", alive_after_ms, start=0, num=limit)


def hold(store: Store, worker: str, items: list[tuple[str, int]], *, now_ms: int) -> int:
    """Record that `worker` received these (request id, attempt) items; how many it now holds."""
    if not items:
        return 0
    return store.run(_HOLD, keys={"held": keys.worker_held(worker), "requests": [keys.request(i) for i, _ in items]},
                     args={"worker": worker, "now_ms": now_ms, "items": [value for item in items for value in item]})


def hold_batches(store: Store, worker: str, name: str, items: list[tuple[str, int]], *, now_ms: int) -> int:
    """Record that `worker` received these (batch id, attempt) items of the batch `name`."""
    if not items:
        return 0
    return store.run(_HOLD_BATCHES, keys={"held_batches": keys.worker_held_batches(worker),
                                          "meta": keys.batch_meta(name)},
                     args={"worker": worker, "name": name, "now_ms": now_ms,
                           "items": [value for item in items for value in item]})


def held(store: Store, worker: str) -> list[str]:
    """The ids of the requests `worker` holds."""
    return sorted(store.redis.smembers(keys.worker_held(worker)))


def release(store: Store, worker: str, request_ids: list[str], durable: bool = False) -> int:
    """`worker` no longer holds these requests unless it runs their attempt (its task ended).
    `durable`: confirmed by replicas (Store.run), for a release a failover must not undo."""
    return store.run(_RELEASE, keys={"held": keys.worker_held(worker),
                                     "requests": [keys.request(i) for i in request_ids]},
                     args={"worker": worker, "ids": request_ids}, durable=durable)


def reap(store: Store, worker: str, *, now_ms: int, grace_ms: int, republish: bool = True) -> Overdue:
    """Hand back what a stopped worker held and forget it: its batches become due now (beat's
    flush sends them again or settles their attempt as lost); of its requests, the attempts to
    publish again (none without `republish`) and the attempts it had started, lost with it."""
    _reap_batches(store, worker, now_ms)
    ids = held(store, worker)
    flat = store.run(_REAP, keys={
        "workers": keys.workers(), "worker": keys.worker(worker), "held": keys.worker_held(worker),
        "inflight": keys.requests_inflight(), "requests": [keys.request(i) for i in ids],
    }, args={"worker": worker, "now_ms": now_ms, "grace_ms": grace_ms, "republish": int(republish), "ids": ids})
    return overdue_from(flat)


def held_batches(store: Store, worker: str) -> list[tuple[str, str]]:
    """The (batch name, batch id) of the taken batches `worker` holds."""
    return [tuple(member.split("\t", 1)) for member in sorted(store.redis.smembers(keys.worker_held_batches(worker)))]


def release_batches(store: Store, worker: str, items: list[tuple[str, str]], *, now_ms: int,
                    durable: bool = False) -> int:
    """`worker` no longer holds these (batch name, batch id) unless it is sending them: each is
    made due now, for beat's flush to publish again."""
    return _run_on_batches(store, _RELEASE_BATCHES, worker, items, now_ms, durable)


def _reap_batches(store: Store, worker: str, now_ms: int) -> int:
    return _run_on_batches(store, _REAP_BATCHES, worker, held_batches(store, worker), now_ms)


def _run_on_batches(store: Store, script: Script, worker: str, items: list[tuple[str, str]], now_ms: int,
                    durable: bool = False) -> int:
    batch_keys = [key for name, _ in items for key in (keys.batch_meta(name), keys.batch_taken(name))]
    return store.run(script, keys={"held_batches": keys.worker_held_batches(worker), "due": keys.batches_due(),
                                   "batches": batch_keys},
                     args={"worker": worker, "now_ms": now_ms, "items": [value for item in items for value in item]},
                     durable=durable)
