"""The store behind Redis Sentinel follows a failover in which the old master stays up: Sentinel
promotes its replica at once but demotes the old master only once it looks at it again, seconds
later. Writes that reach the old master meanwhile have no replica to confirm them, so with
HTQ_REDIS_MIN_REPLICAS=1 none is acknowledged (503, never a 201 that the demotion would erase);
once it is demoted its connections are dropped and the store reaches the new master."""
from __future__ import annotations

import time

import pytest

from app.storage import keys, queues
from app.storage.client import UNAVAILABLE, Store
from tests.support.sentinel import MASTER_NAME, SentinelDeployment
from tests.support.settings import make_settings

DEFAULTS = {"visibility_timeout_ms": 1000, "max_receives": 0, "retention_ms": 60000, "delay_ms": 0}


@pytest.fixture
def deployment(tmp_path):
    deployment = SentinelDeployment(tmp_path, replicas=1, sentinels=1, quorum=1)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


def push(store: Store) -> str:
    return queues.push(store, "q", now_ms=1, id_suffix="x", messages=[("b", None)], defaults=DEFAULTS)[0]


def test_writes_reaching_a_master_being_replaced_are_refused_until_the_store_follows(deployment):
    settings = make_settings("redis://unused:1/0", redis_sentinels=(("127.0.0.1", deployment.sentinel_ports[0]),),
                             redis_sentinel_master=MASTER_NAME, redis_min_replicas=1, redis_wait_timeout_s=0.1)
    store = Store.from_settings(settings)
    try:
        first = push(store)
        watch = deployment.watch_switch()
        deployment.failover()
        watch.wait(20)
        watch.close()
        refused, deadline = [], time.monotonic() + 30
        while True:
            try:
                second = push(store)
                break
            except UNAVAILABLE as exc:  # anything else (a script error) fails the test
                refused.append(exc)
                assert time.monotonic() < deadline, refused[-3:]
                time.sleep(0.05)
        assert set(store.redis.hkeys(keys.queue_bodies("q"))) >= {first, second}
        assert store.redis.connection_pool.get_master_address() == watch.address
    finally:
        store.close()
