"""The outbox of notices on a real Redis: recorded by the scripts that end requests, claimed by the
relay a grace at a time, put off by a retrying task, removed once done or with the expired request."""
from __future__ import annotations

from app.core.gates import Breaker
from app.storage import keys, outbox
from app.storage import requests as sr
from app.storage.outbox import Notice, Owed
from app.storage.requests import AttemptEnd, Cancel, Canceled, NewRequest, Next, Settled

# start_many's horizon and publish grace, for a request with no flow: what a rate defers needs them.
UNGATED = {"horizon_end_ms": 10**15, "grace_ms": 10_000}

HORIZON_MS = 60_000
GRACE_MS = 120_000
SPEC = {"id": "R", "url": "http://127.0.0.1:1/x", "method": "POST", "headers": {},
        "timeout": 5, "retry": {"max_attempts": 2, "backoff_base": 1, "backoff_max": 60}}


def running(store, request_id, now=0):
    """A request whose first attempt has started."""
    sr.create(store, NewRequest(request_id, now, {**SPEC, "id": request_id}), now_ms=now,
              horizon_end_ms=now + HORIZON_MS, grace_ms=GRACE_MS)
    sr.start_many(store, [(request_id, 1)], worker="worker@test", now_ms=now, lease_margin_ms=0, **UNGATED)


def finish(store, request_id, attempt, now, verdict, callback):
    [settled] = sr.finish_many(store, [AttemptEnd(request_id, attempt, verdict, now + 1000, {"attempt": attempt},
                                                  {"status_code": 200}, None, callback=callback)],
                               worker="worker@test", now_ms=now, horizon_end_ms=now + HORIZON_MS, grace_ms=GRACE_MS,
                               lease_margin_ms=0, breaker=Breaker())
    return settled


def owed(store) -> dict[str, float]:
    return dict(store.redis.zrange(keys.requests_outbox(), 0, -1, withscores=True))


def claim(store, now, limit=10):
    return outbox.claim(store, now_ms=now, grace_ms=GRACE_MS, limit=limit)


def test_a_request_that_ends_with_a_callback_url_owes_its_callback_from_the_same_script(store):
    running(store, "A")
    assert finish(store, "A", 1, 100, "failed", callback=True) == Settled(Next.ENDED, "failed")
    assert owed(store) == {"callback:A": 100 + GRACE_MS}  # published at once by the caller; the relay's after


def test_no_callback_is_owed_before_the_end_or_without_a_callback_url(store):
    running(store, "A")
    assert finish(store, "A", 1, 100, "retry", callback=True).next is Next.PUBLISH  # not ended yet
    running(store, "B")
    assert finish(store, "B", 1, 100, "succeeded", callback=False) == Settled(Next.ENDED, "succeeded")
    running(store, "C")
    assert finish(store, "C", 2, 100, "succeeded", callback=True) == Settled(Next.STALE)  # not its attempt
    assert owed(store) == {}


def test_a_request_canceled_after_sending_owes_a_cancel_notice_when_its_spec_asks(store):
    running(store, "A")
    assert sr.cancel(store, "A", now_ms=50, grace_ms=GRACE_MS, lease_margin_ms=0, notify=True) == Cancel(
        Canceled.CANCELED, "running", 1, notice=True)
    running(store, "B")  # its attempt ended and asked for a retry: queued again, one attempt sent
    finish(store, "B", 1, 60, "retry", callback=False)
    assert sr.cancel(store, "B", now_ms=70, grace_ms=GRACE_MS, lease_margin_ms=0, notify=True).notice
    assert owed(store) == {"cancel:A": 50 + GRACE_MS, "cancel:B": 70 + GRACE_MS}


def test_no_cancel_notice_is_owed_before_anything_was_sent_or_unasked(store):
    sr.create(store, NewRequest("A", 10**9, {**SPEC, "id": "A"}), now_ms=0, horizon_end_ms=HORIZON_MS,
              grace_ms=GRACE_MS)
    assert sr.cancel(store, "A", now_ms=5, grace_ms=GRACE_MS, lease_margin_ms=0,
                     notify=True) == Cancel(Canceled.CANCELED, "scheduled", 0)
    running(store, "B")
    assert sr.cancel(store, "B", now_ms=5, grace_ms=GRACE_MS, lease_margin_ms=0,
                     notify=False) == Cancel(Canceled.CANCELED, "running", 1)
    assert sr.cancel(store, "B", now_ms=6, grace_ms=GRACE_MS, lease_margin_ms=0,
                     notify=True) == Cancel(Canceled.ALREADY)
    assert owed(store) == {}


def test_claim_takes_what_is_due_and_puts_it_a_grace_later(store):
    running(store, "A")
    finish(store, "A", 1, 0, "succeeded", callback=True)  # due at GRACE_MS
    running(store, "B")
    sr.cancel(store, "B", now_ms=10, grace_ms=GRACE_MS, lease_margin_ms=0, notify=True)  # due at 10 + GRACE_MS
    assert claim(store, GRACE_MS - 1) == []
    assert claim(store, GRACE_MS + 10) == [Owed(Notice.CALLBACK, "A"), Owed(Notice.CANCEL, "B")]
    assert owed(store) == {"callback:A": 2 * GRACE_MS + 10, "cancel:B": 2 * GRACE_MS + 10}
    # A second relay at the same moment, or the next tick, finds nothing: not again before the grace.
    assert claim(store, GRACE_MS + 10) == []
    assert claim(store, 2 * GRACE_MS + 10) == [Owed(Notice.CALLBACK, "A"), Owed(Notice.CANCEL, "B")]


def test_claim_takes_at_most_its_limit_earliest_first(store):
    for n, request_id in enumerate(("C", "A", "B")):
        running(store, request_id)
        finish(store, request_id, 1, n, "succeeded", callback=True)
    assert claim(store, 10 * GRACE_MS, limit=2) == [Owed(Notice.CALLBACK, "C"), Owed(Notice.CALLBACK, "A")]
    assert claim(store, 10 * GRACE_MS, limit=2) == [Owed(Notice.CALLBACK, "B")]


def test_a_retrying_task_puts_its_notice_off_and_a_done_one_removes_it(store):
    running(store, "A")
    finish(store, "A", 1, 0, "succeeded", callback=True)
    outbox.postpone(store, Notice.CALLBACK, "A", until_ms=5 * GRACE_MS)
    assert claim(store, 5 * GRACE_MS - 1) == []
    assert outbox.settle(store, Notice.CALLBACK, "A", ended_ms=ended_ms(store, "A"))
    assert owed(store) == {}
    # A duplicate task retrying after another one finished does not record the notice again.
    outbox.postpone(store, Notice.CALLBACK, "A", until_ms=6 * GRACE_MS)
    assert owed(store) == {}


def ended_ms(store, request_id) -> str:
    return sr.load(store, request_id)["ended_ms"]


def test_a_task_about_an_earlier_end_leaves_the_entry_of_the_next_end(store):
    """Retried after its first end, a request ends again while the first callback's task still
    runs: that task must not take away the entry the second end recorded (its immediate publish
    may have failed), nor one the running request will need (it settles when it ends)."""
    running(store, "A")
    finish(store, "A", 1, 10, "failed", callback=True)
    first_end = ended_ms(store, "A")
    assert sr.retry(store, "A", now_ms=20, grace_ms=GRACE_MS, max_attempts=1).attempt == 2
    assert not outbox.settle(store, Notice.CALLBACK, "A", ended_ms=first_end)  # running again
    sr.start_many(store, [("A", 2)], worker="worker@test", now_ms=30, lease_margin_ms=0, **UNGATED)
    finish(store, "A", 2, 40, "succeeded", callback=True)
    assert not outbox.settle(store, Notice.CALLBACK, "A", ended_ms=first_end)  # the task of the first end
    assert owed(store) == {"callback:A": 40 + GRACE_MS}
    assert outbox.settle(store, Notice.CALLBACK, "A", ended_ms=ended_ms(store, "A"))  # the second end's task
    assert owed(store) == {}


def test_a_task_that_finds_its_request_not_ended_or_gone_settles_its_entry(store):
    store.redis.zadd(keys.requests_outbox(), {"callback:GONE": 0, "callback:A": 0})
    assert outbox.settle(store, Notice.CALLBACK, "GONE", ended_ms="")
    running(store, "A")  # a notice republished while the request runs again: nothing to tell yet
    assert outbox.settle(store, Notice.CALLBACK, "A", ended_ms="")
    assert owed(store) == {}


def test_expiry_takes_the_notices_of_the_requests_it_deletes(store):
    running(store, "A")
    finish(store, "A", 1, 10, "succeeded", callback=True)
    sr.cancel(store, "A", now_ms=11, grace_ms=GRACE_MS, lease_margin_ms=0,
              notify=True)  # too late: ended; nothing recorded
    running(store, "B")
    sr.cancel(store, "B", now_ms=10, grace_ms=GRACE_MS, lease_margin_ms=0, notify=True)
    running(store, "C")
    finish(store, "C", 1, 20, "failed", callback=True)
    store.redis.zadd(keys.requests_outbox(), {outbox.entry(notice, "A"): 1 for notice in Notice})  # every kind
    assert sr.expire_ended(store, cutoff_ms=10, limit=10) == 2
    assert owed(store) == {"callback:C": 20 + GRACE_MS}


def test_a_bulk_cancel_records_the_cancel_notices_owed_as_one_cancel_does(store):
    for request_id, notify in (("A", True), ("B", False)):
        sr.create(store, NewRequest(request_id, 0, {**SPEC, "id": request_id, "cancel_notify": notify}), now_ms=0,
                  horizon_end_ms=HORIZON_MS, grace_ms=GRACE_MS)
        sr.start_many(store, [(request_id, 1)], worker="worker@test", now_ms=0, lease_margin_ms=0, **UNGATED)
    chunk = sr.cancel_matching(store, keys.requests_by_status("running"), statuses=["running"],
                               url_prefix="http://127.0.0.1:1/", after="", limit=10, now_ms=50, grace_ms=GRACE_MS,
                               lease_margin_ms=0)
    assert chunk == sr.BulkCanceled(2, ["A"], None)
    assert owed(store) == {"cancel:A": 50 + GRACE_MS}
    assert sr.load(store, "A")["status"] == sr.load(store, "B")["status"] == "canceled"
