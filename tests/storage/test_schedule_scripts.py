"""The schedule scripts on a real Redis: the claim is a compare-and-set, concurrent claimers run a
tick once, a refused run writes nothing, and the runs' effects are those of the plain scripts."""
from __future__ import annotations

import threading

from app.core.ids import new_id
from app.core.queues import STORED_DEFAULTS
from app.storage import keys
from app.storage import requests as store_requests
from app.storage import schedules as store_schedules
from app.storage.client import Store
from app.storage.requests import NewRequest
from app.storage.schedules import Run

NOW = 1_700_000_000_000
SPEC = '{"every": 10, "timezone": "UTC", "target": {"queue": "q", "message": 1}}'


def put(store: Store, next_ms=NOW + 10_000, paused=False) -> dict:
    store_schedules.put(store, "s", spec=SPEC, now_ms=NOW, anchor_ms=NOW, next_ms=next_ms, paused=paused)
    return store_schedules.load(store, "s")


def tick_run(record: dict) -> Run:
    expected = int(record["next_ms"])
    return Run("s", record["version"], expected, expected, expected + 10_000)


def new_request(due_ms=NOW + 10_000) -> NewRequest:
    request_id = new_id(NOW)
    return NewRequest(request_id, due_ms, {"id": request_id, "url": "http://127.0.0.1:9/", "method": "POST",
                                           "headers": {}, "timeout": 30, "retry": {"max_attempts": 1},
                                           "schedule": "s"})


def fire_request(store: Store, run: Run, new: NewRequest, now_ms=NOW) -> list:
    return store_schedules.fire_request(store, run, new, now_ms=now_ms, horizon_end_ms=now_ms + 60_000,
                                        grace_ms=5000)


def fire_queue(store: Store, run: Run, now_ms=NOW) -> list:
    return store_schedules.fire_queue(store, run, "q", "j1", now_ms=now_ms, id_suffix="-x", defaults=STORED_DEFAULTS)


def snapshot(store: Store) -> dict:
    """Every key's content (DUMP is no good: the same hash may serialize in another order)."""
    read = {"hash": store.redis.hgetall, "zset": lambda k: store.redis.zrange(k, 0, -1, withscores=True),
            "set": store.redis.smembers, "list": lambda k: store.redis.lrange(k, 0, -1), "string": store.redis.get}
    return {key: read[store.redis.type(key)](key) for key in store.redis.keys("*")}


def pause(store: Store, paused: bool, version: str, next_ms: int = 0) -> str:
    return store_schedules.set_paused(store, "s", paused=paused, next_ms=next_ms, version=version)


def test_put_replace_pause_resume_delete(store):
    first = put(store)
    assert first["version"] == "1" and first["runs"] == "0"
    assert store.redis.zscore(keys.schedules_due(), "s") == NOW + 10_000
    fire_queue(store, tick_run(first))
    second = put(store, next_ms=NOW + 20_000)
    assert second["version"] == "2" and second["runs"] == "1"  # a replace keeps the runs
    assert store.redis.zscore(keys.schedules_due(), "s") == NOW + 20_000
    assert pause(store, True, version="2") == "ok"
    assert store.redis.zscore(keys.schedules_due(), "s") is None
    assert pause(store, False, version="1") == "stale"
    assert pause(store, False, version="2", next_ms=NOW + 30_000) == "ok"
    assert store.redis.zscore(keys.schedules_due(), "s") == NOW + 30_000
    assert pause(store, False, version="2", next_ms=NOW + 99_000) == "ok"  # resuming again moves nothing
    assert store.redis.zscore(keys.schedules_due(), "s") == NOW + 30_000
    assert store_schedules.delete(store, "s") and not store_schedules.delete(store, "s")
    assert store.redis.zcard(keys.schedules_due()) == 0 and store.redis.zcard(keys.schedules()) == 0
    assert pause(store, True, version="2") == "missing"


def test_claim_is_a_compare_and_set_on_the_next_tick(store):
    record = put(store)
    run = tick_run(record)
    new = new_request()
    assert fire_request(store, run, new) == ["created", "queued"]
    assert fire_request(store, run, new_request()) == ["stale"]
    after = store_schedules.load(store, "s")
    assert after["next_ms"] == str(NOW + 20_000) and after["runs"] == "1" and after["last_run_id"] == new.request_id
    assert after["last_run_ms"] == str(NOW + 10_000)
    assert store.redis.zscore(keys.schedules_due(), "s") == NOW + 20_000
    assert store.redis.zrange(keys.schedule_requests("s"), 0, -1) == [new.request_id]
    assert store_requests.load(store, new.request_id)["schedule"] == "s"


def test_paused_or_replaced_schedule_runs_nothing(store):
    record = put(store)
    pause(store, True, version=record["version"])
    before = snapshot(store)
    assert fire_queue(store, tick_run(record)) == ["stale"]
    replaced = put(store)
    assert fire_queue(store, tick_run(record)) == ["stale"]  # read at version 1, now 2
    assert store_schedules.load(store, "s")["runs"] == "0"
    assert before.keys() <= snapshot(store).keys() and not store.redis.exists(keys.queue("q"))
    assert replaced["version"] == "2"


def test_a_run_outside_the_timetable_leaves_the_next_tick(store):
    record = put(store)
    run = Run("s", record["version"], None, NOW, NOW)
    assert fire_queue(store, run)[0] == "pushed"
    after = store_schedules.load(store, "s")
    assert after["next_ms"] == record["next_ms"] and after["runs"] == "1"


def test_concurrent_claimers_run_a_tick_once(redis_url, store):
    record = put(store)
    run = tick_run(record)
    clients = [Store.from_url(redis_url) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    replies = []

    def claim(client):
        barrier.wait()
        replies.append(fire_request(client, run, new_request())[0])

    threads = [threading.Thread(target=claim, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.redis.close()
    assert sorted(replies) == ["created"] + ["stale"] * 7
    assert store.redis.zcard(keys.schedule_requests("s")) == 1 == store.redis.zcard(keys.requests_all())


def test_queue_message_is_available_at_the_tick_or_when_late_at_once(store):
    record = put(store)
    fire_queue(store, tick_run(record), now_ms=NOW + 8_000)  # 2 s ahead
    (_, early), = store.redis.zrange(keys.queue_ready("q"), 0, -1, withscores=True)
    assert early == NOW + 10_000
    late_record = store_schedules.load(store, "s")
    fire_queue(store, tick_run(late_record), now_ms=NOW + 20_300)  # 300 ms late
    scores = [score for _, score in store.redis.zrange(keys.queue_ready("q"), 0, -1, withscores=True)]
    assert scores == [NOW + 10_000, NOW + 20_300]


def test_a_refused_batch_run_writes_nothing_outside_the_timetable(store):
    record = put(store)
    before = snapshot(store)
    run = Run("s", record["version"], None, NOW, NOW)
    reply = store_schedules.fire_batch(store, run, "absent", '{"a":1}', now_ms=NOW, grace_ms=5000)
    assert reply == ["missing"] and snapshot(store) == before


def test_a_refused_batch_run_on_the_timetable_uses_up_its_tick(store):
    record = put(store)
    reply = store_schedules.fire_batch(store, tick_run(record), "absent", '{"a":1}', now_ms=NOW + 10_000,
                                       grace_ms=5000)
    after = store_schedules.load(store, "s")
    assert reply == ["missing"] and after["runs"] == "0" and after["next_ms"] == str(NOW + 20_000)
    assert "absent" in after["last_error"] and not store.redis.exists(keys.batch("absent"))


def test_a_record_a_schedule_appends_has_a_receipt_like_any_other(store):
    from app.storage import batches as store_batches
    from app.storage.batches import BatchConfig, Receipt

    store_batches.configure(store, "b", BatchConfig(
        endpoint="http://127.0.0.1:9/", max_records=2, max_bytes=1000, interval_ms=60_000, headers={},
        max_attempts=1, backoff_base_ms=0, timeout_ms=1000), now_ms=NOW, grace_ms=5000, epoch="E")
    record = put(store)
    fired = store_schedules.fired(store_schedules.fire_batch(store, tick_run(record), "b", '{"a":1}',
                                                             now_ms=NOW + 10_000, grace_ms=5000))
    assert fired.run_id == "E.1" and fired.taken == []
    assert store_batches.record(store, "b", "E", 1, now_ms=NOW + 10_000) == Receipt("pending")
    taken = store_batches.add(store, "b", ['{"a":2}'], now_ms=NOW + 10_001, grace_ms=5000).taken
    assert store_batches.record(store, "b", "E", 1, now_ms=NOW + 10_001) == Receipt("sending", taken[0])


def test_expiry_removes_a_request_from_its_schedule_index(store):
    record = put(store)
    new = new_request()
    fire_request(store, tick_run(record), new)
    store.redis.zadd(keys.requests_ended(), {new.request_id: NOW})
    assert store_requests.expire_ended(store, cutoff_ms=NOW + 1, limit=10) == 1
    assert store.redis.zcard(keys.schedule_requests("s")) == 0
    assert not store.redis.exists(keys.request(new.request_id))
