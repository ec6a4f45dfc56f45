"""The gates of deferred requests on a real Redis (app/storage/lua/_gates.lua): flow rate and
parallelism, the circuit breaker, parking and waking; a hypothesis property of the rate."""
from __future__ import annotations

import heapq

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.gates import Breaker
from app.storage import gates as store_gates
from app.storage import keys
from app.storage import requests as sr
from app.storage.requests import AttemptEnd, NewRequest, Next

HORIZON_MS = 60_000
GRACE_MS = 10_000
MARGIN_MS = 1_000
WORKER = "worker@test"
BREAKER = Breaker(failures=3, cooldown_ms=5_000)


def spec(request_id: str, flow: dict | None = None, url: str = "http://127.0.0.1:1/x") -> dict:
    spec = {"id": request_id, "url": url, "method": "POST", "headers": {}, "timeout": 5,
            "retry": {"max_attempts": 10, "backoff_base": 1, "backoff_max": 60}}
    if flow:
        spec["flow"] = {"period": 1, **flow}
    return spec


def create(store, request_id: str, now: int, **kw) -> None:
    stored = sr.create(store, NewRequest(request_id, now, spec(request_id, **kw)), now_ms=now,
                       horizon_end_ms=now + HORIZON_MS, grace_ms=GRACE_MS)
    assert stored.status == "queued"


def start(store, request_id: str, now: int, attempt: int = 1) -> sr.Started:
    [started] = sr.start_many(store, [(request_id, attempt)], worker=WORKER, now_ms=now, lease_margin_ms=MARGIN_MS,
                              horizon_end_ms=now + HORIZON_MS, grace_ms=GRACE_MS)
    return started


def finish(store, request_id: str, now: int, verdict: str = "succeeded", news: str = "success",
           attempt: int = 1) -> sr.Settled:
    end = AttemptEnd(request_id, attempt, verdict, now + 1_000, {"attempt": attempt}, {}, None, breaker_news=news)
    [settled] = sr.finish_many(store, [end], worker=WORKER, now_ms=now, horizon_end_ms=now + HORIZON_MS,
                               grace_ms=GRACE_MS, lease_margin_ms=MARGIN_MS, breaker=BREAKER)
    return settled


def sweep(store, now: int) -> list:
    return store_gates.sweep(store, now_ms=now, grace_ms=GRACE_MS, lease_margin_ms=MARGIN_MS, limit=100)


# -- rate ----------------------------------------------------------------------------------------

def test_a_rate_reserves_later_starts_without_using_attempts(store):
    for n in range(5):
        create(store, f"R{n}", 1_000, flow={"key": "k", "rate": 2, "period": 1})
    results = [start(store, f"R{n}", 1_000) for n in range(5)]
    assert [r.status for r in results[:2]] == ["running", "running"]
    # Two a second: the others get the next free starts, in order, and go back to the workers.
    assert [(r.deferred_ms, r.publish) for r in results[2:]] == [(2_000, True), (2_000, True), (3_000, True)]
    record = sr.load(store, "R2")
    assert record["attempts"] == "0" and record["status"] == "queued" and record["next_attempt_ms"] == "2000"
    flow = store_gates.flow(store, "k", 1_500)
    assert (flow.rate, flow.period_ms, flow.parallelism, flow.waiting) == (2, 1_000, None, 3)
    # Claimed early (its task's eta leads it) it starts, to be sent at its reserved time.
    assert start(store, "R2", 1_990).send_ms == 2_000
    assert start(store, "R3", 2_000).send_ms == 2_000
    assert start(store, "R4", 2_950).send_ms == 3_000


def test_a_reservation_missed_by_far_takes_a_new_one(store):
    for n in range(3):
        create(store, f"R{n}", 0, flow={"key": "k", "rate": 1, "period": 1})
    assert start(store, "R0", 0).status == "running"
    assert start(store, "R1", 0).deferred_ms == 1_000
    assert start(store, "R2", 0).deferred_ms == 2_000
    # R1 comes back 5 s late (its worker was busy): its old slot is gone, the window is free.
    assert start(store, "R1", 6_000).status == "running"
    assert start(store, "R2", 6_000).deferred_ms == 7_000


def test_the_latest_limits_sent_for_a_key_apply(store):
    create(store, "A", 0, flow={"key": "k", "rate": 1})
    create(store, "B", 0, flow={"key": "k", "rate": 5})
    assert start(store, "A", 0).status == "running"
    assert start(store, "B", 0).status == "running"  # rate 5 now applies to A's key too
    assert store_gates.flow(store, "k", 0).rate == 5


def test_limits_expired_come_back_from_the_request(store):
    create(store, "A", 0, flow={"key": "k", "parallelism": 1})
    store.redis.delete(keys.flow_limits("k"))
    assert start(store, "A", 0).status == "running"
    assert store_gates.flow(store, "k", 0).parallelism == 1


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rate=st.integers(1, 4), period=st.integers(1, 3000),
       arrivals=st.lists(st.integers(0, 5_000), min_size=1, max_size=25),
       lateness=st.lists(st.integers(0, 300), min_size=25, max_size=25))
def test_no_window_of_a_period_holds_more_than_the_rate(store, rate, period, arrivals, lateness):
    """Requests arrive at random times and come back at their reserved starts, some late (a
    busy worker): the starts granted never put more than `rate` in any window of `period` ms."""
    store.redis.flushdb()
    events = []  # (time, id): a worker claims the request then
    for n, at in enumerate(arrivals):
        create(store, f"R{n}", at, flow={"key": "k", "rate": rate, "period": period / 1000})
        heapq.heappush(events, (at, f"R{n}"))
    starts, visits = [], 0
    while events:
        now, request_id = heapq.heappop(events)
        result = start(store, request_id, now)
        visits += 1
        if result.status == "running":
            starts.append(result.send_ms)
        else:
            assert result.deferred_ms is not None and result.deferred_ms > now
            heapq.heappush(events, (result.deferred_ms + lateness[visits % 25], request_id))
        assert visits < 40 * len(arrivals)
    starts.sort()
    assert len(starts) == len(arrivals)
    assert all(starts[i + rate] - starts[i] >= period for i in range(len(starts) - rate))


# -- parallelism ---------------------------------------------------------------------------------

def test_parallelism_parks_and_a_finished_attempt_wakes_the_next(store):
    for n in range(4):
        create(store, f"P{n}", 0, flow={"key": "k", "parallelism": 2})
    results = [start(store, f"P{n}", 10) for n in range(4)]
    assert [r.status for r in results[:2]] == ["running", "running"]
    assert [r.parked for r in results[2:]] == ["flows:k", "flows:k"]
    assert store.redis.zscore(keys.requests_inflight(), "P2") is None  # parked: not republished
    assert sr.load(store, "P2")["parked"] == "flows:k"
    assert sweep(store, 20) == []  # no free slot
    settled = finish(store, "P0", 100)
    assert settled.woken == [sr.Due("P2", 1, 100)]  # its slot is P2's now
    # A stale message of a parked request starts nothing: it waits for its wake-up.
    assert start(store, "P3", 101) == sr.Started("queued")
    assert start(store, "P2", 101).status == "running"
    flow = store_gates.flow(store, "k", 102)
    assert (flow.in_flight, flow.waiting) == (2, 1)


def test_a_dead_workers_slot_comes_back_with_its_lease(store):
    create(store, "A", 0, flow={"key": "k", "parallelism": 1})
    create(store, "B", 0, flow={"key": "k", "parallelism": 1})
    assert start(store, "A", 0).status == "running"  # its lease: 5 s timeout + 1 s margin
    assert start(store, "B", 0).parked == "flows:k"
    assert sweep(store, 5_000) == []
    assert sweep(store, 6_001) == [("B", 1, 6_001)]
    assert start(store, "B", 6_002).status == "running"


def test_a_canceled_waiter_leaves_and_a_canceled_runner_keeps_its_slot_until_its_attempt_ends(store):
    for n in range(3):
        create(store, f"C{n}", 0, flow={"key": "k", "parallelism": 1})
    start(store, "C0", 0)
    assert start(store, "C1", 0).parked and start(store, "C2", 0).parked
    sr.cancel(store, "C1", now_ms=1, grace_ms=GRACE_MS, lease_margin_ms=MARGIN_MS, notify=False)
    sr.cancel(store, "C0", now_ms=2, grace_ms=GRACE_MS, lease_margin_ms=MARGIN_MS, notify=False)
    assert store.redis.zrange(keys.gate_waiting("flows:k"), 0, -1) == ["C2"]
    assert sweep(store, 3) == []  # C0's attempt still runs
    assert finish(store, "C0", 4).woken == [sr.Due("C2", 1, 4)]


def test_run_now_on_a_parked_request_meets_the_gate_again(store):
    create(store, "A", 0, flow={"key": "k", "parallelism": 1})
    create(store, "B", 0, flow={"key": "k", "parallelism": 1})
    start(store, "A", 0)
    assert start(store, "B", 0).parked
    assert sr.run_now(store, "B", now_ms=5, grace_ms=GRACE_MS, lease_margin_ms=MARGIN_MS) == sr.RanNow(1)
    assert start(store, "B", 6).parked == "flows:k"


# -- circuit breaker -----------------------------------------------------------------------------

def test_the_breaker_opens_after_failures_in_a_row_and_a_probe_closes_it(store):
    url = "http://hooks.example:8080/in"
    for n in range(6):
        create(store, f"D{n}", 0, url=url)
    for n in range(3):
        assert start(store, f"D{n}", 0).status == "running"
        finish(store, f"D{n}", 100 + n, verdict="retry", news="failure")
    [dest] = store_gates.destinations(store, 200)
    assert dest == store_gates.Destination("hooks.example:8080", "open", 3, 102 + BREAKER.cooldown_ms)
    # Open: requests wait without using attempts; the retries of the failed ones too.
    assert start(store, "D3", 200).parked == "dests:hooks.example:8080"
    assert start(store, "D0", 1_200, attempt=2).parked
    assert sr.load(store, "D3")["attempts"] == "0"
    assert sweep(store, 300) == []
    # Half-open after the cooldown: the sweep lets exactly one probe through.
    [probe] = sweep(store, 5_200)
    assert sweep(store, 6_300) == []
    assert start(store, "D4", 5_201).parked  # a newcomer is no probe
    assert start(store, probe[0], 5_202, attempt=probe[1]).status == "running"
    assert store_gates.destinations(store, 5_203)[0].state == "half_open"
    settled = finish(store, probe[0], 5_300, attempt=probe[1])
    # Closed: its waiters are woken, in the order they came.
    assert [due.request_id for due in settled.woken] == [i for i in ("D3", "D0", "D4") if i != probe[0]]
    assert store_gates.destinations(store, 5_301) == []


def test_a_failed_probe_opens_the_breaker_again_and_an_answer_resets_the_count(store):
    for n in range(4):
        create(store, f"F{n}", 0)
    for n in range(2):
        start(store, f"F{n}", 0)
        finish(store, f"F{n}", 10, verdict="retry", news="failure")
    start(store, "F2", 20)
    finish(store, "F2", 30, verdict="failed", news="success")  # a 404 is an answer: the host is up
    assert store_gates.destinations(store, 40) == []
    for request_id, attempt in (("F0", 2), ("F1", 2), ("F3", 1)):
        assert start(store, request_id, 100, attempt=attempt).status == "running"
        finish(store, request_id, 200, verdict="retry", news="failure", attempt=attempt)
    assert store_gates.destinations(store, 204)[0].state == "open"
    assert start(store, "F0", 300, attempt=3).parked
    [probe] = sweep(store, 5_300)
    assert probe[0] == "F0"
    assert start(store, "F0", 5_301, attempt=3).status == "running"
    finish(store, "F0", 5_400, verdict="retry", news="failure", attempt=3)
    [dest] = store_gates.destinations(store, 5_401)
    assert (dest.state, dest.consecutive_failures, dest.open_until_ms) == ("open", 4, 5_400 + BREAKER.cooldown_ms)


def test_news_of_nothing_leaves_the_breaker_as_it_is_and_frees_the_probe(store):
    create(store, "N0", 0)
    create(store, "N1", 0)
    store.redis.hset(keys.destination("127.0.0.1:1"), mapping={"open_until": 50, "failures": 9})
    assert start(store, "N0", 100).status == "running"  # the probe
    assert start(store, "N1", 100).parked
    finish(store, "N0", 200, verdict="retry", news="")  # its worker died: nothing learned
    assert store.redis.hget(keys.destination("127.0.0.1:1"), "probe") is None
    assert [due[0] for due in sweep(store, 300)] == ["N1"]


def test_finishing_reports_next_steps_with_wakes(store):
    create(store, "A", 0)
    start(store, "A", 0)
    assert finish(store, "A", 5).next is Next.ENDED


def test_a_closed_breaker_wakes_its_waiters_a_chunk_per_success(store):
    url = "http://big.example/in"
    waiters = [f"W{n:03d}" for n in range(150)]
    for request_id in ["P", *waiters]:
        create(store, request_id, 0, url=url)
    store.redis.hset(keys.destination("big.example"), mapping={"open_until": 1_000, "failures": 10})
    assert all(start(store, request_id, 10).parked for request_id in waiters)
    assert start(store, "P", 1_000).status == "running"  # the probe
    first = finish(store, "P", 1_100).woken
    assert [due.request_id for due in first] == waiters[:100]  # a chunk, in the order they came
    assert store_gates.destinations(store, 1_101) == []  # closed
    assert start(store, "W000", 1_102).status == "running"
    # Draining: the next answer from the destination wakes the rest.
    assert [due.request_id for due in finish(store, "W000", 1_200).woken] == waiters[100:]
    assert not store.redis.exists(keys.destination("big.example"))
