"""Storage of deferred requests: each function is one Lua script or one round trip, and decodes
what Redis answers into the typed results below."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import NamedTuple

from app.core import jsontext
from app.core.clock import from_rfc3339
from app.core.gates import Breaker
from app.core.model import REQUEST_STATUSES, ms
from app.core.tokens import ENV_TOKEN_ID
from app.storage import gates, keys, outbox, stats
from app.storage.client import Store
from app.storage.outbox import Notice
from app.storage.scripts import ManyScript, Script

ARCHIVE_BITS = 1 << 25  # 4 MiB bitmap: about 1% false positives at 3.5 million expired ids
ARCHIVE_HASHES = 7
IDEMPOTENCY_TTL_S = 86400
UNUSED_KEY = keys.idempotency("-")  # stands in KEYS when a request has no Idempotency-Key or alias

_CREATE = Script("request_create")
_CREATE_MANY = Script("request_create_many")
_CLAIM = Script("request_claim")
_RECOVER = Script("request_recover")
# One call per task message's attempts, each attempt's own keys and arguments in turn.
_START = ManyScript("request_start", each_keys=("request",), each_args=("id", "attempt"))
_FINISH = ManyScript("request_finish", each_keys=("request", "attempts", "response"), each_args=(
    "id", "attempt", "outcome", "next_due_ms", "attempt_record", "response", "last_error", "channel", "notice",
    "worker_lost", "elapsed_ms", "breaker_result"))
_CANCEL = Script("request_cancel")
_RETRY = Script("request_retry")
_RUN_NOW = Script("request_run_now")
_EXPIRE = Script("request_expire")
_DELETE_RESPONSE = Script("request_delete_response")
_RUSH = Script("request_rush")
_CANCEL_MANY = Script("request_cancel_many")


class NewRequest(NamedTuple):
    """A request to store: its id, when it is due, and its spec (what the client sent, with
    `id`, `timeout` in seconds and `retry.max_attempts`)."""

    request_id: str
    due_ms: int
    spec: dict


class Stored(NamedTuple):
    """What creating did: stored with `status` ("queued": publish it now; "scheduled": the relay
    will), or nothing, because the Idempotency-Key was used for `replay_of` (with a body whose
    fingerprint was `replay_fingerprint`) or the compat alias is taken."""

    status: str | None
    replay_of: str | None = None
    replay_fingerprint: str = ""
    alias_taken: bool = False


class Due(NamedTuple):
    """An attempt to hand to the workers: the request, the attempt's number, its due time."""

    request_id: str
    attempt: int
    due_ms: int


class Overdue(NamedTuple):
    """In-flight requests past their deadline: published but never started (publish them again),
    and started attempts whose lease expired (their worker is lost: settle them as such)."""

    republish: list[Due]
    lost: list[Due]


class Started(NamedTuple):
    """An attempt claimed for sending (`spec` set, to be sent at `send_ms`), or not: dropped with
    the `status` found ("" if gone), or held back by its gates without using an attempt, either
    `deferred_ms` (its flow's rate reserved that start; `publish`: it is within the horizon and
    the caller publishes it for then, else the relay will) or `parked` at that gate."""

    status: str
    spec: dict | None = None
    send_ms: int | None = None
    deferred_ms: int | None = None
    publish: bool = False
    parked: str | None = None


class AttemptEnd(NamedTuple):
    """What a finished attempt stores: its verdict (`succeeded`, `retry` or `failed`), when the
    next attempt is due should it retry, the attempt's record, the response document, the error,
    whether a callback is owed should the request end (it has a callback_url), and what the
    attempt counters need."""

    request_id: str
    attempt: int
    verdict: str
    next_due_ms: int
    record: dict
    response: dict
    last_error: str | None
    callback: bool = False
    elapsed_ms: int = 0  # the HTTP exchange's duration (the duration histogram)
    worker_lost: bool = False  # its worker died during it: counted as such, nothing measured
    breaker_news: str = ""  # what it tells its destination's breaker (core.gates.breaker_news)


class Next(StrEnum):
    """What follows a finished attempt (request_finish.lua)."""

    PUBLISH = "publish"  # the next attempt is due within the horizon: publish it now
    SCHEDULED = "scheduled"  # the next attempt waits for the relay
    ENDED = "ended"  # a final status was reached
    CANCELED = "canceled"  # canceled while running: recorded only
    STALE = "stale"  # not the current attempt any more: nothing was written


class Settled(NamedTuple):
    """What follows an attempt, and the requests its freed slot or closed breaker woke (to publish)."""

    next: Next
    final_status: str | None = None
    woken: list[Due] = []


class Canceled(StrEnum):
    MISSING = "missing"
    ENDED = "ended"  # too late: it already succeeded or failed
    ALREADY = "already"
    CANCELED = "canceled"


class Cancel(NamedTuple):
    result: Canceled
    status: str | None = None  # the status it had (CANCELED) or has (ENDED)
    attempts: int = 0  # attempts started before it was canceled
    notice: bool = False  # a cancel notice was recorded in the outbox: publish it


class Retried(NamedTuple):
    """A failed or canceled request queued again (`attempt` is the next one), or why not:
    `missing`, or `conflict` with the `status` it has."""

    attempt: int | None
    missing: bool = False
    status: str | None = None


class RanNow(NamedTuple):
    """A request whose next attempt was moved to now (`attempt`, to publish now), or why not:
    `missing`, `due` (that attempt is due and handed to the workers already), or `status`
    (running or ended: nothing left to run now)."""

    attempt: int | None
    missing: bool = False
    due: bool = False
    status: str | None = None


def ended_channel(request_id: str) -> str:
    """The pub/sub channel on which a request's final status is announced."""
    return keys.notify_channel("request", request_id)


_STATUS_INDEXES = keys.requests_status_indexes()


def _request_keys(request_id: str) -> dict[str, str]:
    return {**_STATUS_INDEXES, "request": keys.request(request_id)}


# -- creating ------------------------------------------------------------------------------------

def create(store: Store, new: NewRequest, *, now_ms: int, horizon_end_ms: int, grace_ms: int,
           idempotency: tuple[str, str] | None = None, alias: tuple[str, str] | None = None) -> Stored:
    """Store one request, its indexes and schedule entry in one script. `idempotency` is
    (Idempotency-Key, fingerprint of the body); `alias` (namespace, alias) also stores the key
    that finds the request by a compat profile's own id, so the request is never there without it."""
    idempotency_key, fingerprint = idempotency or (None, "")
    reply = store.run(_CREATE, keys={
        **_request_keys(new.request_id), "due": keys.requests_due(), "inflight": keys.requests_inflight(),
        "all": keys.requests_all(), **token_index(new.spec),
        "idempotency": keys.idempotency(idempotency_key, _idempotency_scope(new.spec)) if idempotency_key
        else UNUSED_KEY,
        "alias": keys.request_alias(*alias) if alias else UNUSED_KEY,
        "alias_index": keys.request_aliases(alias[0]) if alias else UNUSED_KEY,
    }, args={
        "id": new.request_id, "now_ms": now_ms, "due_ms": new.due_ms, "horizon_end_ms": horizon_end_ms,
        "grace_ms": grace_ms, "spec": json.dumps(new.spec), "attempt_limit": _attempt_limit(new.spec),
        "timeout_ms": _timeout_ms(new.spec),
        "idempotency_value": f"{new.request_id} {fingerprint}" if idempotency_key else "",
        "idempotency_ttl_s": IDEMPOTENCY_TTL_S, "alias": ":".join(alias) if alias else "",
        "request_gates": gates.new_request_arg(new.spec), "gates": keys.gates_prefix(),
        "token": new.spec.get("token_id") or "",
    }, durable=True)
    if reply[0] == "alias_taken":
        store.barrier()
        return Stored(None, alias_taken=True)
    if reply[0] == "exists":
        # The original may have been written by another connection whose WAIT has not returned:
        # a replay is answered only once a replica holds it too.
        store.barrier()
        original_id, original_fingerprint = reply[1].split(" ", 1)
        return Stored(None, replay_of=original_id, replay_fingerprint=original_fingerprint)
    return Stored(reply[1])


def create_many(store: Store, items: list[NewRequest], *, now_ms: int, horizon_end_ms: int,
                grace_ms: int) -> list[str]:
    """Store every request in one script (all or none); the status of each, "queued" or "scheduled".
    One token makes them all (the first one's is taken)."""
    maker = items[0].spec if items else {}
    args: list = []
    for new in items:
        args += [new.request_id, new.due_ms, json.dumps(new.spec), _attempt_limit(new.spec), _timeout_ms(new.spec),
                 gates.new_request_arg(new.spec)]
    return store.run(_CREATE_MANY, keys={
        **_STATUS_INDEXES, "due": keys.requests_due(), "inflight": keys.requests_inflight(),
        "all": keys.requests_all(), **token_index(maker), "requests": [keys.request(new.request_id) for new in items],
    }, args={"now_ms": now_ms, "horizon_end_ms": horizon_end_ms, "grace_ms": grace_ms, "items": args,
             "gates": keys.gates_prefix(), "token": maker.get("token_id") or ""}, durable=True)


def _idempotency_scope(spec: dict) -> str | None:
    """The token whose key space an Idempotency-Key is looked up in: a scoped token's own; None,
    one space shared, for the operator's tokens (HTQ_API_TOKENS) and with auth off."""
    token_id = spec.get("token_id")
    return None if token_id == ENV_TOKEN_ID else token_id


def token_index(spec: dict) -> dict[str, str]:
    """KEYS entry `token_requests` of the scripts that create a request with this spec."""
    token_id = spec.get("token_id")
    return {"token_requests": keys.token_requests(token_id) if token_id else UNUSED_KEY}


def _attempt_limit(spec: dict) -> int:
    return int(spec["retry"]["max_attempts"])


def _timeout_ms(spec: dict) -> int:
    return ms(spec["timeout"])


# -- reading -------------------------------------------------------------------------------------

def load(store: Store, request_id: str) -> dict:
    return store.redis.hgetall(keys.request(request_id))


def spec_of(record: dict) -> dict:
    """What the client sent (with its `id`), from a loaded request hash; read even when stored
    before bodies were limited in depth (its deep `json` then comes back as a Fragment of its
    text, see jsontext.loads_stored), so that such a request still lists, reads, cancels and is
    sent."""
    return jsontext.loads_stored(record["spec"])


def load_many(store: Store, request_ids: Iterable[str]) -> list[dict]:
    pipe = store.pipeline()
    for request_id in request_ids:
        pipe.hgetall(keys.request(request_id))
    return pipe.execute()


def list_ids(store: Store, *, status: str | None, after: str | None, limit: int,
             schedule: str | None = None, token: str | None = None) -> list[str]:
    """Ids newest first, strictly older than `after` (the previous page's last id); of one
    schedule's requests when `schedule` is given, else of one token's when `token` is (the
    caller filters those by the rest)."""
    if schedule is not None:
        index = keys.schedule_requests(schedule)
    elif token is not None:
        index = keys.token_requests(token)
    else:
        index = keys.requests_by_status(status) if status else keys.requests_all()
    upper = f"({after}" if after else "+"
    return store.redis.zrevrangebylex(index, upper, "-", start=0, num=limit)


def count_by_status(store: Store) -> tuple[dict[str, int], int]:
    """({status: requests}, requests waiting beyond the horizon), read in one round trip."""
    pipe = store.pipeline()
    for status in REQUEST_STATUSES:
        pipe.zcard(keys.requests_by_status(status))
    pipe.zcard(keys.requests_due())
    *by_status, due = pipe.execute()
    return dict(zip(REQUEST_STATUSES, by_status, strict=True)), due


class Timing(NamedTuple):
    """When a request was due and its latest attempt started, and how many attempts it made."""

    request_id: str
    status: str
    attempts: int
    due_ms: int | None
    started_ms: int | None


def ended_per_window(store: Store, *, start_ms: int, window_ms: int, windows: int) -> list[int]:
    """Requests that ended in each of `windows` consecutive windows from start_ms: one ZCOUNT
    each on the ended index (O(log n)), in one round trip, however many requests ended."""
    pipe = store.pipeline()
    for index in range(windows):
        low = start_ms + index * window_ms
        pipe.zcount(keys.requests_ended(), low, f"({low + window_ms}")
    return pipe.execute()


def latest_ended(store: Store, limit: int) -> list[Timing]:
    """The timing of the `limit` requests that ended last, newest first (two round trips)."""
    ids = store.redis.zrevrange(keys.requests_ended(), 0, limit - 1)
    pipe = store.pipeline()
    for request_id in ids:
        pipe.hmget(keys.request(request_id), "status", "attempts", "due_ms", "started_ms")
    return [Timing(request_id, status, int(attempts or 0), _int(due), _int(started))
            for request_id, (status, attempts, due, started) in zip(ids, pipe.execute()) if status]


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def overdue_waiting(store: Store, *, now_ms: int) -> tuple[int, int | None]:
    """(requests waiting in the schedule although their time has come, the oldest one's due time):
    the relay should have handed them to the workers; a count that stays above 0 means it is behind."""
    pipe = store.pipeline()
    pipe.zcount(keys.requests_due(), "-inf", now_ms)
    pipe.zrange(keys.requests_due(), 0, 0, withscores=True)
    count, first = pipe.execute()
    oldest = int(first[0][1]) if first and first[0][1] <= now_ms else None
    return count, oldest


def load_attempts(store: Store, request_id: str) -> list[dict]:
    return [json.loads(item) for item in store.redis.lrange(keys.request_attempts(request_id), 0, -1)]


def first_attempt_started_ms(store: Store, request_id: str) -> int | None:
    """When a request's first attempt started (its first attempt record's `started_at`)."""
    raw = store.redis.lindex(keys.request_attempts(request_id), 0)
    started_at = json.loads(raw).get("started_at") if raw else None
    return from_rfc3339(started_at) if started_at else None


def load_response(store: Store, request_id: str) -> dict | None:
    raw = store.redis.get(keys.request_response(request_id))
    return None if raw is None else json.loads(raw)


def delete_response(store: Store, request_id: str) -> bool:
    """Delete the stored response of a request; False when the request is gone."""
    return store.run(_DELETE_RESPONSE, keys={"request": keys.request(request_id),
                                             "response": keys.request_response(request_id)}, args={}) == 1


def resolve_alias(store: Store, namespace: str, alias: str) -> str | None:
    return store.redis.get(keys.request_alias(namespace, alias))


def alias_archived(store: Store, namespace: str, alias: str) -> bool:
    """Whether the request of this alias expired (request_expire.lua archives the alias key's name)."""
    return was_archived(store, keys.request_alias(namespace, alias))


def list_aliased_ids(store: Store, namespace: str, statuses: Iterable[str]) -> list[str]:
    """Ids of the namespace's live requests in one of `statuses`, newest first."""
    pipe = store.pipeline()
    for status in statuses:
        pipe.zinter([keys.requests_by_status(status), keys.request_aliases(namespace)])
    return sorted((i for found in pipe.execute() for i in found), reverse=True)


# -- the relay -----------------------------------------------------------------------------------

def claim_due(store: Store, *, now_ms: int, horizon_end_ms: int, grace_ms: int, limit: int) -> list[Due]:
    """Move up to `limit` requests due before horizon_end_ms to queued, to be published."""
    ids = store.redis.zrangebyscore(keys.requests_due(), "-inf", horizon_end_ms, start=0, num=limit)
    if not ids:
        return []
    flat = store.run(_CLAIM, keys={
        **_STATUS_INDEXES, "due": keys.requests_due(), "inflight": keys.requests_inflight(),
        "requests": [keys.request(i) for i in ids],
    }, args={"horizon_end_ms": horizon_end_ms, "grace_ms": grace_ms, "ids": ids})
    return [Due(flat[i], int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)]


def rush(store: Store, *, now_ms: int, grace_ms: int, limit: int) -> list[Due]:
    """In-flight requests not started whose due time the (virtual) clock has passed, each put a
    grace later: publish them at once, without eta."""
    ids = store.redis.zrangebyscore(keys.requests_inflight(), "-inf", now_ms + grace_ms, start=0, num=limit)
    if not ids:
        return []
    flat = store.run(_RUSH, keys={"inflight": keys.requests_inflight(), "requests": [keys.request(i) for i in ids]},
                     args={"now_ms": now_ms, "grace_ms": grace_ms, "ids": ids})
    return [Due(flat[i], int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)]


def recover_overdue(store: Store, *, now_ms: int, grace_ms: int, alive_after_ms: int, held_after_ms: int,
                    backlog: Callable[[], int], limit: int) -> Overdue:
    """In-flight requests past their deadline, each reported again a grace later until settled.
    One not started yet is published again only if no live worker holds it and `backlog()`, the
    messages waiting in the broker, is 0 (asked only when some deadline passed)."""
    ids = store.redis.zrangebyscore(keys.requests_inflight(), "-inf", now_ms, start=0, num=limit)
    if not ids:
        return Overdue([], [])
    flat = store.run(_RECOVER, keys={
        "inflight": keys.requests_inflight(), "workers": keys.workers(), "requests": [keys.request(i) for i in ids],
    }, args={"now_ms": now_ms, "grace_ms": grace_ms, "alive_after_ms": alive_after_ms,
             "held_after_ms": held_after_ms, "backlog": backlog(),
             "ids": ids})
    return overdue_from(flat)


def overdue_from(flat: list) -> Overdue:
    """The reply of a script handing requests back (request_recover.lua, worker_reap.lua): a flat
    list {kind, id, attempt, due_ms, ...}, kind "republish" or "lost"."""
    overdue = Overdue([], [])
    for i in range(0, len(flat), 4):
        due = Due(flat[i + 1], int(flat[i + 2]), int(flat[i + 3]))
        (overdue.republish if flat[i] == "republish" else overdue.lost).append(due)
    return overdue


# -- attempts ------------------------------------------------------------------------------------

def start_many(store: Store, items: list[tuple[str, int]], *, worker: str, now_ms: int, lease_margin_ms: int,
               horizon_end_ms: int, grace_ms: int) -> list[Started]:
    """Claim each (id, attempt) for execution by `worker`, past its gates, in one script call."""
    if not items:
        return []
    replies = store.run(_START, keys={
        **_STATUS_INDEXES, "request": [keys.request(request_id) for request_id, _ in items],
        "inflight": keys.requests_inflight(), "held": keys.worker_held(worker), "lateness": keys.stats_lateness(),
        "due": keys.requests_due(),
    }, args={"id": [request_id for request_id, _ in items], "attempt": [attempt for _, attempt in items],
             "now_ms": now_ms, "worker": worker, "lateness_bounds": stats.LATENESS_BOUNDS,
             "horizon_end_ms": horizon_end_ms, **gates.script_args(grace_ms, lease_margin_ms)})
    return [_started(reply) for reply in replies]


def _started(reply: list) -> Started:
    kind = reply[0]
    if kind == "started":
        return Started("running", jsontext.loads_stored(reply[1]), int(reply[2]))
    if kind == "defer":
        return Started("", deferred_ms=int(reply[1]), publish=reply[2] == "publish")
    if kind == "parked":
        return Started("", parked=reply[1])
    return Started(reply[1])


def finish_many(store: Store, ends: list[AttemptEnd], *, worker: str, now_ms: int, horizon_end_ms: int,
                grace_ms: int, lease_margin_ms: int, breaker: Breaker) -> list[Settled]:
    """Store each attempt's outcome and decide what follows, in one script call; `worker` (the
    one that ran the attempts, or the relay settling lost ones) no longer holds them."""
    if not ends:
        return []
    replies = store.run(_FINISH, keys={
        **_STATUS_INDEXES, "request": [keys.request(end.request_id) for end in ends],
        "attempts": [keys.request_attempts(end.request_id) for end in ends],
        "response": [keys.request_response(end.request_id) for end in ends], "due": keys.requests_due(),
        "inflight": keys.requests_inflight(), "ended": keys.requests_ended(), "held": keys.worker_held(worker),
        "outbox": keys.requests_outbox(), "outcomes": keys.stats_attempts(), "deliveries": keys.stats_deliveries(),
    }, args={
        "id": [end.request_id for end in ends], "attempt": [end.attempt for end in ends], "now_ms": now_ms,
        "outcome": [end.verdict for end in ends], "next_due_ms": [end.next_due_ms for end in ends],
        "horizon_end_ms": horizon_end_ms, "attempt_record": [json.dumps(end.record) for end in ends],
        "response": [json.dumps(end.response) for end in ends], "last_error": [end.last_error or "" for end in ends],
        "channel": [ended_channel(end.request_id) for end in ends], "worker": worker,
        "notice": [outbox.entry(Notice.CALLBACK, end.request_id) if end.callback else "" for end in ends],
        "worker_lost": ["1" if end.worker_lost else "" for end in ends], "elapsed_ms": [end.elapsed_ms for end in ends],
        "duration_bounds": stats.DURATION_BOUNDS, "minutes_kept": stats.DELIVERY_MINUTES_KEPT,
        "breaker_result": [end.breaker_news for end in ends], "breaker_failures": breaker.failures,
        "breaker_cooldown_ms": breaker.cooldown_ms, **gates.script_args(grace_ms, lease_margin_ms),
    })
    return [Settled(Next(reply[0]), reply[1] if reply[0] == Next.ENDED else None,
                    [Due(reply[i], int(reply[i + 1]), int(reply[i + 2])) for i in range(2, len(reply), 3)])
            for reply in replies]


# -- changing ------------------------------------------------------------------------------------

def cancel(store: Store, request_id: str, *, now_ms: int, grace_ms: int, lease_margin_ms: int,
           notify: bool) -> Cancel:
    """Cancel a request that has not ended. With `notify` (its spec's cancel_notify, fixed at
    creation), the script records a cancel notice if something was sent, due a grace from now."""
    reply = store.run(_CANCEL, keys={
        **_request_keys(request_id), "due": keys.requests_due(), "inflight": keys.requests_inflight(),
        "ended": keys.requests_ended(), "outbox": keys.requests_outbox(),
    }, args={"id": request_id, "now_ms": now_ms, "channel": ended_channel(request_id),
             "notice": outbox.entry(Notice.CANCEL, request_id) if notify else "",
             **gates.script_args(grace_ms, lease_margin_ms)})
    result = Canceled(reply[0])
    if result is Canceled.CANCELED:
        return Cancel(result, reply[1], int(reply[2]), reply[3] == 1)
    return Cancel(result, reply[1] if result is Canceled.ENDED else None)


CANCELABLE = ("scheduled", "queued", "running", "retrying")


class BulkCanceled(NamedTuple):
    """One chunk of a bulk cancel: how many were canceled, which owe a cancel notice, and the
    cursor to go on from (None once the index is done)."""

    canceled: int
    notify: list[str]
    cursor: str | None


def cancel_matching(store: Store, index: str, *, statuses: list[str], url_prefix: str, after: str, limit: int,
                    now_ms: int, grace_ms: int, lease_margin_ms: int, token: str = "") -> BulkCanceled:
    """Cancel, among the next `limit` requests of `index` (a status's, keys.requests_by_status, a
    schedule's, keys.schedule_requests, or a token's, keys.token_requests: ids by lex order) after
    the id `after` ("" from the start), those in one of `statuses` whose url starts with
    `url_prefix` and, given a `token`, that it made: one script a chunk."""
    ids = store.redis.zrangebylex(index, f"({after}" if after else "-", "+", start=0, num=limit)
    if not ids:
        return BulkCanceled(0, [], None)
    reply = store.run(_CANCEL_MANY, keys={
        **_STATUS_INDEXES, "due": keys.requests_due(), "inflight": keys.requests_inflight(),
        "ended": keys.requests_ended(), "outbox": keys.requests_outbox(), "requests": [keys.request(i) for i in ids],
    }, args={"now_ms": now_ms, **gates.script_args(grace_ms, lease_margin_ms), "channel_prefix": ended_channel(""),
             "notice_prefix": outbox.entry(Notice.CANCEL, ""), "statuses": " ".join(statuses),
             "url_prefix": url_prefix, "token": token, "ids": ids})
    return BulkCanceled(int(reply[0]), list(reply[1:]), ids[-1] if len(ids) == limit else None)


def retry(store: Store, request_id: str, *, now_ms: int, grace_ms: int, max_attempts: int) -> Retried:
    """Queue a failed or canceled request again, now, with `max_attempts` more attempts."""
    reply = store.run(_RETRY, keys={
        **_request_keys(request_id), "inflight": keys.requests_inflight(), "ended": keys.requests_ended(),
    }, args={"id": request_id, "now_ms": now_ms, "grace_ms": grace_ms, "max_attempts": max_attempts}, durable=True)
    if reply[0] == "missing":
        return Retried(None, missing=True)
    if reply[0] == "conflict":
        return Retried(None, status=reply[1])
    return Retried(int(reply[1]))


def run_now(store: Store, request_id: str, *, now_ms: int, grace_ms: int, lease_margin_ms: int) -> RanNow:
    """Move the next attempt of a request that waits for it (scheduled, retrying, or queued with
    a later eta) to now, in flight: the caller publishes it at once."""
    reply = store.run(_RUN_NOW, keys={
        **_request_keys(request_id), "due": keys.requests_due(), "inflight": keys.requests_inflight(),
    }, args={"id": request_id, "now_ms": now_ms, **gates.script_args(grace_ms, lease_margin_ms)})
    if reply[0] == "missing":
        return RanNow(None, missing=True)
    if reply[0] == "conflict":
        return RanNow(None, status=reply[1])
    if reply[0] == "due":
        return RanNow(None, due=True)
    return RanNow(int(reply[1]))


# -- expiry --------------------------------------------------------------------------------------

def expire_ended(store: Store, *, cutoff_ms: int, limit: int) -> int:
    """Delete up to `limit` requests that ended before cutoff_ms; their ids go to the archive."""
    ids = store.redis.zrangebyscore(keys.requests_ended(), "-inf", cutoff_ms, start=0, num=limit)
    if not ids:
        return 0
    pipe = store.pipeline()
    for i in ids:
        pipe.hmget(keys.request(i), "alias", "schedule", "token")
    per_request = []
    for i, (alias, schedule, token) in zip(ids, pipe.execute()):
        namespace, name = alias.split(":", 1) if alias else (None, None)
        per_request += [keys.request(i), keys.request_attempts(i), keys.request_response(i),
                        keys.request_alias(namespace, name) if alias else UNUSED_KEY,
                        keys.request_aliases(namespace) if alias else UNUSED_KEY,
                        keys.schedule_requests(schedule) if schedule else UNUSED_KEY,
                        keys.token_requests(token) if token else UNUSED_KEY]
    return store.run(_EXPIRE, keys={
        **_STATUS_INDEXES, "ended": keys.requests_ended(), "all": keys.requests_all(),
        "archive": keys.requests_archive(), "outbox": keys.requests_outbox(), "requests": per_request,
    }, args={"cutoff_ms": cutoff_ms, "archive_bits": ARCHIVE_BITS, "archive_hashes": ARCHIVE_HASHES,
             "notice_kinds": " ".join(Notice), "ids": ids})


def archive_positions(member: str) -> list[int]:
    """The Bloom filter bits of an id (or alias key name), the same as request_expire.lua sets."""
    digest = hashlib.sha1(member.encode()).hexdigest()
    h1, h2 = int(digest[0:8], 16), int(digest[8:16], 16)
    return [(h1 + h * h2) % ARCHIVE_BITS for h in range(ARCHIVE_HASHES)]


def was_archived(store: Store, member: str) -> bool:
    pipe = store.pipeline()
    for position in archive_positions(member):
        pipe.getbit(keys.requests_archive(), position)
    return all(pipe.execute())
