"""The virtual clock across processes: a real web server (gunicorn) and a real Celery worker
(`celery -A workers worker`) on HTQ_CLOCK=virtual, no beat. One advance through the web server
moves the worker's clock too: a request due in three days, its retry an hour later and a batch's
hourly interval all reach a real HTTP target within seconds."""
from __future__ import annotations

import json
import time

import pytest
import redis
import requests

from app.embedded import free_port
from app.processes import ServiceProcesses, service_env
from tests.support.http_target import Reply
from tests.support.waiting import wait_until

DAY_S = 86400


@pytest.fixture(scope="module")
def base(redis_server, tmp_path_factory):
    redis.Redis.from_url(redis_server.url).flushall()
    procs = ServiceProcesses(service_env(redis_server.url, HTQ_CLOCK="virtual"), tmp_path_factory.mktemp("vclock"))
    base = procs.start_web(free_port())
    procs.start_worker(concurrency=2)
    procs.wait_log("worker", " ready.")
    yield base
    procs.stop_all()


def advance(base: str, seconds: float) -> None:
    answer = requests.post(base + "/v1/clock/advance", json={"seconds": seconds}, timeout=30)
    assert answer.status_code == 200, answer.text


def test_an_advance_through_the_web_server_moves_the_workers_clock(base, http_target):
    http_target.reply("/remind", Reply(503, headers={"Retry-After": "3600"}), Reply(200))
    assert requests.get(base + "/v1/clock", timeout=10).json()["virtual"] is True
    created = requests.post(base + "/v1/requests", json={"url": http_target.url + "/remind", "delay": 3 * DAY_S},
                            timeout=10).json()
    assert requests.put(base + "/v1/batches/hourly", json={"endpoint": http_target.url + "/in", "interval": 3600,
                                                           "max_records": 100}, timeout=10).status_code == 201
    assert requests.post(base + "/v1/batches/hourly/records", json={"n": 1}, timeout=10).status_code == 202
    time.sleep(1)
    assert http_target.requests_to("/remind") == [] and http_target.requests_to("/in") == []
    started = time.monotonic()
    advance(base, 3 * DAY_S)
    [first] = http_target.wait_for(1, "/remind", timeout_s=10)
    [posted] = http_target.wait_for(1, "/in", timeout_s=10)
    assert json.loads(posted.body) == [{"n": 1}] and time.monotonic() - started < 10

    def status() -> str:
        return requests.get(f"{base}/v1/requests/{created['id']}/status", timeout=10).json()["status"]

    wait_until(lambda: status() == "retrying")
    advance(base, 3600)
    first, second = http_target.wait_for(2, "/remind", timeout_s=10)
    assert second.headers["Htq-Attempt"] == "2"
    wait_until(lambda: status() == "succeeded")
