"""The request Lua scripts on a real Redis: schedule, claim, start, finish, cancel, retry, expire."""
from __future__ import annotations

from app.core.gates import Breaker
from app.core.model import REQUEST_STATUSES
from app.storage import keys
from app.storage import requests as sr
from app.storage.requests import (
    AttemptEnd,
    Cancel,
    Canceled,
    Due,
    NewRequest,
    Next,
    RanNow,
    Retried,
    Settled,
    Started,
    Stored,
)

# start_many's horizon and publish grace, for a request with no flow: what a rate defers needs them.
UNGATED = {"horizon_end_ms": 10**15, "grace_ms": 10_000}

HORIZON_MS = 60_000
GRACE_MS = 120_000
WORKER = "worker@test"
SPEC = {"id": "R", "url": "http://127.0.0.1:1/x", "method": "POST", "headers": {},
        "timeout": 5, "retry": {"max_attempts": 3, "backoff_base": 1, "backoff_max": 60}}


def create(store, request_id, now, due, limit=3, **kw):
    spec = {**SPEC, "id": request_id, "retry": {**SPEC["retry"], "max_attempts": limit}}
    return sr.create(store, NewRequest(request_id, due, spec), now_ms=now, horizon_end_ms=now + HORIZON_MS,
                     grace_ms=GRACE_MS, **kw)


def statuses(store):
    return {s: store.redis.zrange(keys.requests_by_status(s), 0, -1) for s in REQUEST_STATUSES}


def finish(store, request_id, attempt, now, outcome, next_due=0):
    [settled] = sr.finish_many(store, [AttemptEnd(request_id, attempt, outcome, next_due, {"attempt": attempt},
                                                  {"status_code": 200}, None)],
                               worker=WORKER, now_ms=now, horizon_end_ms=now + HORIZON_MS, grace_ms=GRACE_MS,
                               lease_margin_ms=0, breaker=Breaker())
    return settled


def recover(store, now, backlog=0):
    return sr.recover_overdue(store, now_ms=now, grace_ms=GRACE_MS, alive_after_ms=now - 7000, held_after_ms=0,
                              backlog=lambda: backlog, limit=10)
def cancel(store, request_id, now, notify=False):
    return sr.cancel(store, request_id, now_ms=now, grace_ms=GRACE_MS, lease_margin_ms=0, notify=notify)


def test_request_due_within_horizon_is_queued_and_in_flight(store):
    assert create(store, "A", 1000, 1000) == Stored("queued")
    assert store.redis.zscore(keys.requests_inflight(), "A") == 1000 + GRACE_MS
    assert store.redis.zcard(keys.requests_due()) == 0
    assert statuses(store)["queued"] == ["A"]


def test_request_beyond_horizon_waits_in_due_set(store):
    assert create(store, "A", 1000, 1000 + HORIZON_MS + 1) == Stored("scheduled")
    assert store.redis.zscore(keys.requests_due(), "A") == 1000 + HORIZON_MS + 1
    assert store.redis.hget(keys.request("A"), "status") == "scheduled"


def test_idempotency_key_returns_the_first_request(store):
    assert create(store, "A", 1000, 1000, idempotency=("k", "h1")) == Stored("queued")
    assert create(store, "B", 1001, 1001, idempotency=("k", "h2")) == Stored(None, replay_of="A",
                                                                             replay_fingerprint="h1")
    assert not store.redis.exists(keys.request("B"))
    assert 0 < store.redis.ttl(keys.idempotency("k")) <= 86400


def test_claim_takes_only_what_enters_the_horizon_and_only_once(store):
    create(store, "A", 0, HORIZON_MS + 10)
    create(store, "B", 0, HORIZON_MS + 5000)
    assert sr.claim_due(store, now_ms=20, horizon_end_ms=20 + HORIZON_MS, grace_ms=GRACE_MS, limit=10) == [
        Due("A", 1, HORIZON_MS + 10)]
    # A second relay at the same moment finds nothing left to claim.
    assert sr.claim_due(store, now_ms=20, horizon_end_ms=20 + HORIZON_MS, grace_ms=GRACE_MS, limit=10) == []
    assert statuses(store)["queued"] == ["A"] and statuses(store)["scheduled"] == ["B"]


def test_start_runs_an_attempt_once_and_drops_duplicates(store):
    create(store, "A", 0, 0)
    first = sr.start_many(store, [("A", 1), ("A", 1)], worker=WORKER, now_ms=10, lease_margin_ms=1000, **UNGATED)
    assert first[0] == Started("running", {**SPEC, "id": "A"}, 10)  # sent now: its due time passed
    assert first[1] == Started("running")
    assert store.redis.zscore(keys.requests_inflight(), "A") == 10 + 5000 + 1000


def test_finish_retry_within_horizon_publishes_the_next_attempt_and_shows_retrying_until_it_starts(store):
    create(store, "A", 0, 0)
    sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=0, lease_margin_ms=0, **UNGATED)
    assert finish(store, "A", 1, 100, "retry", next_due=1100) == Settled(Next.PUBLISH)
    assert store.redis.hget(keys.request("A"), "status") == "retrying"
    assert statuses(store)["retrying"] == ["A"] and statuses(store)["queued"] == []
    assert store.redis.hget(keys.request("A"), "next_attempt_ms") == "1100"
    assert sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=1100, lease_margin_ms=0,
                         **UNGATED)[0] == Started("retrying")
    assert sr.start_many(store, [("A", 2)], worker=WORKER, now_ms=1100, lease_margin_ms=0,
                         **UNGATED)[0].spec is not None


def test_finish_retry_beyond_horizon_goes_back_to_due_set(store):
    create(store, "A", 0, 0)
    sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=0, lease_margin_ms=0, **UNGATED)
    assert finish(store, "A", 1, 100, "retry", next_due=100 + HORIZON_MS + 1) == Settled(Next.SCHEDULED)
    assert statuses(store)["retrying"] == ["A"]
    assert store.redis.zscore(keys.requests_due(), "A") == 100 + HORIZON_MS + 1
    assert store.redis.zscore(keys.requests_inflight(), "A") is None


def test_retry_after_last_allowed_attempt_fails_for_good(store):
    create(store, "A", 0, 0, limit=1)
    sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=0, lease_margin_ms=0, **UNGATED)
    assert finish(store, "A", 1, 100, "retry", next_due=200) == Settled(Next.ENDED, "failed")
    assert store.redis.zscore(keys.requests_ended(), "A") == 100
    assert statuses(store)["failed"] == ["A"] and statuses(store)["running"] == []


def test_finish_of_a_stale_attempt_changes_nothing(store):
    create(store, "A", 0, 0)
    sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=0, lease_margin_ms=0, **UNGATED)
    assert finish(store, "A", 2, 100, "succeeded") == Settled(Next.STALE)
    assert store.redis.hget(keys.request("A"), "status") == "running"
    assert store.redis.llen(keys.request_attempts("A")) == 0


def test_expired_lease_is_reported_lost_and_queued_publish_is_repeated(store):
    create(store, "A", 0, 0)
    create(store, "B", 0, 0)
    sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=0, lease_margin_ms=0, **UNGATED)  # lease ends at 5000
    assert recover(store, 4999) == ([], [])
    got = recover(store, GRACE_MS)
    assert got == ([Due("B", 1, 0)], [Due("A", 1, GRACE_MS)])
    # Reported once per grace period, not on every relay.
    assert recover(store, GRACE_MS + 1) == ([], [])


def test_cancel_ends_a_waiting_request_and_conflicts_after_the_end(store):
    create(store, "A", 0, HORIZON_MS * 10)
    assert cancel(store, "A", 5) == Cancel(Canceled.CANCELED, "scheduled", 0)
    assert cancel(store, "A", 6) == Cancel(Canceled.ALREADY)
    assert store.redis.zcard(keys.requests_due()) == 0
    assert sr.claim_due(store, now_ms=HORIZON_MS * 10, horizon_end_ms=HORIZON_MS * 11,
                        grace_ms=GRACE_MS, limit=10) == []
    create(store, "B", 0, 0)
    sr.start_many(store, [("B", 1)], worker=WORKER, now_ms=0, lease_margin_ms=0, **UNGATED)
    finish(store, "B", 1, 10, "succeeded")
    assert cancel(store, "B", 20) == Cancel(Canceled.ENDED, "succeeded")
    assert cancel(store, "missing", 20) == Cancel(Canceled.MISSING)


def test_attempt_finishing_after_cancel_is_recorded_but_stays_canceled(store):
    create(store, "A", 0, 0)
    sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=0, lease_margin_ms=0, **UNGATED)
    assert cancel(store, "A", 5) == Cancel(Canceled.CANCELED, "running", 1)
    assert finish(store, "A", 1, 10, "succeeded") == Settled(Next.CANCELED)
    assert store.redis.hget(keys.request("A"), "status") == "canceled"
    assert store.redis.llen(keys.request_attempts("A")) == 1


def test_retry_requeues_failed_request_with_fresh_attempts(store):
    create(store, "A", 0, 0, limit=1)
    sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=0, lease_margin_ms=0, **UNGATED)
    finish(store, "A", 1, 10, "failed")
    assert sr.retry(store, "A", now_ms=20, grace_ms=GRACE_MS, max_attempts=1) == Retried(2)
    assert store.redis.hget(keys.request("A"), "attempt_limit") == "2"
    assert store.redis.zscore(keys.requests_ended(), "A") is None
    assert sr.retry(store, "A", now_ms=20, grace_ms=GRACE_MS, max_attempts=1) == Retried(None, status="queued")
    assert sr.retry(store, "missing", now_ms=20, grace_ms=GRACE_MS, max_attempts=1) == Retried(None, missing=True)


def test_expiry_deletes_ended_requests_and_archives_their_ids(store):
    create(store, "A", 0, 0)
    create(store, "B", 0, 0)
    sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=0, lease_margin_ms=0, **UNGATED)
    finish(store, "A", 1, 10, "succeeded")
    assert sr.expire_ended(store, cutoff_ms=9, limit=10) == 0
    assert sr.expire_ended(store, cutoff_ms=10, limit=10) == 1
    assert not store.redis.exists(keys.request("A"), keys.request_attempts("A"), keys.request_response("A"))
    assert store.redis.zrange(keys.requests_all(), 0, -1) == ["B"]
    assert all(store.redis.zcard(keys.requests_by_status(s)) == (s == "queued") for s in REQUEST_STATUSES)
    assert sr.was_archived(store, "A") and not sr.was_archived(store, "B")


def test_listing_is_newest_first_with_a_cursor(store):
    for request_id in ("01A", "01B", "01C"):
        create(store, request_id, 0, 0)
    assert sr.list_ids(store, status=None, after=None, limit=2) == ["01C", "01B"]
    assert sr.list_ids(store, status=None, after="01B", limit=2) == ["01A"]
    assert sr.list_ids(store, status="queued", after=None, limit=5) == ["01C", "01B", "01A"]
    assert sr.list_ids(store, status="failed", after=None, limit=5) == []


def test_a_retry_the_relay_hands_out_stays_retrying_until_it_starts(store):
    create(store, "A", 0, 0)
    sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=0, lease_margin_ms=0, **UNGATED)
    finish(store, "A", 1, 100, "retry", next_due=100 + HORIZON_MS + 1)
    assert sr.claim_due(store, now_ms=200, horizon_end_ms=200 + HORIZON_MS, grace_ms=GRACE_MS, limit=10) == [
        Due("A", 2, 100 + HORIZON_MS + 1)]
    assert statuses(store)["retrying"] == ["A"]
    assert sr.start_many(store, [("A", 2)], worker=WORKER, now_ms=300, lease_margin_ms=0,
                         **UNGATED)[0].status == "running"


def run_now(store, request_id, now):
    return sr.run_now(store, request_id, now_ms=now, grace_ms=GRACE_MS, lease_margin_ms=0)


def test_run_now_hands_a_scheduled_request_to_the_workers_due_now(store):
    create(store, "A", 1000, 1000 + HORIZON_MS * 10)
    assert run_now(store, "A", 2000) == RanNow(1)
    assert store.redis.zscore(keys.requests_due(), "A") is None
    assert store.redis.zscore(keys.requests_inflight(), "A") == 2000 + GRACE_MS
    assert statuses(store)["queued"] == ["A"] and statuses(store)["scheduled"] == []
    assert store.redis.hmget(keys.request("A"), "due_ms", "next_attempt_ms") == ["2000", "2000"]
    # The attempt it published starts; the one a relay or eta message would bring later is a duplicate.
    assert sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=2001, lease_margin_ms=0,
                         **UNGATED)[0].status == "running"
    assert sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=2002, lease_margin_ms=0,
                         **UNGATED)[0] == Started("running")


def test_run_now_moves_a_retry_forward_keeping_the_first_due_time(store):
    create(store, "A", 1000, 1000)
    sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=1000, lease_margin_ms=0, **UNGATED)
    assert finish(store, "A", 1, 1100, "retry", next_due=1100 + HORIZON_MS * 5).next is Next.SCHEDULED
    assert run_now(store, "A", 1200) == RanNow(2)
    assert store.redis.hmget(keys.request("A"), "status", "due_ms", "next_attempt_ms") == ["retrying", "1000", "1200"]
    assert store.redis.zscore(keys.requests_due(), "A") is None
    assert sr.start_many(store, [("A", 2)], worker=WORKER, now_ms=1201, lease_margin_ms=0,
                         **UNGATED)[0].status == "running"


def test_run_now_of_a_queued_request_with_a_later_eta_and_of_one_due_already(store):
    create(store, "A", 1000, 5000)  # within the horizon: queued, published with its eta
    assert run_now(store, "A", 2000) == RanNow(1)
    assert store.redis.hget(keys.request("A"), "next_attempt_ms") == "2000"
    assert run_now(store, "A", 2500) == RanNow(None, due=True)
    assert store.redis.zscore(keys.requests_inflight(), "A") == 2000 + GRACE_MS


def test_run_now_refuses_running_and_ended_requests_and_knows_missing_ones(store):
    assert run_now(store, "nope", 1000) == RanNow(None, missing=True)
    create(store, "A", 1000, 1000)
    sr.start_many(store, [("A", 1)], worker=WORKER, now_ms=1000, lease_margin_ms=0, **UNGATED)
    assert run_now(store, "A", 1001) == RanNow(None, status="running")
    finish(store, "A", 1, 1100, "succeeded")
    assert run_now(store, "A", 1200) == RanNow(None, status="succeeded")
    create(store, "B", 1000, 1000 + HORIZON_MS * 10)
    cancel(store, "B", 1300)
    assert run_now(store, "B", 1400) == RanNow(None, status="canceled")
    assert store.redis.zscore(keys.requests_inflight(), "B") is None


def test_a_tokens_index_holds_its_live_requests_and_expiry_takes_them_out(store):
    create(store, "01A", 0, 0)
    for request_id in ("01B", "01C"):
        spec = {**SPEC, "id": request_id, "token_id": "T1"}
        sr.create(store, NewRequest(request_id, 0, spec), now_ms=0, horizon_end_ms=HORIZON_MS, grace_ms=GRACE_MS)
    many = [NewRequest(i, 0, {**SPEC, "id": i, "token_id": "T2"}) for i in ("01D", "01E")]
    sr.create_many(store, many, now_ms=0, horizon_end_ms=HORIZON_MS, grace_ms=GRACE_MS)
    assert store.redis.zrange(keys.token_requests("T1"), 0, -1) == ["01B", "01C"]
    assert store.redis.zrange(keys.token_requests("T2"), 0, -1) == ["01D", "01E"]
    assert store.redis.hget(keys.request("01B"), "token") == "T1"
    assert store.redis.hget(keys.request("01A"), "token") is None
    assert sr.list_ids(store, status=None, after=None, limit=5, token="T1") == ["01C", "01B"]
    assert sr.list_ids(store, status=None, after="01C", limit=5, token="T1") == ["01B"]
    for request_id in ("01A", "01B", "01D"):
        sr.start_many(store, [(request_id, 1)], worker=WORKER, now_ms=0, lease_margin_ms=0, **UNGATED)
        finish(store, request_id, 1, 10, "succeeded")
    assert sr.expire_ended(store, cutoff_ms=10, limit=10) == 3
    assert store.redis.zrange(keys.token_requests("T1"), 0, -1) == ["01C"]
    assert store.redis.zrange(keys.token_requests("T2"), 0, -1) == ["01E"]
