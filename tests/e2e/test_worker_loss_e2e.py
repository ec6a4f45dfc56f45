"""A worker killed with SIGKILL mid-attempt loses no request (its own Redis data, no other worker)."""
from __future__ import annotations

import signal

from app import create_app
from tests.support import metrics
from tests.support.http_target import Reply
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

FAST = {"HTQ_HORIZON": "1", "HTQ_LEASE_MARGIN": "1", "HTQ_PUBLISH_GRACE": "3"}


def test_worker_killed_mid_attempt_loses_nothing(redis_url, services_factory, http_target):
    """SIGKILL the whole worker during an attempt: the lease expires, the attempt is retried."""
    procs = services_factory(**FAST)
    try:
        procs.start_worker("victim", concurrency=1)
        procs.start_beat()
        client = create_app(make_settings(redis_url, horizon_s=1, publish_grace_s=3)).test_client()
        http_target.reply("/killed", Reply(200, delay_s=30))
        created = client.post("/v1/requests", json={"url": http_target.url + "/killed", "timeout": 2,
                                                     "retry": {"backoff_base": 0.01}}).get_json()
        http_target.wait_for(1, "/killed", timeout_s=30)
        procs.kill("victim", signal.SIGKILL)
        procs.start_worker("rescuer", concurrency=1)
        status = wait_until(lambda: (s := client.get(f"/v1/requests/{created['id']}/status").get_json())
                            ["status"] == "succeeded" and s, 40, 0.1)
        assert status["attempts"] == 2
        attempts = client.get(f"/v1/requests/{created['id']}/attempts").get_json()["items"]
        assert "worker lost" in attempts[0]["error"] and attempts[1]["status_code"] == 200
        assert metrics.attempts(metrics.scrape(client)) == {"succeeded": 1, "retry": 0, "failed": 0,
                                                            "worker_lost": 1}
        received = http_target.requests_to("/killed")
        assert [r.headers["Htq-Attempt"] for r in received] == ["1", "2"]
        assert {r.headers["Idempotency-Key"] for r in received} == {created["id"]}
    finally:
        procs.stop_all()
