"""Storage of recurring schedules: definitions, the due zset, and the scripts that run a tick
together with its effect (a request, a queue message or a batch record)."""
from __future__ import annotations

import json
from typing import NamedTuple

from app.storage import gates, keys
from app.storage.client import Store
from app.storage.queues import channel as queue_channel
from app.storage.requests import NewRequest, token_index
from app.storage.scripts import Script

_PUT = Script("schedule_put")
_PAUSE = Script("schedule_pause")
_DELETE = Script("schedule_delete")
_FIRE_REQUEST = Script("schedule_fire_request")
_FIRE_QUEUE = Script("schedule_fire_queue")
_FIRE_BATCH = Script("schedule_fire_batch")

_STATUS_INDEXES = keys.requests_status_indexes()


class Run(NamedTuple):
    """One run to write: of the schedule `name` as read at `version`; `expected_ms` is the next
    tick read (None for a run outside the timetable), `run_ms` the tick run, `next_ms` the tick
    after it (ignored outside the timetable)."""

    name: str
    version: str
    expected_ms: int | None
    run_ms: int
    next_ms: int

    def args(self, now_ms: int) -> dict:
        return {"name": self.name, "version": self.version,
                "expected_ms": "" if self.expected_ms is None else self.expected_ms,
                "run_ms": self.run_ms, "next_ms": self.next_ms, "now_ms": now_ms}


class Fired(NamedTuple):
    """What a run did: `outcome` "created" (a request; `status` says whether to publish it),
    "pushed", "added" (`taken`: batch ids to publish), "stale" (another caller ran the tick, or
    the schedule changed: nothing written), "missing" or "too_large" (the batch refused the
    record); `run_id` is the request, message or record id."""

    outcome: str
    run_id: str | None = None
    status: str | None = None
    taken: list[str] = []


def _schedule_keys(name: str) -> dict[str, str]:
    return {"schedule": keys.schedule(name), "schedules_due": keys.schedules_due()}


def put(store: Store, name: str, *, spec: str, now_ms: int, anchor_ms: int, next_ms: int, paused: bool) -> bool:
    """Create or replace; True if created."""
    return store.run(_PUT, keys={**_schedule_keys(name), "schedules": keys.schedules()}, args={
        "name": name, "now_ms": now_ms, "spec": spec, "anchor_ms": anchor_ms, "next_ms": next_ms,
        "paused": "1" if paused else "0"}, durable=True) == 1


def load(store: Store, name: str) -> dict:
    """The schedule's hash ({} if there is none)."""
    return store.redis.hgetall(keys.schedule(name))


def load_many(store: Store, names: list[str]) -> list[dict]:
    pipe = store.pipeline()
    for name in names:
        pipe.hgetall(keys.schedule(name))
    return pipe.execute()


def names(store: Store) -> list[str]:
    return store.redis.zrangebylex(keys.schedules(), "-", "+")


def delete(store: Store, name: str) -> bool:
    return store.run(_DELETE, keys={**_schedule_keys(name), "schedules": keys.schedules()},
                     args={"name": name}) == 1


def set_paused(store: Store, name: str, *, paused: bool, next_ms: int, version: str) -> str:
    """"ok", "missing" or "stale" (replaced since `version` was read)."""
    return store.run(_PAUSE, keys=_schedule_keys(name), args={
        "name": name, "paused": "1" if paused else "0", "next_ms": next_ms, "version": version}, durable=True)


def due(store: Store, *, until_ms: int, limit: int) -> list[tuple[str, int]]:
    """(name, next tick ms) of up to `limit` schedules due by `until_ms`, earliest first."""
    found = store.redis.zrangebyscore(keys.schedules_due(), "-inf", until_ms, start=0, num=limit, withscores=True)
    return [(name, int(score)) for name, score in found]


def fire_request(store: Store, run: Run, new: NewRequest, *, now_ms: int, horizon_end_ms: int, grace_ms: int,
                 pipeline=None):
    """Claim the tick and create the request `new` (its spec names the schedule)."""
    return store.run(_FIRE_REQUEST, keys={
        **_STATUS_INDEXES, **_schedule_keys(run.name), "request": keys.request(new.request_id),
        "due": keys.requests_due(), "inflight": keys.requests_inflight(), "all": keys.requests_all(),
        "schedule_requests": keys.schedule_requests(run.name), **token_index(new.spec),
    }, args={
        **run.args(now_ms), "id": new.request_id, "due_ms": new.due_ms, "horizon_end_ms": horizon_end_ms,
        "grace_ms": grace_ms, "spec": json.dumps(new.spec), "attempt_limit": int(new.spec["retry"]["max_attempts"]),
        "timeout_ms": round(float(new.spec["timeout"]) * 1000), "request_gates": gates.new_request_arg(new.spec),
        "gates": keys.gates_prefix(), "token": new.spec.get("token_id") or "",
    }, pipeline=pipeline)


def fire_queue(store: Store, run: Run, queue: str, body: str, *, now_ms: int, id_suffix: str,
               defaults: dict[str, int], pipeline=None):
    """Claim the tick and push the stored `body` to `queue`, available at the tick."""
    return store.run(_FIRE_QUEUE, keys={**_schedule_keys(run.name), **keys.queue_keys(queue),
                                        "registry": keys.queues()}, args={
        **run.args(now_ms), "queue": queue, "channel": queue_channel(queue), "id_suffix": id_suffix,
        "visibility_timeout_ms": defaults["visibility_timeout_ms"], "max_receives": defaults["max_receives"],
        "retention_ms": defaults["retention_ms"], "delay_ms": defaults["delay_ms"],
        "lead_ms": max(0, run.run_ms - now_ms), "body": body}, pipeline=pipeline)


def fire_batch(store: Store, run: Run, batch: str, record: str, *, now_ms: int, grace_ms: int, pipeline=None):
    """Claim the tick and append the JSON text `record` to `batch`."""
    return store.run(_FIRE_BATCH, keys={**_schedule_keys(run.name), **keys.batch_keys(batch)}, args={
        **run.args(now_ms), "batch": batch, "grace_ms": grace_ms, "record": record}, pipeline=pipeline)


def fired(reply: list, request_id: str | None = None) -> Fired:
    """The typed result of a fire_* reply (`request_id`: the id a fire_request run would make)."""
    outcome = reply[0]
    if outcome == "created":
        return Fired(outcome, request_id, status=reply[1])
    if outcome == "pushed":
        return Fired(outcome, reply[1])
    if outcome == "added":
        return Fired(outcome, f"{reply[1]}.{reply[2]}", taken=list(reply[3:]))
    return Fired(outcome)
