"""/compat/timers end to end: the Flask app, a real Celery worker and beat, a real webhook target."""
from __future__ import annotations

import time

import pytest

from app import create_app
from app.extensions import services
from tests.support.http_target import Reply
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

# A short horizon sends the timers through the relay, as timers of hours would be.
FAST = {"HTQ_HORIZON": "1", "HTQ_LEASE_MARGIN": "1", "HTQ_PUBLISH_GRACE": "3"}


@pytest.fixture
def app(redis_url, services_factory):
    procs = services_factory(**FAST)
    procs.start_worker(concurrency=2)
    procs.start_beat()
    return create_app(make_settings(redis_url, horizon_s=1, publish_grace_s=3))


def set_timer(client, url, seconds):
    response = client.post("/compat/timers/timers", json={"seconds": seconds, "url": url})
    assert response.status_code == 201
    return response.get_json()["id"]


def time_left(client, timer_id):
    return client.get(f"/compat/timers/timers/{timer_id}").get_json()["time_left"]


def native_status(app, timer_id):
    with app.app_context():
        requests = services().requests
        return requests.status(requests.find("timers", timer_id))


def test_webhook_is_posted_empty_to_the_url_path_plus_id_once_the_delay_has_passed(app, http_target):
    client = app.test_client()
    due = time.time() + 2
    timer_id = set_timer(client, http_target.url + "/hooks?team=a", 2)
    assert time_left(client, timer_id) in (1, 2)
    [received] = http_target.wait_for(1, f"/hooks/{timer_id}", timeout_s=20)
    assert received.at >= due - 0.01
    assert received.method == "POST" and received.path == f"/hooks/{timer_id}?team=a" and received.body == b""
    wait_until(lambda: native_status(app, timer_id)["status"] == "succeeded", 10)
    assert time_left(client, timer_id) == 0


def test_server_errors_are_retried_and_any_other_answer_ends_the_timer(app, http_target):
    client = app.test_client()
    retried = set_timer(client, http_target.url + "/retried", 2)
    ended = set_timer(client, http_target.url + "/ended", 2)
    # Both are due in 2 s and published by the relay 1 s before: the replies are in place by then.
    http_target.reply(f"/retried/{retried}", Reply(503), Reply(429, headers={"Retry-After": "0"}), Reply(204))
    http_target.reply(f"/ended/{ended}", Reply(410), Reply(200))
    http_target.wait_for(3, f"/retried/{retried}", timeout_s=30)
    wait_until(lambda: native_status(app, retried)["status"] == "succeeded", 10)
    wait_until(lambda: native_status(app, ended)["status"] == "failed", 10)
    assert len(http_target.requests_to(f"/ended/{ended}")) == 1
    assert [r.headers["Htq-Attempt"] for r in http_target.requests_to(f"/retried/{retried}")] == ["1", "2", "3"]
    assert time_left(client, retried) == 0 and time_left(client, ended) == 0
