"""A worker whose broker connection dropped releases what it held. With the broker on the store's
Redis (a failover, a restart), that Redis does not answer just then: the release is tried again
at each heartbeat, and before the next task message is recorded, until Redis answers."""
from __future__ import annotations

from app import create_app
from app.core.publish import Publisher
from app.core.task_names import DELIVER_REQUESTS
from app.storage import keys
from tests.support.sender import RecordingSender
from tests.support.settings import make_settings
from workers.liveness import Liveness


def create_requests(settings, count: int) -> list[str]:
    api = create_app(settings, publisher=Publisher(RecordingSender())).test_client()
    return [api.post("/v1/requests", json={"url": "http://127.0.0.1:9/x"}).get_json()["id"] for _ in range(count)]


def test_holds_a_failed_release_left_are_released_once_redis_answers_again(own_redis):
    settings = make_settings(own_redis.url)
    first, second = create_requests(settings, 2)
    liveness = Liveness(settings, "w1@host")
    store = liveness.store
    try:
        liveness.received(DELIVER_REQUESTS, [[[first, 1]]])
        assert store.redis.smembers(keys.worker_held("w1@host")) == {first}

        own_redis.stop()
        liveness.release_held()  # the broker connection dropped with Redis: nothing answers
        own_redis.start()  # same port, its data kept (AOF)
        assert store.redis.smembers(keys.worker_held("w1@host")) == {first}

        # The consumer is back first: its next message is held only after the old holds are released.
        liveness.received(DELIVER_REQUESTS, [[[second, 1]]])
        assert store.redis.smembers(keys.worker_held("w1@host")) == {second}
        assert store.redis.hget(keys.request(first), "holder") is None

        liveness._heartbeat()  # nothing pending any more: the new hold stays
        assert store.redis.smembers(keys.worker_held("w1@host")) == {second}
    finally:
        store.close()


def test_a_failed_release_is_retried_at_the_next_heartbeat(own_redis):
    settings = make_settings(own_redis.url)
    [request_id] = create_requests(settings, 1)
    liveness = Liveness(settings, "w2@host")
    try:
        liveness.received(DELIVER_REQUESTS, [[[request_id, 1]]])
        own_redis.stop()
        liveness.release_held()
        own_redis.start()
        liveness._heartbeat()
        assert liveness.store.redis.smembers(keys.worker_held("w2@host")) == set()
    finally:
        liveness.store.close()


def test_a_release_no_replica_confirms_stays_pending_for_the_next_heartbeat(own_redis):
    """With HTQ_REDIS_MIN_REPLICAS, a release is not taken as done until replicas hold it: one made
    on a master that a failover then replaces would be undone, and the requests would stay held
    by this live worker, unpublished, for HOLD_VALID_S (seen after two failovers in a row)."""
    settings = make_settings(own_redis.url)
    [request_id] = create_requests(settings, 1)
    liveness = Liveness(make_settings(own_redis.url, redis_min_replicas=1, redis_wait_timeout_s=0.05), "w3@host")
    try:
        liveness.received(DELIVER_REQUESTS, [[[request_id, 1]]])
        liveness.release_held()  # this Redis has no replica: WAIT confirms nothing
        assert liveness._release_pending
        liveness.store.min_replicas = 0  # a master whose replicas confirm (as after the failover)
        liveness._heartbeat()
        assert not liveness._release_pending
        assert liveness.store.redis.smembers(keys.worker_held("w3@host")) == set()
    finally:
        liveness.store.close()
