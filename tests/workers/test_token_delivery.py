"""The deliver task on a stored request whose spec carries its token's allowed hosts: the worker
checks them again against the address it connects to, and refuses what they do not admit."""
from __future__ import annotations

import json

import pytest

from app import create_app
from app.core.batches import BatchService
from app.core.task_names import SEND_BATCHES
from app.core.tokens import Origin
from app.storage import keys
from tests.support.waiting import wait_until
from workers.tasks.batches import run_send


@pytest.fixture
def client(settings):
    return create_app(settings).test_client()


def create_with_allowed_hosts(client, store, url: str, allowed_hosts: list[str]) -> str:
    """A request due in a second, its spec then given `allowed_hosts` as a token's request stores it."""
    created = client.post("/v1/requests", json={"url": url, "json": {"n": 1}, "delay": 1}).get_json()
    key = keys.request(created["id"])
    spec = json.loads(store.redis.hget(key, "spec"))
    store.redis.hset(key, "spec", json.dumps({**spec, "allowed_hosts": allowed_hosts}))
    return created["id"]


def ended(client, request_id: str) -> str | None:
    status = client.get(f"/v1/requests/{request_id}/status").get_json()["status"]
    return status if status in ("succeeded", "failed") else None


def test_a_destination_outside_the_stored_allowlist_is_refused_by_the_worker(worker, client, store, http_target):
    refused = create_with_allowed_hosts(client, store, http_target.url + "/refused", ["10.0.0.0/8"])
    admitted = create_with_allowed_hosts(client, store, http_target.url + "/admitted", ["127.0.0.1"])
    wait_until(lambda: ended(client, refused) and ended(client, admitted), timeout_s=15)
    assert ended(client, refused) == "failed"  # not retried: the same address would be refused again
    assert store.redis.hget(keys.request(refused), "last_error") == (
        "destination refused: 127.0.0.1 is not among the token's allowed hosts")
    assert ended(client, admitted) == "succeeded"
    assert [received.path for received in http_target.received] == ["/admitted"]



def test_a_batch_whose_endpoint_its_token_does_not_admit_is_refused_by_the_worker(rt, sender, http_target):
    """The batch keeps the allowed hosts of the token that configured it; its send is held to them."""
    service = BatchService(rt.store, rt.publisher, rt.settings)
    service.configure("kept", {"endpoint": http_target.url + "/kept", "max_records": 1},
                      origin=Origin("tok_1", ("127.0.0.1",)))
    service.configure("refused", {"endpoint": http_target.url + "/refused", "max_records": 1},
                      origin=Origin("tok_2", ("10.0.0.0/8",)))
    service.add("kept", [{"n": 1}])
    service.add("refused", [{"n": 2}])
    sends = {args[0]: args[1] for name, args, _ in sender.sent if name == SEND_BATCHES}
    [[kept_id, kept_attempt]], [[refused_id, refused_attempt]] = sends["kept"], sends["refused"]
    assert run_send(rt, "kept", kept_id, kept_attempt, "worker@test").result == "sent"
    assert run_send(rt, "refused", refused_id, refused_attempt, "worker@test").result != "sent"
    assert [received.path for received in http_target.received] == ["/kept"]
    assert "not among the token's allowed hosts" in service.get("refused")["last_error"]
