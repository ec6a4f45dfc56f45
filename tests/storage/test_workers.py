"""Worker liveness scripts on a real Redis: heartbeats, what a worker holds, handing it back."""
from __future__ import annotations

from app.core.gates import Breaker
from app.storage import keys
from app.storage import requests as sr
from app.storage import workers as sw
from app.storage.requests import Due, NewRequest

# start_many's horizon and publish grace, for a request with no flow: what a rate defers needs them.
UNGATED = {"horizon_end_ms": 10**15, "grace_ms": 10_000}

GRACE_MS = 10_000
SPEC = {"url": "http://127.0.0.1:1/x", "method": "POST", "headers": {}, "timeout": 5,
        "retry": {"max_attempts": 3, "backoff_base": 1, "backoff_max": 60}}
ALIVE = "alive@host"
DEAD = "dead@host"


def queued(store, request_id, due=1000):
    sr.create(store, NewRequest(request_id, due, {**SPEC, "id": request_id}), now_ms=0, horizon_end_ms=60_000,
              grace_ms=GRACE_MS)


def beat(store, name, now):
    sw.heartbeat(store, name, host="h", pid=1, started_ms=0, now_ms=now)


def recover(store, now, backlog=0, held_after=0):
    return sr.recover_overdue(store, now_ms=now, grace_ms=GRACE_MS, alive_after_ms=now - 7000,
                              held_after_ms=held_after, backlog=lambda: backlog, limit=100)


def test_heartbeats_tell_live_workers_from_dead_ones(store):
    beat(store, ALIVE, 10_000)
    beat(store, DEAD, 2_000)
    assert [w.name for w in sw.live(store, alive_after_ms=3_000)] == [ALIVE]
    assert sw.live(store, alive_after_ms=3_000)[0].last_seen_ms == 10_000
    assert sw.dead(store, alive_after_ms=3_000, limit=10) == [DEAD]


def test_a_worker_holds_only_the_next_attempt_of_a_handed_out_request(store):
    queued(store, "A")
    queued(store, "B", due=10**9)  # scheduled, not handed out
    assert sw.hold(store, ALIVE, [("A", 1), ("A", 2), ("B", 1), ("missing", 1)], now_ms=1_000) == 1
    assert store.redis.smembers(keys.worker_held(ALIVE)) == {"A"}
    assert store.redis.hget(keys.request("A"), "holder") == ALIVE


def test_what_a_live_worker_holds_is_not_published_again_whatever_the_deadline(store):
    queued(store, "A")
    beat(store, ALIVE, 200_000)
    sw.hold(store, ALIVE, [("A", 1)], now_ms=1_000)
    assert recover(store, 200_000) == ([], [])
    assert store.redis.zscore(keys.requests_inflight(), "A") == 200_000 + GRACE_MS  # looked at again later


def test_an_unheld_request_waits_while_the_broker_has_a_backlog_and_is_published_again_once_it_has_none(store):
    queued(store, "A")
    assert recover(store, 200_000, backlog=5) == ([], [])
    assert recover(store, 200_000 + GRACE_MS, backlog=0) == ([Due("A", 1, 1000)], [])


def test_what_a_dead_worker_held_is_published_again_and_what_it_ran_is_lost(store):
    queued(store, "A")
    queued(store, "B")
    queued(store, "C")
    sw.hold(store, DEAD, [("A", 1), ("B", 1), ("C", 1)], now_ms=1_000)
    sr.start_many(store, [("B", 1)], worker=DEAD, now_ms=1_000, lease_margin_ms=30_000, **UNGATED)
    sr.cancel(store, "C", now_ms=1_500, grace_ms=GRACE_MS, lease_margin_ms=0, notify=False)
    beat(store, DEAD, 1_000)
    held = sw.reap(store, DEAD, now_ms=9_000, grace_ms=GRACE_MS)
    assert held == ([Due("A", 1, 1000)], [Due("B", 1, 9_000)])
    assert store.redis.zscore(keys.requests_inflight(), "A") == 9_000 + GRACE_MS
    assert not store.redis.exists(keys.worker_held(DEAD), keys.worker(DEAD))
    assert store.redis.zscore(keys.workers(), DEAD) is None
    assert store.redis.hget(keys.request("A"), "holder") is None
    assert sw.reap(store, DEAD, now_ms=9_001, grace_ms=GRACE_MS) == ([], [])  # once only


def test_a_worker_no_longer_holds_what_it_finished_or_skipped(store):
    queued(store, "A")
    queued(store, "B")
    sw.hold(store, ALIVE, [("A", 1), ("B", 1)], now_ms=1_000)
    sr.cancel(store, "B", now_ms=500, grace_ms=GRACE_MS, lease_margin_ms=0, notify=False)
    [started, skipped] = sr.start_many(store, [("A", 1), ("B", 1)], worker=ALIVE, now_ms=1_000, lease_margin_ms=0,
                                       **UNGATED)
    assert started.status == "running" and skipped.status == "canceled"
    assert store.redis.smembers(keys.worker_held(ALIVE)) == {"A"}
    sr.finish_many(store, [sr.AttemptEnd("A", 1, "succeeded", 0, {}, {}, None)], worker=ALIVE, now_ms=2_000,
                   horizon_end_ms=60_000, grace_ms=GRACE_MS, lease_margin_ms=0, breaker=Breaker())
    assert store.redis.smembers(keys.worker_held(ALIVE)) == set()
    assert store.redis.hget(keys.request("A"), "holder") is None


def taken_batch(store, name="orders") -> str:
    from app.storage import batches as sb
    from app.storage.batches import BatchConfig

    sb.configure(store, name, BatchConfig(endpoint="http://127.0.0.1:9/in", max_records=1, max_bytes=1024,
                                          interval_ms=10_000, headers={}, max_attempts=3, backoff_base_ms=1000,
                                          timeout_ms=30_000), now_ms=0, grace_ms=GRACE_MS, epoch="E")
    [batch_id] = sb.add(store, name, ['"r"'], now_ms=0, grace_ms=GRACE_MS).taken
    return batch_id


def test_a_dead_workers_batches_become_due_at_once_and_a_live_workers_are_left_alone(store):
    from app.storage import batches as sb
    from app.storage.batches import Flushed

    queued_id = taken_batch(store, "held")
    sending_id = taken_batch(store, "sent")
    assert sw.hold_batches(store, DEAD, "held", [(queued_id, 1), (queued_id, 2)], now_ms=1_000) == 1
    sb.claim(store, "sent", sending_id, 1, worker=DEAD, now_ms=1_000, lease_margin_ms=30_000)
    assert store.redis.smembers(keys.worker_held_batches(DEAD)) == {f"held\t{queued_id}", f"sent\t{sending_id}"}
    beat(store, DEAD, 1_000)
    beat(store, ALIVE, 20_000)
    # Past the publish grace, a batch whose holder lives is not published again.
    assert sb.flush(store, ["held"], now_ms=GRACE_MS + 1, grace_ms=GRACE_MS, limit=10, alive_after_ms=0) == []
    sw.reap(store, DEAD, now_ms=20_000, grace_ms=GRACE_MS)
    assert not store.redis.exists(keys.worker_held_batches(DEAD))
    assert sb.flush(store, ["held", "sent"], now_ms=20_000, grace_ms=GRACE_MS, limit=10, alive_after_ms=13_000) == [
        Flushed("republish", "held", queued_id, 1), Flushed("lost", "sent", sending_id, 2)]


def test_a_stale_hold_of_a_live_worker_no_longer_keeps_a_request_from_being_published_again(store):
    queued(store, "A")
    beat(store, ALIVE, 400_000)
    sw.hold(store, ALIVE, [("A", 1)], now_ms=1_000)  # then its task failed before the claim
    assert recover(store, 400_000, held_after=1_000) == ([Due("A", 1, 1000)], [])


def test_a_graceful_stop_releases_what_was_held_without_publishing_it_again(store):
    queued(store, "A")
    sw.hold(store, ALIVE, [("A", 1)], now_ms=1_000)
    assert sw.reap(store, ALIVE, now_ms=2_000, grace_ms=GRACE_MS, republish=False) == ([], [])
    assert store.redis.hget(keys.request("A"), "holder") is None
    assert store.redis.zscore(keys.requests_inflight(), "A") == 2_000 + GRACE_MS  # the relay's, should it be lost


def test_a_task_that_ended_without_starting_releases_what_it_held_but_not_what_runs(store):
    queued(store, "A")
    queued(store, "B")
    sw.hold(store, ALIVE, [("A", 1), ("B", 1)], now_ms=1_000)
    sr.start_many(store, [("B", 1)], worker=ALIVE, now_ms=1_000, lease_margin_ms=0, **UNGATED)
    assert sw.release(store, ALIVE, ["A", "B"]) == 1
    assert store.redis.smembers(keys.worker_held(ALIVE)) == {"B"}
    assert store.redis.hget(keys.request("A"), "holder") is None and store.redis.hget(keys.request("B"), "holder")


def test_a_live_worker_releases_the_batches_it_has_not_started_and_keeps_the_one_it_sends(store):
    """Its broker connection dropped (or the task failed): beat's next flush publishes the released
    batch again at once, not after the hold went stale; the one being sent stays under its lease."""
    from app.storage import batches as sb
    from app.storage.batches import Flushed

    queued_id = taken_batch(store, "held")
    sending_id = taken_batch(store, "sent")
    sw.hold_batches(store, ALIVE, "held", [(queued_id, 1)], now_ms=1_000)
    sb.claim(store, "sent", sending_id, 1, worker=ALIVE, now_ms=1_000, lease_margin_ms=30_000)
    beat(store, ALIVE, 2_000)
    assert sw.release_batches(store, ALIVE, sw.held_batches(store, ALIVE), now_ms=2_000) == 1
    assert sw.held_batches(store, ALIVE) == [("sent", sending_id)]
    assert sb.flush(store, ["held", "sent"], now_ms=2_000, grace_ms=GRACE_MS, limit=10, alive_after_ms=0) == [
        Flushed("republish", "held", queued_id, 1)]
    assert sw.release_batches(store, ALIVE, [("held", queued_id), ("gone", "1-1")], now_ms=3_000) == 0
