"""Fixtures of the dashboard's tests: htq as the Procfile runs it (gunicorn web, a Celery worker,
beat) on the test Redis, once with tokens off and once with them on, and HTTP targets."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import redis

from app.embedded import free_port
from app.processes import ServiceProcesses, service_env
from tests.support.http_target import HttpTarget

TOKEN = "ui-test-token-1"
# A short horizon and publish grace make "run now" and the relay paths happen within seconds.
FAST = {"HTQ_HORIZON": "1", "HTQ_LEASE_MARGIN": "1", "HTQ_PUBLISH_GRACE": "3"}


@dataclass
class Stack:
    open_url: str  # web process with tokens off
    locked_url: str  # web process with HTQ_API_TOKENS set


@pytest.fixture(scope="package")
def stack(redis_server, tmp_path_factory):
    """Web (tokens off), worker and beat; then a second web process with tokens on, same Redis."""
    redis.Redis.from_url(redis_server.url).flushall()
    procs = ServiceProcesses(service_env(redis_server.url, **FAST), tmp_path_factory.mktemp("ui"))
    locked = ServiceProcesses(service_env(redis_server.url, HTQ_API_TOKENS=f"other-token,{TOKEN}", **FAST),
                              tmp_path_factory.mktemp("ui-tokens"))
    try:
        procs.start_worker(concurrency=2)
        procs.start_beat()
        yield Stack(procs.start_web(free_port()), locked.start_web(free_port(), name="web-tokens"))
    finally:
        locked.stop_all()
        procs.stop_all()


@pytest.fixture(scope="package")
def base_url(stack) -> str:
    return stack.open_url


@pytest.fixture(scope="package")
def locked_url(stack) -> str:
    return stack.locked_url


@pytest.fixture(scope="package")
def target():
    target = HttpTarget()
    target.start()
    yield target
    target.stop()
