"""The store on a real Redis filled to its maxmemory (noeviction): what Redis refuses, what it still
lets through, that a refused script stored nothing, and that writes work again once memory is freed."""
from __future__ import annotations

import pytest

from app.storage import queues as sq
from app.storage import requests as sr
from app.storage.batches import BatchConfig
from app.storage.client import OUT_OF_MEMORY
from app.storage.requests import NewRequest

T0 = 1_700_000_000_000
QUEUE_DEFAULTS = {"visibility_timeout_ms": 30_000, "max_receives": 0, "retention_ms": 60_000, "delay_ms": 0}
SPEC = {"url": "http://127.0.0.1:9/x", "method": "POST", "headers": {}, "timeout": 5,
        "retry": {"max_attempts": 3, "backoff_base": 1, "backoff_max": 60}}
BATCH = BatchConfig(endpoint="http://127.0.0.1:9/in", max_records=2, max_bytes=1024 * 1024, interval_ms=10_000,
                    headers={}, max_attempts=3, backoff_base_ms=2000, timeout_ms=30_000)


def snapshot(store) -> dict[str, object]:
    """Every key with its value (only reads, which Redis allows at maxmemory)."""
    read = {"string": store.redis.get, "hash": store.redis.hgetall, "list": lambda k: store.redis.lrange(k, 0, -1),
            "set": store.redis.smembers, "zset": lambda k: store.redis.zrange(k, 0, -1, withscores=True)}
    return {key: read[store.redis.type(key)](key) for key in store.redis.scan_iter("htq:*")}


def create_request(store, request_id, now=T0, due=T0, idempotency=None):
    new = NewRequest(request_id, due, {**SPEC, "id": request_id})
    return sr.create(store, new, now_ms=now, horizon_end_ms=now + 60_000, grace_ms=120_000,
                     idempotency=idempotency)


def push(store, *bodies, name="q", now=T0):
    return sq.push(store, name, now_ms=now, id_suffix="abc", defaults=QUEUE_DEFAULTS,
                   messages=[(body, None) for body in bodies])


def test_redis_refuses_a_script_only_at_its_first_write_and_only_one_that_may_grow_memory(store, full_redis):
    grows_first = store.redis.register_script("redis.call('SET', KEYS[1], 'a'); redis.call('SET', KEYS[2], 'b')")
    frees_first = store.redis.register_script(
        "redis.call('DEL', KEYS[3]); redis.call('SET', KEYS[1], 'a'); redis.call('SET', KEYS[2], 'b')")
    full_redis.fill()
    with pytest.raises(OUT_OF_MEMORY):  # Redis 6 wraps this refusal in a script error; the store unwraps it
        grows_first(keys=["t:1", "t:2"])
    assert store.redis.exists("t:1", "t:2") == 0  # refused before its first write: nothing stored
    with pytest.raises(OUT_OF_MEMORY):
        pipe = store.pipeline()
        grows_first(keys=["t:1", "t:2"], client=pipe)
        pipe.execute()
    with pytest.raises(OUT_OF_MEMORY):
        store.redis.set("t:1", "a")
    frees_first(keys=["t:1", "t:2", "t:none"])  # once it has written, a script runs to its end
    assert store.redis.mget("t:1", "t:2") == ["a", "b"]
