"""Storage of deferred requests: each function is one Lua script or one round trip."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from app.storage import keys
from app.storage.client import Store

ARCHIVE_BITS = 1 << 25  # 4 MiB bitmap: about 1% false positives at 3.5 million expired ids
ARCHIVE_HASHES = 7
UNUSED_KEY = keys.idempotency("-")  # stands in KEYS when a request has no Idempotency-Key


def ended_channel(request_id: str) -> str:
    """The pub/sub channel on which a request's final status is announced."""
    return keys.notify_channel("request", request_id)


def create(store: Store, *, request_id: str, now_ms: int, due_ms: int, horizon_end_ms: int,
           grace_ms: int, spec: dict, attempt_limit: int, timeout_ms: int,
           idempotency_key: str | None = None, idempotency_value: str = "",
           idempotency_ttl_s: int = 86400, alias: tuple[str, str] | None = None, client=None) -> list:
    """Run request_create.lua; with `client` a pipeline, the call is queued in it.

    `alias` (namespace, alias) also stores the alias key that finds the request by that name."""
    alias_text = ":".join(alias) if alias else ""
    return store.scripts.request_create(
        keys=[*keys.requests_status_indexes(), keys.request(request_id), keys.requests_due(),
              keys.requests_inflight(), keys.requests_all(),
              keys.idempotency(idempotency_key) if idempotency_key else UNUSED_KEY,
              *_alias_keys(alias_text)],
        args=[request_id, now_ms, due_ms, horizon_end_ms, grace_ms, json.dumps(spec),
              attempt_limit, timeout_ms, idempotency_value if idempotency_key else "",
              idempotency_ttl_s, alias_text],
        client=client)


def _alias_keys(alias: str | None) -> list[str]:
    """The alias key and its namespace's index for a stored ``namespace:alias``, or stand-ins."""
    if not alias:
        return [UNUSED_KEY, UNUSED_KEY]
    namespace, name = alias.split(":", 1)
    return [keys.request_alias(namespace, name), keys.request_aliases(namespace)]


def resolve_alias(store: Store, namespace: str, alias: str) -> str | None:
    return store.redis.get(keys.request_alias(namespace, alias))


def alias_archived(store: Store, namespace: str, alias: str) -> bool:
    """Whether the request of this alias expired (request_expire.lua archives the alias key's name)."""
    return was_archived(store, keys.request_alias(namespace, alias))


def list_aliased_ids(store: Store, namespace: str, statuses: Iterable[str]) -> list[str]:
    """Ids of the namespace's live requests in one of `statuses`, newest first."""
    pipe = store.redis.pipeline(transaction=False)
    for status in statuses:
        pipe.zinter([keys.requests_by_status(status), keys.request_aliases(namespace)])
    return sorted((i for found in pipe.execute() for i in found), reverse=True)


def create_many(store: Store, *, now_ms: int, horizon_end_ms: int, grace_ms: int,
                items: list[tuple[str, int, dict, int, int]]) -> list[str]:
    """Run request_create_many.lua for (id, due_ms, spec, attempt_limit, timeout_ms) items."""
    args: list = [now_ms, horizon_end_ms, grace_ms]
    for request_id, due_ms, spec, attempt_limit, timeout_ms in items:
        args += [request_id, due_ms, json.dumps(spec), attempt_limit, timeout_ms]
    return store.scripts.request_create_many(
        keys=[*keys.requests_status_indexes(), keys.requests_due(), keys.requests_inflight(), keys.requests_all(),
              *(keys.request(item[0]) for item in items)],
        args=args)


def load(store: Store, request_id: str) -> dict:
    return store.redis.hgetall(keys.request(request_id))


def load_many(store: Store, request_ids: Iterable[str]) -> list[dict]:
    pipe = store.redis.pipeline(transaction=False)
    for request_id in request_ids:
        pipe.hgetall(keys.request(request_id))
    return pipe.execute()


def list_ids(store: Store, *, status: str | None, after: str | None, limit: int) -> list[str]:
    """Ids newest first, strictly older than `after` (the previous page's last id)."""
    index = keys.requests_by_status(status) if status else keys.requests_all()
    upper = f"({after}" if after else "+"
    return store.redis.zrevrangebylex(index, upper, "-", start=0, num=limit)


def load_attempts(store: Store, request_id: str) -> list[dict]:
    return [json.loads(item) for item in store.redis.lrange(keys.request_attempts(request_id), 0, -1)]


def load_response(store: Store, request_id: str) -> dict | None:
    raw = store.redis.get(keys.request_response(request_id))
    return None if raw is None else json.loads(raw)


def delete_response(store: Store, request_id: str) -> None:
    pipe = store.redis.pipeline(transaction=True)
    pipe.delete(keys.request_response(request_id))
    pipe.hset(keys.request(request_id), "response_deleted", 1)
    pipe.execute()


def claim_due(store: Store, *, now_ms: int, horizon_end_ms: int, grace_ms: int,
              limit: int) -> list[tuple[str, int, int]]:
    """Move up to `limit` requests due before horizon_end_ms to queued; returns (id, attempt, due)."""
    ids = store.redis.zrangebyscore(keys.requests_due(), "-inf", horizon_end_ms, start=0, num=limit)
    if not ids:
        return []
    flat = store.scripts.request_claim(
        keys=[*keys.requests_status_indexes(), keys.requests_due(), keys.requests_inflight(),
              *(keys.request(i) for i in ids)],
        args=[horizon_end_ms, grace_ms, *ids])
    return [(flat[i], int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)]


def recover_overdue(store: Store, *, now_ms: int, grace_ms: int,
                    limit: int) -> list[tuple[str, str, int, int]]:
    """In-flight requests past their deadline: (kind, id, attempt, due_ms), kind republish or lost."""
    ids = store.redis.zrangebyscore(keys.requests_inflight(), "-inf", now_ms, start=0, num=limit)
    if not ids:
        return []
    flat = store.scripts.request_recover(
        keys=[*keys.requests_status_indexes(), keys.requests_inflight(), *(keys.request(i) for i in ids)],
        args=[now_ms, grace_ms, *ids])
    return [(flat[i], flat[i + 1], int(flat[i + 2]), int(flat[i + 3])) for i in range(0, len(flat), 4)]


def start_many(store: Store, items: list[tuple[str, int]], *, now_ms: int,
               lease_margin_ms: int) -> list[list]:
    """Claim each (id, attempt) for execution, in one round trip; one script result per item."""
    pipe = store.redis.pipeline(transaction=False)
    for request_id, attempt in items:
        store.scripts.request_start(
            keys=[*keys.requests_status_indexes(), keys.request(request_id), keys.requests_inflight()],
            args=[request_id, attempt, now_ms, lease_margin_ms], client=pipe)
    return pipe.execute()


def finish(store: Store, *, request_id: str, attempt: int, now_ms: int, outcome: str, next_due_ms: int,
           horizon_end_ms: int, grace_ms: int, attempt_record: dict, response: dict,
           last_error: str | None, client=None) -> list:
    return store.scripts.request_finish(
        keys=[*keys.requests_status_indexes(), keys.request(request_id), keys.request_attempts(request_id),
              keys.request_response(request_id), keys.requests_due(), keys.requests_inflight(),
              keys.requests_ended()],
        args=[request_id, attempt, now_ms, outcome, next_due_ms, horizon_end_ms, grace_ms,
              json.dumps(attempt_record), json.dumps(response), last_error or "",
              ended_channel(request_id)],
        client=client)


def cancel(store: Store, request_id: str, *, now_ms: int) -> list:
    return store.scripts.request_cancel(
        keys=[*keys.requests_status_indexes(), keys.request(request_id), keys.requests_due(),
              keys.requests_inflight(), keys.requests_ended()],
        args=[request_id, now_ms, ended_channel(request_id)])


def redrive(store: Store, request_id: str, *, now_ms: int, grace_ms: int, max_attempts: int) -> list:
    return store.scripts.request_redrive(
        keys=[*keys.requests_status_indexes(), keys.request(request_id), keys.requests_inflight(),
              keys.requests_ended()],
        args=[request_id, now_ms, grace_ms, max_attempts])


def expire_ended(store: Store, *, cutoff_ms: int, limit: int) -> int:
    """Delete up to `limit` requests that ended before cutoff_ms; their ids go to the archive."""
    ids = store.redis.zrangebyscore(keys.requests_ended(), "-inf", cutoff_ms, start=0, num=limit)
    if not ids:
        return 0
    pipe = store.redis.pipeline(transaction=False)
    for i in ids:
        pipe.hget(keys.request(i), "alias")
    per_id = [[keys.request(i), keys.request_attempts(i), keys.request_response(i), *_alias_keys(alias)]
              for i, alias in zip(ids, pipe.execute())]
    return store.scripts.request_expire(
        keys=[*keys.requests_status_indexes(), keys.requests_ended(), keys.requests_all(),
              keys.requests_archive(), *(key for five in per_id for key in five)],
        args=[cutoff_ms, ARCHIVE_BITS, ARCHIVE_HASHES, *ids])


def archive_positions(member: str) -> list[int]:
    """The Bloom filter bits of an id (or alias key name), the same as request_expire.lua sets."""
    digest = hashlib.sha1(member.encode()).hexdigest()
    h1, h2 = int(digest[0:8], 16), int(digest[8:16], 16)
    return [(h1 + h * h2) % ARCHIVE_BITS for h in range(ARCHIVE_HASHES)]


def was_archived(store: Store, member: str) -> bool:
    pipe = store.redis.pipeline(transaction=False)
    for position in archive_positions(member):
        pipe.getbit(keys.requests_archive(), position)
    return all(pipe.execute())
