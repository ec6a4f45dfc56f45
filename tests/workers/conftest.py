"""Fixtures of an in-process Celery worker running htq's own tasks on the test Redis as broker.

celery.contrib.pytest (enabled with `-p celery.contrib.pytest`, see setup.cfg) provides celery_app
and celery_worker: a real worker in a thread of the test process that consumes the broker, with
serialization, routing and acks as in production (never eager). Its settings fixtures are
overridden here with htq's Celery configuration; tasks reach their store, attempts, relay and HTTP
deliverer through workers.runtime, pointed at the test settings and the test app.
"""
from __future__ import annotations

import importlib

import pytest

import workers
from workers import runtime

# The task modules `celery -A workers worker` imports, imported while this file loads: their
# shared tasks register with every app created afterwards. Not through the celery_includes fixture:
# celery_app's clean-up restores Celery's list of such registrations to what it was before the
# test, so tasks first imported during one test would be missing from the next test's app.
for module in workers.app.conf.include:
    importlib.import_module(module)


@pytest.fixture
def celery_config(settings) -> dict:
    """htq's Celery configuration (settings.celery_config()) with the test Redis as broker; per
    test, so that it comes after redis_url's flush."""
    return settings.celery_config()


@pytest.fixture(scope="session")
def celery_worker_parameters() -> dict:
    # The start-up check sends a ping task and waits for its result; htq keeps no task results.
    return {"perform_ping_check": False}


@pytest.fixture
def worker_runtime(monkeypatch, settings, celery_app) -> runtime.Runtime:
    """The tasks' runtime built on the test settings, publishing retries through the test app."""
    monkeypatch.setattr(workers, "settings", settings)
    monkeypatch.setattr(workers, "app", celery_app)
    runtime.reset()
    built = runtime.current()
    yield built
    runtime.reset()
    built.deliverer.close()
    built.executor.shutdown()
    built.store.close()


@pytest.fixture
def worker(worker_runtime, celery_worker):
    """The in-process worker, started once its tasks' runtime is in place."""
    return celery_worker


@pytest.fixture
def rt(settings, sender) -> runtime.Runtime:
    """A worker process's runtime on the test settings, for calling a task's logic directly."""
    built = runtime.build(settings, sender)
    yield built
    built.deliverer.close()
    built.executor.shutdown()
    built.store.redis.close()
