"""Who made what: requests, schedules and batches carry the id (never the secret) and the allowed
hosts of the token that made them, for the worker to check again and for GET /v1/requests?token=."""
from __future__ import annotations

import json

import pytest

from app import create_app
from app.core.publish import Publisher
from app.storage import batches as store_batches
from app.storage import keys
from app.storage import requests as store_requests
from tests.support.html import Page
from tests.support.settings import make_settings

ADMIN_SECRET = "env-admin-secret"
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_SECRET}"}
LATER = 3600


@pytest.fixture
def client(redis_url, sender):
    app = create_app(make_settings(redis_url, api_tokens=(ADMIN_SECRET,), long_poll_timeout_s=0.1),
                     publisher=Publisher(sender))
    return app.test_client()


def make_token(client, scopes, allowed_hosts=()) -> tuple[str, dict]:
    response = client.post("/v1/tokens", json={"name": "t", "scopes": list(scopes),
                                               "allowed_hosts": list(allowed_hosts)}, headers=ADMIN_AUTH)
    assert response.status_code == 201, response.get_json()
    made = response.get_json()
    return made["id"], {"Authorization": f"Bearer {made['token']}"}


def stored_spec(store, request_id: str) -> dict:
    return store_requests.spec_of(store_requests.load(store, request_id))


def test_a_request_carries_its_token_id_and_normalized_allowed_hosts_never_the_secret(client, store):
    token_id, auth = make_token(client, ["publish"], ["*.Example.com", "API.example.org.", "10.1.0.0/16"])
    made = client.post("/v1/requests", json={"url": "https://a.example.com/x", "delay": LATER}, headers=auth)
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["token_id"] == token_id
    spec = stored_spec(store, made.get_json()["id"])
    assert spec["token_id"] == token_id
    assert spec["allowed_hosts"] == ["*.example.com", "api.example.org", "10.1.0.0/16"]
    assert store_requests.load(store, made.get_json()["id"])["token"] == token_id
    read = client.get(f"/v1/requests/{made.get_json()['id']}", headers=ADMIN_AUTH).get_json()
    assert read["token_id"] == token_id
    assert auth["Authorization"].split()[1] not in json.dumps(store_requests.load(store, made.get_json()["id"]))


def test_a_token_without_allowed_hosts_stores_none_and_an_env_token_is_env(client, store):
    token_id, auth = make_token(client, ["publish"])
    plain = client.post("/v1/requests", json={"url": "https://x.test/", "delay": LATER}, headers=auth).get_json()
    assert stored_spec(store, plain["id"]).get("allowed_hosts") is None
    assert stored_spec(store, plain["id"])["token_id"] == token_id
    env = client.post("/v1/requests", json={"url": "https://x.test/", "delay": LATER}, headers=ADMIN_AUTH).get_json()
    assert env["token_id"] == "env"
    assert stored_spec(store, env["id"])["token_id"] == "env" and "allowed_hosts" not in stored_spec(store, env["id"])


def test_without_auth_the_token_id_is_null(redis_url, sender, store):
    client = create_app(make_settings(redis_url), publisher=Publisher(sender)).test_client()
    made = client.post("/v1/requests", json={"url": "https://x.test/", "delay": LATER}).get_json()
    assert made["token_id"] is None
    assert client.get(f"/v1/requests/{made['id']}").get_json()["token_id"] is None
    assert "token_id" not in stored_spec(store, made["id"])
    assert "token" not in store_requests.load(store, made["id"])


def test_batch_and_compat_creations_carry_the_token(client, store):
    token_id, auth = make_token(client, ["publish"], ["*.example.com"])
    items = client.post("/v1/requests/batch", json={"requests": [{"url": "https://a.example.com/1", "delay": LATER},
                                                                 {"url": "https://b.example.com/2", "delay": LATER}]},
                        headers=auth).get_json()["items"]
    for item in items:
        assert item["token_id"] == token_id
        assert stored_spec(store, item["id"])["allowed_hosts"] == ["*.example.com"]
    assert client.post("/compat/timers/timers", json={"seconds": 60, "url": "https://t.example.com/t"},
                       headers=auth).status_code == 201
    assert client.post("/compat/htq/", json={"url": "https://h.example.com/h"}, headers=auth).status_code == 303
    compat = [stored_spec(store, request_id) for request_id in store.redis.zrange(keys.requests_all(), 0, -1)]
    assert {spec["url"].split("/")[2] for spec in compat} >= {"t.example.com", "h.example.com"}
    assert all(spec["token_id"] == token_id and spec["allowed_hosts"] == ["*.example.com"] for spec in compat)


def test_a_schedule_keeps_its_token_and_its_runs_carry_it(client, store):
    token_id, auth = make_token(client, ["admin"], ["hooks.example.com"])
    schedule = {"every": 3600, "target": {"request": {"url": "https://hooks.example.com/x", "delay": LATER}}}
    put = client.put("/v1/schedules/s1", json=schedule, headers=auth)
    assert put.status_code == 201 and put.get_json()["token_id"] == token_id
    run = client.post("/v1/schedules/s1/run", headers=ADMIN_AUTH)  # the schedule's token, not the caller's
    assert run.status_code in (200, 201, 202), run.get_json()
    request_id = client.get("/v1/schedules/s1", headers=ADMIN_AUTH).get_json()["last_run_id"]
    spec = stored_spec(store, request_id)
    assert (spec["token_id"], spec["allowed_hosts"], spec["schedule"]) == (token_id, ["hooks.example.com"], "s1")
    assert client.get(f"/v1/requests/{request_id}", headers=ADMIN_AUTH).get_json()["token_id"] == token_id


def test_a_batch_keeps_its_token_and_a_claim_hands_its_allowed_hosts_to_the_worker(client, store):
    token_id, auth = make_token(client, ["admin"], ["hooks.example.com", "192.0.2.0/24"])
    put = client.put("/v1/batches/b1", json={"endpoint": "https://hooks.example.com/in", "max_records": 1},
                     headers=auth)
    assert put.status_code == 201 and put.get_json()["token_id"] == token_id
    added = client.post("/v1/batches/b1/records", json={"n": 1}, headers=auth)
    assert added.status_code in (200, 201, 202), added.get_json()
    batch_id = store.redis.zrange(keys.batch_taken("b1"), 0, -1)[0]
    claimed = store_batches.claim(store, "b1", batch_id, 1, worker="w@test", now_ms=store.redis.time()[0] * 1000,
                                  lease_margin_ms=5000)
    assert tuple(claimed.allowed_hosts) == ("hooks.example.com", "192.0.2.0/24")
    # configured by an admin token of the environment: its sends are held to nothing more
    client.put("/v1/batches/b1", json={"endpoint": "https://hooks.example.com/in", "max_records": 1},
               headers=ADMIN_AUTH)
    assert client.get("/v1/batches/b1", headers=ADMIN_AUTH).get_json()["token_id"] == "env"
    client.post("/v1/batches/b1/records", json={"n": 2}, headers=auth)
    second = [b for b in store.redis.zrange(keys.batch_taken("b1"), 0, -1) if b != batch_id][0]
    again = store_batches.claim(store, "b1", second, 1, worker="w@test", now_ms=store.redis.time()[0] * 1000,
                                lease_margin_ms=5000)
    assert tuple(again.allowed_hosts) == ()


# -- GET /v1/requests?token= -------------------------------------------------------------------

def listed(client, query: str) -> tuple[list[str], str | None]:
    response = client.get(f"/v1/requests?{query}", headers=ADMIN_AUTH)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    return [item["id"] for item in body["items"]], body["next_cursor"]


def test_requests_filter_by_token_newest_first_with_status_and_pages(client):
    token_a, auth_a = make_token(client, ["publish", "admin"])
    _, auth_b = make_token(client, ["publish"])
    made_a = [client.post("/v1/requests", json={"url": "https://x.test/a", "delay": LATER}, headers=auth_a)
              .get_json()["id"] for _ in range(5)]
    made_b = client.post("/v1/requests", json={"url": "https://x.test/b", "delay": LATER}, headers=auth_b).get_json()
    env = client.post("/v1/requests", json={"url": "https://x.test/e", "delay": LATER}, headers=ADMIN_AUTH).get_json()
    newest_first = sorted(made_a, reverse=True)
    assert listed(client, f"token={token_a}") == (newest_first, None)
    assert listed(client, "token=env") == ([env["id"]], None)
    page, cursor = listed(client, f"token={token_a}&limit=2")
    assert (page, cursor) == (newest_first[:2], newest_first[1])
    assert listed(client, f"token={token_a}&limit=2&cursor={cursor}")[0] == newest_first[2:4]
    assert client.delete(f"/v1/requests/{made_a[0]}", headers=auth_a).status_code == 204
    assert listed(client, f"token={token_a}&status=canceled") == ([made_a[0]], None)
    assert listed(client, f"token={token_a}&status=scheduled")[0] == newest_first[:4]
    assert made_b["id"] not in listed(client, f"token={token_a}")[0]
    assert listed(client, "token=01JEAKQ7M3F4W2Z8V6T5R9N1PB") == ([], None)  # unknown or revoked: none


def test_requests_filter_by_token_and_schedule_together(client):
    token_id, auth = make_token(client, ["admin"])
    schedule = {"every": 3600, "target": {"request": {"url": "https://x.test/s", "delay": LATER}}}
    assert client.put("/v1/schedules/s1", json=schedule, headers=auth).status_code == 201
    assert client.put("/v1/schedules/s2", json=schedule, headers=ADMIN_AUTH).status_code == 201
    client.post("/v1/schedules/s1/run", headers=ADMIN_AUTH)
    client.post("/v1/schedules/s2/run", headers=ADMIN_AUTH)
    direct = client.post("/v1/requests", json={"url": "https://x.test/d", "delay": LATER}, headers=auth).get_json()
    run_1 = client.get("/v1/schedules/s1", headers=ADMIN_AUTH).get_json()["last_run_id"]
    run_2 = client.get("/v1/schedules/s2", headers=ADMIN_AUTH).get_json()["last_run_id"]
    assert listed(client, f"token={token_id}")[0] == [direct["id"], run_1]
    assert listed(client, f"token={token_id}&schedule=s1")[0] == [run_1]
    assert listed(client, f"token={token_id}&schedule=s2")[0] == []
    assert listed(client, "token=env&schedule=s2")[0] == [run_2]


@pytest.mark.parametrize("value", ["", "nope", "01jeakq7m3f4w2z8v6t5r9n1pb", "ENV", "01JEAKQ7M3F4W2Z8V6T5R9N1P*",
                                   "env:x", "x" * 300])
def test_a_bad_token_filter_is_422_naming_it(client, value):
    response = client.get("/v1/requests", query_string={"token": value}, headers=ADMIN_AUTH)
    assert response.status_code == 422, response.get_json()
    assert "token" in response.get_json()["errors"]


def test_the_api_document_describes_the_token_filter_and_fields(client):
    document = client.get("/openapi.json", headers=ADMIN_AUTH).get_json()
    parameters = {p["name"]: p for p in document["paths"]["/v1/requests"]["get"]["parameters"]}
    assert parameters["token"]["schema"]["pattern"].startswith("^(env|")
    schemas = document["components"]["schemas"]
    for name in ("Request", "Schedule", "Batch"):
        assert schemas[name]["properties"]["token_id"]["type"] == ["string", "null"] or \
            schemas[name]["properties"]["token_id"].get("nullable"), name


# -- the dashboard -------------------------------------------------------------------------------

def test_the_dashboard_shows_a_requests_token_and_links_to_that_tokens_requests(client, redis_url, sender):
    token_id, auth = make_token(client, ["publish"])
    made = client.post("/v1/requests", json={"url": "https://x.test/ui", "delay": LATER}, headers=auth).get_json()
    other = client.post("/v1/requests", json={"url": "https://x.test/o", "delay": LATER},
                        headers=ADMIN_AUTH).get_json()
    dashboard = create_app(make_settings(redis_url), publisher=Publisher(sender)).test_client()  # tokens off
    page = Page(dashboard.get(f"/ui/requests/{made['id']}").get_data(as_text=True), "http://localhost/")
    link = page.link(token_id)
    assert link.href == f"http://localhost/ui/requests?token={token_id}"
    listing = dashboard.get(link.href)
    assert listing.status_code == 200
    text = listing.get_data(as_text=True)
    assert made["id"] in text and other["id"] not in text and f"made by token <code>{token_id}</code>" in text
    everything = dashboard.get("/ui/requests").get_data(as_text=True)
    assert f"/ui/requests?token={token_id}" in everything and "/ui/requests?token=env" in everything
    assert dashboard.get("/ui/requests?token=nope").status_code == 422


def test_the_dashboard_shows_the_token_of_a_schedule_and_of_a_batch(client, redis_url, sender):
    token_id, auth = make_token(client, ["admin"])
    client.put("/v1/schedules/s1", json={"every": 3600, "target": {"request": {"url": "https://x.test/s"}}},
               headers=auth)
    client.put("/v1/batches/b1", json={"endpoint": "https://x.test/in"}, headers=auth)
    dashboard = create_app(make_settings(redis_url), publisher=Publisher(sender)).test_client()  # tokens off
    for path in ("/ui/schedules", "/ui/batches/b1"):
        page = Page(dashboard.get(path).get_data(as_text=True), "http://localhost/")
        assert page.link(token_id).href == f"http://localhost/ui/requests?token={token_id}", path


def test_each_scoped_token_has_its_own_idempotency_keys(client, store):
    """The same key from two tokens makes two requests: one token's key never replays another's
    request (its url, headers, body) nor refuses its body as different."""
    body = {"url": "https://x.test/", "delay": LATER}
    key = {"Idempotency-Key": "order-1"}
    (first_id, first), (_, second) = make_token(client, ["publish", "read"]), make_token(client, ["publish", "read"])
    made = {}
    for name, auth in (("first", first), ("second", second), ("env", ADMIN_AUTH)):
        response = client.post("/v1/requests", json=body, headers={**auth, **key})
        assert response.status_code == 201, (name, response.get_json())
        made[name] = response.get_json()["id"]
    assert len(set(made.values())) == 3
    for name, auth in (("first", first), ("second", second), ("env", ADMIN_AUTH)):
        replay = client.post("/v1/requests", json=body, headers={**auth, **key})
        assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
        assert replay.get_json()["id"] == made[name]
    other_body = client.post("/v1/requests", json={**body, "delay": LATER + 1}, headers={**second, **key})
    assert other_body.status_code == 422
    assert store.redis.exists(keys.idempotency("order-1", first_id), keys.idempotency("order-1")) == 2


def test_bulk_cancel_by_token_cancels_only_what_that_token_made(client, store):
    token_id, auth = make_token(client, ["publish"])
    mine = [client.post("/v1/requests", json={"url": f"https://x.test/{n}", "delay": LATER}, headers=auth)
            .get_json()["id"] for n in range(3)]
    theirs = client.post("/v1/requests", json={"url": "https://x.test/9", "delay": LATER},
                         headers=ADMIN_AUTH).get_json()["id"]
    only_url = client.post("/v1/requests/cancel", json={"token": token_id, "url_prefix": "https://x.test/1"},
                           headers=ADMIN_AUTH)
    assert only_url.status_code == 200 and only_url.get_json() == {"canceled": 1}
    rest = client.post("/v1/requests/cancel", json={"token": token_id}, headers=ADMIN_AUTH)
    assert rest.get_json() == {"canceled": 2}
    statuses = {rid: client.get(f"/v1/requests/{rid}", headers=ADMIN_AUTH).get_json()["status"]
                for rid in [*mine, theirs]}
    assert statuses == {**{rid: "canceled" for rid in mine}, theirs: "scheduled"}
    assert client.post("/v1/requests/cancel", json={"token": "env", "status": ["scheduled"]},
                       headers=ADMIN_AUTH).get_json() == {"canceled": 1}
    bad = client.post("/v1/requests/cancel", json={"token": "nope"}, headers=ADMIN_AUTH)
    assert bad.status_code == 422 and "token" in json.dumps(bad.get_json())
