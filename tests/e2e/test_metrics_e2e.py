"""/metrics with real workers: their deliveries move the counters, which live in Redis and so
survive a worker restart."""
from __future__ import annotations

from app import create_app
from tests.support.http_target import Reply
from tests.support.metrics import attempts, sample, scrape
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

FAST = {"HTQ_HORIZON": "1", "HTQ_LEASE_MARGIN": "1", "HTQ_PUBLISH_GRACE": "3"}


def test_deliveries_of_real_workers_move_the_counters_which_survive_a_worker_restart(redis_url, services_factory,
                                                                                      http_target):
    procs = services_factory(**FAST)
    procs.start_worker("first", concurrency=2)
    procs.start_beat()
    client = create_app(make_settings(redis_url, horizon_s=1, publish_grace_s=3)).test_client()
    http_target.reply("/flaky", Reply(503))
    http_target.reply("/flaky", Reply(200))
    http_target.reply("/gone", Reply(404))
    ids = [client.post("/v1/requests", json={"url": http_target.url + path, "retry": {"backoff_base": 0.01}})
           .get_json()["id"] for path in ("/ok", "/flaky", "/gone")]

    def ended() -> dict | None:
        metrics = scrape(client)
        return metrics if sample(metrics, "htq_requests", status="succeeded") == 2 and \
            sample(metrics, "htq_requests", status="failed") == 1 else None

    metrics = wait_until(ended, 30, 0.1)
    assert attempts(metrics) == {"succeeded": 2, "retry": 1, "failed": 1, "worker_lost": 0}
    assert sample(metrics, "htq_request_lateness_seconds_count") == 4
    assert sample(metrics, "htq_attempt_duration_seconds_count") == 4
    assert sample(metrics, "htq_attempt_duration_seconds_bucket", le="+Inf") == 4
    assert sample(metrics, "htq_workers") == 1
    assert len(ids) == 3

    procs.stop("first")
    procs.start_worker("second", concurrency=1)
    client.post("/v1/requests", json={"url": http_target.url + "/after"})
    metrics = wait_until(lambda: (m := scrape(client)) and sample(m, "htq_requests", status="succeeded") == 3 and m,
                         30, 0.1)
    assert attempts(metrics) == {"succeeded": 3, "retry": 1, "failed": 1, "worker_lost": 0}
    assert sample(metrics, "htq_request_lateness_seconds_count") == 5
