"""The store on a real Redis filled to its maxmemory (noeviction): what Redis refuses, what it still
lets through, that a refused script stored nothing, and that writes work again once memory is freed."""
from __future__ import annotations

import json

import pytest

from app.core.gates import Breaker
from app.storage import batches as sb
from app.storage import keys
from app.storage import queues as sq
from app.storage import requests as sr
from app.storage.batches import BatchConfig
from app.storage.client import OUT_OF_MEMORY
from app.storage.requests import AttemptEnd, NewRequest

# start_many's horizon and publish grace, for a request with no flow: what a rate defers needs them.
UNGATED = {"horizon_end_ms": 10**15, "grace_ms": 10_000}

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


def test_a_refused_push_create_record_or_configuration_stores_nothing_and_succeeds_once_memory_is_freed(
        store, full_redis):
    push(store, "before")
    create_request(store, "R0")
    sb.configure(store, "b", BATCH, now_ms=T0, grace_ms=60_000, epoch="E")
    sb.add(store, "b", ['{"n": 0}'], now_ms=T0, grace_ms=60_000)  # the next record fills the batch
    full_redis.fill()
    before = snapshot(store)
    refused = {
        "push": lambda: push(store, "m1", "m2"),
        "push to a new queue": lambda: push(store, "m", name="new"),
        "queue put": lambda: sq.put(store, "q", now_ms=T0, defaults=QUEUE_DEFAULTS, updates={"delay_ms": 5}),
        "create": lambda: create_request(store, "R1", idempotency=("key", "fp")),
        "create many": lambda: sr.create_many(store, [NewRequest("R2", T0, {**SPEC, "id": "R2"})], now_ms=T0,
                                              horizon_end_ms=T0 + 60_000, grace_ms=120_000),
        "record that fills a batch": lambda: sb.add(store, "b", ['{"n": 1}'], now_ms=T0, grace_ms=60_000),
        "batch configure": lambda: sb.configure(store, "b2", BATCH, now_ms=T0, grace_ms=60_000, epoch="E"),
    }
    for what, write in refused.items():
        with pytest.raises(OUT_OF_MEMORY):
            write()
        assert snapshot(store) == before, f"{what} left something behind"

    full_redis.free()
    assert len(push(store, "m1", "m2")) == 2  # the same connections: nothing to restart
    assert create_request(store, "R1", idempotency=("key", "fp")).status == "queued"
    added = sb.add(store, "b", ['{"n": 1}'], now_ms=T0, grace_ms=60_000)
    assert len(added.taken) == 1
    assert json.loads(store.redis.hget(keys.batch_bodies("b"), added.taken[0])) == [{"n": 0}, {"n": 1}]


def test_in_a_full_redis_consumers_still_receive_and_acknowledge_and_reads_and_the_sweep_work(store, full_redis):
    ids = push(store, "m1", "m2", "m3")
    push(store, "x", name="other")
    locked = sq.receive(store, "q", now_ms=T0, max_messages=2, visibility_timeout_ms=1000, token="a")[0]
    create_request(store, "R0")
    create_request(store, "R1")
    assert sr.cancel(store, "R1", now_ms=T0, grace_ms=120_000, lease_margin_ms=0,
                     notify=False).result is sr.Canceled.CANCELED
    full_redis.fill()
    later = T0 + 2000  # both locks have expired
    stats = sq.stats(store, "q", now_ms=later)  # returns the expired locks first, which writes
    assert (stats.visible, stats.in_flight) == (3, 0)
    got, _ = sq.receive(store, "q", now_ms=later, max_messages=2, visibility_timeout_ms=1000, token="b")
    assert [m.id for m in got] == [m.id for m in locked] and [m.receive_count for m in got] == [2, 2]
    assert sq.lock(store, "q", got[0].id).receipt == got[0].receipt  # the whole receive was stored
    assert sq.change_visibility(store, "q", got[1].id, got[1].receipt, now_ms=later,
                                visibility_timeout_ms=0).result == "ok"
    assert sq.ack(store, "q", [(got[0].id, got[0].receipt)]) == [sq.Acked.ACKED]
    assert sr.load(store, "R0")["status"] == "queued" and sq.names(store) == ["other", "q"]
    assert sr.expire_ended(store, cutoff_ms=T0, limit=10) == 1 and sr.load(store, "R1") == {}
    assert sq.delete(store, "other") is True and sq.names(store) == ["q"]
    assert sq.sweep_many(store, ["q"], now_ms=T0 + 61_000, drop_limit=100) == [sq.Swept(0, 2)]  # retention
    assert sq.stats(store, "q", now_ms=T0 + 61_000).visible == 0 and len(ids) == 3
    assert full_redis.refuses_writes()


def test_a_full_redis_refuses_to_start_or_settle_an_attempt_and_leaves_the_request_as_it_was(store, full_redis):
    create_request(store, "R0")
    [started] = sr.start_many(store, [("R0", 1)], worker="w@test", now_ms=T0, lease_margin_ms=1000, **UNGATED)
    assert started.spec is not None
    create_request(store, "R1")
    full_redis.fill()
    before = snapshot(store)
    with pytest.raises(OUT_OF_MEMORY):
        sr.start_many(store, [("R1", 1)], worker="w@test", now_ms=T0, lease_margin_ms=1000, **UNGATED)
    end = AttemptEnd("R0", 1, "succeeded", 0, {"attempt": 1}, {"status_code": 200}, None)
    with pytest.raises(OUT_OF_MEMORY):
        sr.finish_many(store, [end], worker="w@test", now_ms=T0, horizon_end_ms=T0 + 60_000, grace_ms=120_000,
                       lease_margin_ms=0, breaker=Breaker())
    # R1 stays queued in flight (published again after its grace), R0 running under its lease
    # (settled as lost once it expires): the relay hands both back once Redis has room again.
    with pytest.raises(OUT_OF_MEMORY):
        sr.recover_overdue(store, now_ms=T0 + 120_000, grace_ms=120_000, alive_after_ms=T0, held_after_ms=T0,
                           backlog=lambda: 0, limit=10)
    assert snapshot(store) == before
    full_redis.free()
    overdue = sr.recover_overdue(store, now_ms=T0 + 120_000, grace_ms=120_000, alive_after_ms=T0, held_after_ms=T0,
                           backlog=lambda: 0, limit=10)
    assert [d.request_id for d in overdue.republish] == ["R1"] and [d.request_id for d in overdue.lost] == ["R0"]


def test_deleting_a_stored_response_works_in_a_full_redis_and_frees_its_memory(store, full_redis):
    create_request(store, "R0")
    sr.start_many(store, [("R0", 1)], worker="w@test", now_ms=T0, lease_margin_ms=1000, **UNGATED)
    response = {"status_code": 200, "body": "x" * 100_000}
    end = AttemptEnd("R0", 1, "succeeded", 0, {"attempt": 1}, response, None)
    sr.finish_many(store, [end], worker="w@test", now_ms=T0, horizon_end_ms=T0 + 60_000, grace_ms=120_000,
                   lease_margin_ms=0, breaker=Breaker())
    full_redis.fill()
    used = full_redis.used()
    assert sr.delete_response(store, "R0") is True
    assert sr.load_response(store, "R0") is None and sr.load(store, "R0")["response_deleted"] == "1"
    assert full_redis.used() < used - 90_000
    assert sr.delete_response(store, "GONE") is False and sr.load(store, "GONE") == {}
