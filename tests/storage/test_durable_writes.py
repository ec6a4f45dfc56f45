"""HTQ_REDIS_MIN_REPLICAS: a write that accepts work is answered only once WAIT confirms that many
replicas hold it; otherwise 503 with Retry-After, never 201. A replay of an Idempotency-Key waits
the same way. A script refused by a demoted master (a replica) is a 503 too, not a 500."""
from __future__ import annotations

import pytest
import redis

from app import create_app
from app.embedded import RedisServer
from app.processes import TemporaryRedis
from app.storage import keys, queues
from app.storage.client import UNAVAILABLE, NotReplicated, Store
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

REQUEST = {"url": "http://127.0.0.1:9/x"}


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    """A master with one replica of its own (the session's Redis has none)."""
    master = TemporaryRedis()
    master.start()
    replica = RedisServer(tmp_path_factory.mktemp("replica"), options=("--replicaof", "127.0.0.1", str(master.port)))
    replica.start()
    client = redis.Redis(port=master.port)
    wait_until(lambda: client.info("replication")["connected_slaves"] == 1, 20, 0.05)
    client.close()
    yield master, replica
    replica.stop()
    master.cleanup()


def api(redis_url: str, min_replicas: int):
    settings = make_settings(redis_url, redis_min_replicas=min_replicas, redis_wait_timeout_s=0.05)
    return create_app(settings).test_client()


def test_without_a_replica_to_confirm_them_creates_and_pushes_answer_503_not_201(redis_url):
    client = api(redis_url, 1)
    for path, body in [("/v1/requests", REQUEST), ("/v1/requests/batch", {"requests": [REQUEST]}),
                       ("/v1/queues/q/messages", {"n": 1}),
                       ("/v1/queues/q/messages/batch", {"messages": [{"body": 1}]})]:
        response = client.post(path, json=body)
        assert response.status_code == 503, (path, response.get_json())
        assert response.headers["Retry-After"] and "Htq-Nothing-Stored" not in response.headers
        assert response.get_json()["code"] == 503
    assert api(redis_url, 0).post("/v1/requests", json=REQUEST).status_code == 201


def test_an_idempotent_replay_is_answered_only_once_a_replica_holds_the_original(redis_url):
    headers = {"Idempotency-Key": "k1"}
    created = api(redis_url, 0).post("/v1/requests", json=REQUEST, headers=headers)
    assert created.status_code == 201
    replay = api(redis_url, 1).post("/v1/requests", json=REQUEST, headers=headers)
    assert replay.status_code == 503 and "Idempotency-Key" in replay.get_json()["message"]
    assert api(redis_url, 0).post("/v1/requests", json=REQUEST, headers=headers).status_code == 200


def test_with_a_replica_writes_return_once_it_holds_them(replicated):
    master, replica = replicated
    client = api(master.url, 1)
    created = client.post("/v1/requests", json=REQUEST, headers={"Idempotency-Key": "k2"})
    assert created.status_code == 201
    pushed = client.post("/v1/queues/q/messages", json={"n": 1})
    assert pushed.status_code == 201
    assert client.post("/v1/requests", json=REQUEST, headers={"Idempotency-Key": "k2"}).status_code == 200
    # A master that lost its scripts (a restart, a replica promoted) gets them again.
    on_master = redis.Redis.from_url(master.url)
    on_master.script_flush()
    on_master.close()
    assert client.post("/v1/queues/q/messages", json={"n": 2}).status_code == 201
    # WAIT returned: the replica holds both already, no waiting for it here.
    on_replica = redis.Redis.from_url(replica.url, decode_responses=True)
    try:
        assert on_replica.exists(keys.request(created.get_json()["id"]))
        assert on_replica.hexists(keys.queue_bodies("q"), pushed.get_json()["id"])
    finally:
        on_replica.close()


def test_a_script_refused_by_a_replica_is_unavailable_not_an_error(replicated):
    _, replica = replicated
    store = Store.from_url(replica.url)
    try:
        with pytest.raises(UNAVAILABLE) as refused:
            queues.push(store, "q", now_ms=1, id_suffix="x", messages=[("b", None)],
                        defaults={"visibility_timeout_ms": 1000, "max_receives": 0, "retention_ms": 60000,
                                  "delay_ms": 0})
        assert isinstance(refused.value, redis.exceptions.ReadOnlyError)
    finally:
        store.close()


def test_not_replicated_is_a_connection_error_so_every_error_mapping_answers_503():
    assert issubclass(NotReplicated, redis.ConnectionError)
