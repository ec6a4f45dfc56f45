"""Flow control when a worker dies mid-attempt: its slot comes back once it is found dead (its own
Redis: no other worker may take the work)."""
from __future__ import annotations

import signal
import threading

from app import create_app
from tests.support.http_target import Reply
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

FAST = {"HTQ_HORIZON": "1", "HTQ_LEASE_MARGIN": "1", "HTQ_PUBLISH_GRACE": "3"}


def statuses(client, ids: list[str]) -> list[dict]:
    return [client.get(f"/v1/requests/{request_id}/status").get_json() for request_id in ids]


def test_a_killed_workers_slot_is_given_back(redis_url, services_factory, http_target):
    procs = services_factory(**FAST)
    try:
        procs.start_worker("victim", concurrency=1)
        procs.start_beat()
        client = create_app(make_settings(redis_url, horizon_s=1, publish_grace_s=3)).test_client()
        hold = threading.Event()
        http_target.reply("/one", Reply(200, release=hold))
        flow = {"key": "kill-e2e", "parallelism": 1}
        first = client.post("/v1/requests", json={"url": http_target.url + "/one", "flow": flow,
                                                   "retry": {"backoff_base": 0.01}}).get_json()
        http_target.wait_for(1, "/one", timeout_s=30)
        second = client.post("/v1/requests", json={"url": http_target.url + "/two", "flow": flow}).get_json()
        procs.kill("victim", signal.SIGKILL)
        hold.set()
        procs.start_worker("rescuer", concurrency=1)
        wait_until(lambda: all(s["status"] == "succeeded" for s in statuses(client, [first["id"], second["id"]])),
                   40, 0.1)
        assert [s["attempts"] for s in statuses(client, [first["id"], second["id"]])] == [2, 1]
        # One at a time throughout: the second started only once the first's lost attempt was settled.
        one, two, again = http_target.received
        assert (one.path, two.path, again.path) == ("/one", "/two", "/one")
        assert client.get("/v1/flows/kill-e2e").get_json()["in_flight"] == 0
    finally:
        procs.stop_all()
