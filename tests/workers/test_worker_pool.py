"""The worker pool setting: HTQ_WORKER_POOL, its concurrency, and what Celery is told."""
from __future__ import annotations

import subprocess

import pytest

from app.processes import ROOT, celery_argv, service_env
from config.settings import DEFAULT_WORKER_POOL, WORKER_POOLS, ConfigError, load_settings


def test_default_pool_and_its_concurrency():
    settings = load_settings({})
    assert settings.worker_pool == DEFAULT_WORKER_POOL
    assert settings.concurrency == WORKER_POOLS[DEFAULT_WORKER_POOL]


@pytest.mark.parametrize(("pool", "concurrency"), [("prefork", 10), ("threads", 100), ("gevent", 100)])
def test_each_pool_has_its_own_default_concurrency(pool, concurrency):
    settings = load_settings({"HTQ_WORKER_POOL": pool.upper()})
    assert (settings.worker_pool, settings.concurrency) == (pool, concurrency)
    config = settings.celery_config()
    assert (config["worker_pool"], config["worker_concurrency"]) == (pool, concurrency)
    assert load_settings({"HTQ_WORKER_POOL": pool, "HTQ_CONCURRENCY": "7"}).concurrency == 7


def test_unknown_pool_is_refused():
    with pytest.raises(ConfigError, match="HTQ_WORKER_POOL must be one of"):
        load_settings({"HTQ_WORKER_POOL": "eventlet"})


def test_gevent_from_settings_alone_is_refused_with_a_clear_message():
    """Without `-P gevent`, Celery would run greenlets on sockets that were never patched."""
    env = service_env("redis://127.0.0.1:1/0", HTQ_WORKER_POOL="gevent")
    done = subprocess.run(celery_argv("worker", "-l", "INFO"), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "needs `-P gevent` on the command line" in done.stderr


@pytest.mark.parametrize(("pool", "concurrency", "expected"), [
    ("threads", 7, ("threads", 7, 350)), ("solo", None, ("prefork", 10, 50)), ("prefork", 4, ("prefork", 4, 50))])
def test_the_runtime_follows_the_pool_and_concurrency_on_the_command_line(monkeypatch, pool, concurrency, expected):
    """`celery -A workers worker -P threads -c 7` with HTQ_WORKER_POOL left at prefork: each
    process's runtime sizes its sends by the pool Celery runs, not by the setting."""
    from celery.concurrency import get_implementation

    import workers
    from workers import runtime

    monkeypatch.setattr(workers, "settings", load_settings({}))
    workers._check_pool(options={"pool_cls": get_implementation(pool), "concurrency": concurrency})
    followed = workers.settings
    assert (followed.worker_pool, followed.concurrency, runtime.sends_at_once(followed)) == expected
