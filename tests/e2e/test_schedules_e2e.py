"""Schedules end to end: two beats at once, a real worker and a real HTTP target; every tick of an
`every: 1` schedule is delivered, none twice."""
from __future__ import annotations

from app import create_app
from app.core.clock import from_rfc3339
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

RUNS = 6


def test_two_beats_run_each_tick_once_and_a_worker_delivers_it(services_factory, redis_url, http_target):
    procs = services_factory(LOG_LEVEL="DEBUG")  # beat logs each task it sends only at DEBUG (app/log.py)
    procs.start_worker(concurrency=2)
    procs.start_beat("beat1")
    procs.start_beat("beat2")
    procs.wait_log("worker", " ready.")
    for beat in ("beat1", "beat2"):
        procs.wait_log(beat, "beat: Starting")
    client = create_app(make_settings(redis_url)).test_client()
    put = client.put("/v1/schedules/tick", json={"every": 1, "target": {"request": {
        "url": http_target.url + "/tick", "json": {"from": "schedule"}, "headers": {"X-Job": "tick"}}}})
    assert put.status_code == 201
    wait_until(lambda: len(http_target.requests_to("/tick")) >= RUNS, timeout_s=60, interval_s=0.1)
    assert client.post("/v1/schedules/tick/pause").status_code == 200
    for beat in ("beat1", "beat2"):  # both beats really sent the tick task
        assert "Sending due task tick (htq.tick)" in procs.log(beat)

    made = client.get("/v1/requests?schedule=tick&limit=200").get_json()["items"]
    schedule = client.get("/v1/schedules/tick").get_json()
    assert len(made) == schedule["runs"] >= RUNS
    dues = sorted(from_rfc3339(r["due_at"]) for r in made)
    # Each tick once, none missed: the requests are due at consecutive ticks (the first may have
    # run late, while the worker was warming up: then it was due when it ran).
    gaps = [later - earlier for earlier, later in zip(dues, dues[1:])]
    assert 0 < gaps[0] <= 1000 and set(gaps[1:]) == {1000}, gaps
    wait_until(lambda: all(client.get(f"/v1/requests/{r['id']}/status").get_json()["status"] == "succeeded"
                           for r in made), timeout_s=30, interval_s=0.1)
    received = http_target.requests_to("/tick")
    keys = [r.headers["Idempotency-Key"] for r in received]
    assert sorted(keys) == sorted(r["id"] for r in made)  # each request sent once
    assert all(r.body == b'{"from": "schedule"}' and r.headers["X-Job"] == "tick" for r in received)
    # Sent at its tick, as a deferred request is.
    by_id = {r["id"]: from_rfc3339(r["due_at"]) for r in made}
    lateness_ms = [r.at * 1000 - by_id[r.headers["Idempotency-Key"]] for r in received]
    assert min(lateness_ms) >= 0
