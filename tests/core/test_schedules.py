"""Schedules on a real Redis with a fake clock: every target kind, each tick once (two beats at
once, a run-now racing beat, a replace between read and write), the collapse of missed ticks,
and a refused run that changes nothing."""
from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app.core import queues as core_queues
from app.core.batches import BatchService
from app.core.clock import to_rfc3339
from app.core.errors import Conflict, Invalid
from app.core.publish import Publisher
from app.core.requests import RequestService
from app.core.schedules import CATCH_UP_MS, LOOKAHEAD_MS, ScheduleService
from app.storage import keys
from app.storage import requests as store_requests
from app.storage import schedules as store_schedules
from app.storage.client import Store
from tests.support.sender import RecordingSender

URL = "http://127.0.0.1:9/hook"


def build(store, settings, clock, sender) -> ScheduleService:
    publisher = Publisher(sender)
    return ScheduleService(store, publisher, settings, RequestService(store, publisher, settings, clock_ms=clock),
                           clock_ms=clock)


@pytest.fixture
def schedules(store, settings, clock, sender) -> ScheduleService:
    return build(store, settings, clock, sender)


def request_target(**extra) -> dict:
    return {"request": {"url": URL, "method": "POST", "headers": {"X-Job": "1"}, "json": {"a": 1},
                        "retry": {"max_attempts": 3}, "callback_url": URL, **extra}}


def runs_of(store, name) -> list[dict]:
    ids = store.redis.zrange(keys.schedule_requests(name), 0, -1)
    return [r for r in store_requests.load_many(store, ids)]


def test_every_run_creates_a_request_due_at_its_tick_with_the_full_body(schedules, store, clock, sender):
    schedules.put("job", {"every": 10, "target": request_target(delay=1)})
    start = clock.ms
    for _ in range(3):
        clock.advance(10)
        schedules.tick()
    records = runs_of(store, "job")
    assert [int(r["due_ms"]) for r in records] == [start + 11_000, start + 21_000, start + 31_000]
    spec = store_requests.spec_of(records[0])
    assert spec["schedule"] == "job" and spec["headers"] == {"X-Job": "1"} and spec["retry"]["max_attempts"] == 3
    assert spec["callback_url"] == URL and spec["json"] == {"a": 1}
    resource = schedules.get("job")
    assert resource["runs"] == 3 and resource["last_run_id"] == store_requests.spec_of(records[-1])["id"]
    assert len(sender.deliveries()) == 3


def test_a_run_is_claimed_ahead_and_due_at_its_tick(schedules, store, clock):
    schedules.put("job", {"every": 60, "target": request_target()})
    tick_ms = clock.ms + 60_000
    clock.ms = tick_ms - LOOKAHEAD_MS + 1
    schedules.tick()
    (record,) = runs_of(store, "job")
    assert int(record["due_ms"]) == tick_ms
    assert schedules.get("job")["next_run_at"] is not None


def test_queue_target_pushes_a_message_available_at_the_tick(schedules, store, settings, clock):
    schedules.put("q", {"every": 5, "target": {"queue": "inbox", "message": {"hello": [1, 2]}}})
    clock.advance(5)
    schedules.tick()
    queues = core_queues.QueueService(store, settings, clock_ms=clock)
    (message,) = queues.receive("inbox")
    assert message["body"] == {"hello": [1, 2]}
    assert schedules.get("q")["last_run_id"] == message["id"]


def test_batch_target_appends_a_record(schedules, store, settings, clock, sender):
    batches = BatchService(store, Publisher(sender), settings, clock_ms=clock)
    batches.configure("log", {"endpoint": URL, "max_records": 2})
    schedules.put("b", {"every": 1, "target": {"batch": "log", "record": {"n": 1}}})
    clock.advance(1)
    schedules.tick()
    clock.advance(1)
    schedules.tick()
    assert schedules.get("b")["runs"] == 2
    assert [args[0] for name, args, _ in sender.sent if name == "htq.send_batches"] == ["log"]


def test_batch_record_is_not_appended_before_its_tick(schedules, store, settings, clock, sender):
    BatchService(store, Publisher(sender), settings, clock_ms=clock).configure("log", {"endpoint": URL})
    schedules.put("b", {"every": 10, "target": {"batch": "log", "record": 1}})
    clock.advance(10 - LOOKAHEAD_MS / 2000)
    schedules.tick()
    assert schedules.get("b")["runs"] == 0
    clock.advance(LOOKAHEAD_MS / 2000)
    schedules.tick()
    assert schedules.get("b")["runs"] == 1


def test_a_refused_run_changes_nothing(schedules, store, settings, clock, sender):
    batches = BatchService(store, Publisher(sender), settings, clock_ms=clock)
    batches.configure("log", {"endpoint": URL})
    schedules.put("b", {"every": 10, "target": {"batch": "log", "record": {"n": 1}}})
    batches.delete("log")
    before = store_schedules.load(store, "b")
    with pytest.raises(Conflict):
        schedules.run_now("b")
    assert store_schedules.load(store, "b") == before
    assert not store.redis.exists(keys.batch("log"))


def test_a_timetable_run_refused_by_its_batch_uses_up_the_tick(schedules, store, settings, clock, sender):
    batches = BatchService(store, Publisher(sender), settings, clock_ms=clock)
    batches.configure("log", {"endpoint": URL})
    schedules.put("b", {"every": 10, "target": {"batch": "log", "record": {"n": 1}}})
    batches.delete("log")
    clock.advance(10)
    assert schedules.tick()["refused"] == 1
    resource = schedules.get("b")
    assert resource["runs"] == 0 and "not configured" in resource["last_error"]
    assert schedules.tick()["refused"] == 0


def test_missed_ticks_collapse_into_the_latest(schedules, store, clock):
    schedules.put("job", {"every": 1, "target": request_target()})
    start = clock.ms
    clock.advance(3600.5)
    schedules.tick()
    dues = sorted(int(r["due_ms"]) for r in runs_of(store, "job"))
    # One run for the 3600 missed ticks (at once), then the ticks within the lookahead.
    assert dues == [clock.ms] + [start + 1000 * k for k in range(3601, 3601 + LOOKAHEAD_MS // 1000)]
    assert schedules.get("job")["runs"] == len(dues)


def test_late_ticks_within_the_catch_up_window_all_run_in_order(schedules, store, clock):
    schedules.put("job", {"every": 1, "target": request_target()})
    start = clock.ms
    clock.ms = start + CATCH_UP_MS  # beat was late: ticks 1..5 s are within the window
    schedules.tick()
    dues = sorted(int(r["due_ms"]) for r in runs_of(store, "job"))
    # Ticks 1..5 s run late, at once; then those within the lookahead, each due at its tick.
    assert dues == [clock.ms] * 5 + [start + 1000 * k for k in range(6, 6 + LOOKAHEAD_MS // 1000)]


def test_run_now_runs_outside_the_timetable(schedules, store, clock):
    schedules.put("job", {"every": 60, "target": request_target()})
    before = schedules.get("job")["next_run_at"]
    run_id = schedules.run_now("job")
    after = schedules.get("job")
    assert after["next_run_at"] == before and after["runs"] == 1 and after["last_run_id"] == run_id
    assert store_requests.spec_of(runs_of(store, "job")[0])["id"] == run_id


def test_paused_schedule_does_not_run_and_resumes_from_now(schedules, store, clock):
    schedules.put("job", {"every": 10, "target": request_target()})
    schedules.pause("job")
    clock.advance(100)
    schedules.tick()
    assert runs_of(store, "job") == [] and schedules.get("job")["next_run_at"] is None
    resumed = schedules.resume("job")
    assert resumed["next_run_at"] is not None
    clock.advance(10)
    schedules.tick()
    assert len(runs_of(store, "job")) == 1


def test_a_replace_between_read_and_write_runs_nothing(schedules, store, clock):
    schedules.put("job", {"every": 10, "target": request_target()})
    record = store_schedules.load(store, "job")
    schedules.put("job", {"every": 10, "target": {"queue": "q", "message": 1}})
    run = store_schedules.Run("job", record["version"], int(record["next_ms"]), int(record["next_ms"]), 0)
    new = schedules.requests.prepare(request_target()["request"], clock.ms, schedule="job")
    reply = store_schedules.fire_request(store, run, new, now_ms=clock.ms, horizon_end_ms=clock.ms, grace_ms=1)
    assert reply == ["stale"]
    assert not store.redis.exists(keys.request(new.request_id))


def test_a_claimed_tick_is_not_run_again(schedules, store, clock):
    schedules.put("job", {"every": 10, "target": request_target()})
    record = store_schedules.load(store, "job")
    expected = int(record["next_ms"])
    run = store_schedules.Run("job", record["version"], expected, expected, expected + 10_000)
    replies = []
    for _ in range(2):
        new = schedules.requests.prepare(request_target()["request"], clock.ms, schedule="job")
        replies.append(store_schedules.fire_request(store, run, new, now_ms=clock.ms, horizon_end_ms=clock.ms,
                                                    grace_ms=1)[0])
    assert replies == ["created", "stale"]
    assert len(runs_of(store, "job")) == 1


def test_two_beats_at_once_fire_each_tick_once(store, settings, clock, redis_url):
    names = [f"s{i}" for i in range(50)]
    main = build(store, settings, clock, RecordingSender())
    for name in names:
        main.put(name, {"every": 1, "target": {"queue": "shared", "message": name}})
    stores = [Store.from_url(redis_url) for _ in range(2)]
    beats = [build(s, settings, clock, RecordingSender()) for s in stores]
    for _ in range(5):
        clock.advance(1)
        barrier = threading.Barrier(2)

        def beat(service, barrier=barrier):
            barrier.wait()
            service.tick()

        threads = [threading.Thread(target=beat, args=(b,)) for b in beats]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for s in stores:
        s.redis.close()
    # Each schedule ran ticks 1..5 s (and those within the lookahead) exactly once: one message per run.
    runs = sum(main.get(name)["runs"] for name in names)
    assert store.redis.zcard(keys.queue_ready("shared")) == runs
    for name in names:
        assert main.get(name)["runs"] == 5 + LOOKAHEAD_MS // 1000


def test_bad_target_fields_are_named(schedules):
    with pytest.raises(Invalid) as caught:
        schedules.put("b", {"every": 1, "target": {"batch": "nope", "record": 1}})
    assert caught.value.errors == {"target": {"batch": ["No batch nope is configured."]}}
    with pytest.raises(Invalid) as caught:
        schedules.put("c", {"cron": "61 * * * *", "target": request_target()})
    assert list(caught.value.errors) == ["cron"]
    with pytest.raises(Invalid) as caught:
        schedules.put("c", {"cron": "* * * * *", "timezone": "Nowhere/Land", "target": request_target()})
    assert list(caught.value.errors) == ["timezone"]


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(every_s=st.integers(1, 7), gaps_ms=st.lists(st.integers(50, CATCH_UP_MS - 1), min_size=1, max_size=25))
def test_every_tick_in_a_window_runs_once_in_order(redis_url, settings, every_s, gaps_ms):
    """Property: beat calls at any gaps shorter than the catch-up window run every tick once, in order."""
    store = Store.from_url(redis_url)
    store.redis.flushall()
    from tests.support.clock import FakeClock

    clock = FakeClock()
    service = build(store, settings, clock, RecordingSender())
    service.put("p", {"every": every_s, "target": {"queue": "q", "message": 0}})
    start, step = clock.ms, every_s * 1000
    for gap in gaps_ms:
        clock.advance_ms(gap)
        service.tick()
        # Every tick up to the horizon has run, none twice, the latest last.
        due_ticks = (clock.ms + LOOKAHEAD_MS - start) // step
        resource = service.get("p")
        assert resource["runs"] == due_ticks == store.redis.zcard(keys.queue_ready("q"))
        if due_ticks:
            assert resource["last_run_at"] == to_rfc3339(start + due_ticks * step)
    times = [int(score) for _, score in store.redis.zrange(keys.queue_ready("q"), 0, -1, withscores=True)]
    assert times == sorted(times)
    store.redis.close()
