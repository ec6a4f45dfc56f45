"""Every Redis key htq uses, built from one prefix. No other module formats a key.

Key schema (``P`` is the prefix, ``htq`` by default):

Deferred requests
  P:req:{id}               hash    the request: spec fields, ``status``, ``attempts``,
                                   ``attempt_limit``, ``due_ms``, ``lease_ms``, ``last_error`` ...;
                                   deleted by the expiry sweep ``retention`` after it ended
  P:req:{id}:attempts      list    one JSON object per started attempt, oldest first
  P:req:{id}:response      string  JSON of the last response (or final error) of the request
  P:requests:due           zset    id -> due time (ms) of requests waiting beyond the horizon
                                   (``scheduled`` and ``retrying``); the relay claims from it
  P:requests:inflight      zset    id -> deadline (ms): for ``queued`` the time after which the
                                   relay publishes again, for ``running`` the lease expiry
  P:requests:all           zset    every live id, all scores 0, ids sort by creation time: the
                                   listing index (ZREVRANGEBYLEX gives newest first)
  P:requests:status:{s}    zset    the same, for one status ``s``
  P:requests:ended         zset    id -> time it ended (ms); the expiry sweep reads it
  P:requests:archive       string  Bloom filter bitmap of expired ids (GET answers 410, not 404)
  P:idem:{key}             string  ``{id} {sha1 of body}`` of an Idempotency-Key; TTL 24 h

Notification channels (pub/sub, not keys): P:notify:{topic}:{name}; a request's channel
hears its final status when it ends (storage/notify.py wakes long polls with it).
"""
from __future__ import annotations

PREFIX = "htq"

REQUEST_STATUSES = ("scheduled", "queued", "running", "retrying", "succeeded", "failed", "canceled")
FINAL_STATUSES = ("succeeded", "failed", "canceled")


def request(request_id: str) -> str:
    return f"{PREFIX}:req:{request_id}"


def request_attempts(request_id: str) -> str:
    return f"{PREFIX}:req:{request_id}:attempts"


def request_response(request_id: str) -> str:
    return f"{PREFIX}:req:{request_id}:response"


def requests_due() -> str:
    return f"{PREFIX}:requests:due"


def requests_inflight() -> str:
    return f"{PREFIX}:requests:inflight"


def requests_all() -> str:
    return f"{PREFIX}:requests:all"


def requests_by_status(status: str) -> str:
    return f"{PREFIX}:requests:status:{status}"


def requests_status_indexes() -> list[str]:
    """The per-status index keys in the order of REQUEST_STATUSES (scripts receive them as KEYS)."""
    return [requests_by_status(status) for status in REQUEST_STATUSES]


def requests_ended() -> str:
    return f"{PREFIX}:requests:ended"


def requests_archive() -> str:
    return f"{PREFIX}:requests:archive"


def idempotency(key: str) -> str:
    return f"{PREFIX}:idem:{key}"


def notify_channel(topic: str, name: str) -> str:
    return f"{PREFIX}:notify:{topic}:{name}"


def notify_pattern() -> str:
    return f"{PREFIX}:notify:*"
