"""/v1/tokens and scoped auth: every route against every scope, 401/403, revocation, storage."""
from __future__ import annotations

import pytest

from app import create_app
from app.core.publish import Publisher
from app.core.tokens import ADMIN, CONSUME, PUBLISH, READ, SCOPES, digest
from app.scopes import OPEN, ROUTE_SCOPES, SQS_ROUTE, scope_for
from app.storage import keys
from tests.support.settings import make_settings

ADMIN_SECRET = "env-admin-secret"
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_SECRET}"}
# A value for each path argument that the route's converter accepts.
PATH_VALUES = {"name": "q1", "request_id": "01JEAKQ7M3F4W2Z8V6T5R9N1PB", "message_id": "00000000002aJjSj8IlP",
               "record_id": "1.1", "public_id": "0b7e6f1c-5b0e-4c53-9f31-5a2c3e1f7d10",
               "timer_id": "0b7e6f1c-5b0e-4c53-9f31-5a2c3e1f7d10", "token_id": "01JEAKQ7M3F4W2Z8V6T5R9N1PB",
               "key": "k", "filename": "x.css", "unknown": "nope"}


@pytest.fixture
def app(redis_url, sender):
    return create_app(make_settings(redis_url, api_tokens=(ADMIN_SECRET,), long_poll_timeout_s=0.1),
                      publisher=Publisher(sender))


@pytest.fixture
def client(app):
    return app.test_client()


def make_token(client, scopes, allowed_hosts=(), name="t"):
    response = client.post("/v1/tokens", json={"name": name, "scopes": list(scopes),
                                               "allowed_hosts": list(allowed_hosts)}, headers=ADMIN_AUTH)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def assert_error(response, code: int):
    assert response.status_code == code, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == code and isinstance(body["message"], str) and body["status"]


# -- the table ---------------------------------------------------------------------------------

def test_every_registered_route_and_method_has_a_scope_and_the_table_names_no_other(app):
    registered = set()
    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            registered.add((rule.endpoint, method))
            scope_for(rule.endpoint, method)  # raises UnmappedRoute when missing
    tabled = {(endpoint, method) for endpoint, methods in ROUTE_SCOPES.items() for method in methods}
    assert tabled == registered


def _api_routes(app):
    """(method, url, scope) of every route the bearer token guards (not /ui, which has its login)."""
    adapter = app.url_map.bind("localhost")
    routes = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if rule.rule.startswith("/ui"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            scope = scope_for(rule.endpoint, method)
            if scope in (OPEN, SQS_ROUTE):
                continue
            url = rule.build({arg: PATH_VALUES[arg] for arg in rule.arguments}, append_unknown=False)[1]
            assert adapter.match(url, method=method)[0] == rule.endpoint, url
            routes.append((method, url, scope))
    return routes


def test_every_route_answers_each_scope_as_the_table_says(app, client):
    routes = _api_routes(app)
    assert len(routes) > 60
    secrets = {scope: make_token(client, [scope], name=scope)["token"] for scope in SCOPES}
    checked = {scope: 0 for scope in SCOPES}
    for method, url, needed in routes:
        assert_error(client.open(url, method=method), 401)
        assert_error(client.open(url, method=method, headers=bearer("htq_not-a-token")), 401)
        for scope, secret in secrets.items():
            response = client.open(url, method=method, headers=bearer(secret))
            if scope == needed or scope == ADMIN:
                assert response.status_code not in (401, 403), (method, url, scope, response.get_json())
            else:
                assert_error(response, 403)
                assert needed in response.get_json()["message"]
            checked[scope] += 1
        assert client.open(url, method=method, headers=ADMIN_AUTH).status_code not in (401, 403), (method, url)
    assert all(checked.values())


def test_the_scopes_the_contract_names(app):
    assert scope_for("requests.Requests", "POST") == PUBLISH
    assert scope_for("queues.receive", "POST") == CONSUME
    assert scope_for("compat_wq.receive", "GET") == CONSUME  # a GET that takes messages
    assert scope_for("queues.redrive", "POST") == ADMIN
    assert scope_for("clock.advance_clock", "POST") == ADMIN
    assert scope_for("tokens.Tokens", "GET") == ADMIN
    assert scope_for("schedules.run_schedule", "POST") == PUBLISH
    assert scope_for("requests.RequestItem", "HEAD") == READ
    assert scope_for("ops.healthz", "GET") is OPEN


# -- /v1/tokens ----------------------------------------------------------------------------------

def test_a_token_is_shown_once_and_stored_only_as_a_hash(client, store):
    created = make_token(client, ["publish", "read"], ["*.Example.com.", "10.1.0.0/16", "::1", "api.example.org"])
    secret = created.pop("token")
    assert secret.startswith("htq_") and len(secret) >= 4 + 43
    assert created["scopes"] == ["read", "publish"]
    assert created["allowed_hosts"] == ["*.example.com", "10.1.0.0/16", "::1", "api.example.org"]
    listed = client.get("/v1/tokens", headers=ADMIN_AUTH).get_json()["items"]
    assert listed == [created]
    assert client.get(f"/v1/tokens/{created['id']}", headers=ADMIN_AUTH).get_json() == created
    stored = [*store.redis.hgetall(keys.tokens()).items(), *store.redis.hgetall(keys.token_digests()).items()]
    assert stored and not any(secret in field or secret in value for field, value in stored)
    assert store.redis.hexists(keys.token_digests(), digest(secret))


def test_revoking_a_token_refuses_it_at_once_in_the_same_process(client):
    created = make_token(client, ["read"])
    assert client.get("/v1/queues", headers=bearer(created["token"])).status_code == 200
    assert client.delete(f"/v1/tokens/{created['id']}", headers=ADMIN_AUTH).status_code == 204
    assert_error(client.get("/v1/queues", headers=bearer(created["token"])), 401)
    assert_error(client.delete(f"/v1/tokens/{created['id']}", headers=ADMIN_AUTH), 404)
    assert_error(client.get(f"/v1/tokens/{created['id']}", headers=ADMIN_AUTH), 404)
    assert client.get("/v1/tokens", headers=ADMIN_AUTH).get_json()["items"] == []


def test_a_scoped_token_cannot_make_tokens_even_with_every_other_scope(client):
    created = make_token(client, ["read", "publish", "consume"])
    assert_error(client.post("/v1/tokens", json={"name": "x", "scopes": ["admin"]},
                             headers=bearer(created["token"])), 403)
    admin = make_token(client, ["admin"])
    assert client.post("/v1/tokens", json={"name": "x", "scopes": ["read"]},
                       headers=bearer(admin["token"])).status_code == 201


@pytest.mark.parametrize("body, field", [
    ({"scopes": ["read"]}, "name"),
    ({"name": "", "scopes": ["read"]}, "name"),
    ({"name": "t"}, "scopes"),
    ({"name": "t", "scopes": []}, "scopes"),
    ({"name": "t", "scopes": ["write"]}, "scopes"),
    ({"name": "t", "scopes": "read"}, "scopes"),
    ({"name": "t", "scopes": ["read"], "allowed_hosts": ["exa mple.com"]}, "allowed_hosts"),
    ({"name": "t", "scopes": ["read"], "allowed_hosts": ["10.0.0.1/8"]}, "allowed_hosts"),
    ({"name": "t", "scopes": ["read"], "allowed_hosts": ["*.example.com/24"]}, "allowed_hosts"),
    ({"name": "t", "scopes": ["read"], "allowed_hosts": ["*"]}, "allowed_hosts"),
    ({"name": "t", "scopes": ["read"], "allowed_hosts": ["*."]}, "allowed_hosts"),
    ({"name": "t", "scopes": ["read"], "allowed_hosts": "example.com"}, "allowed_hosts"),
    ({"name": "t", "scopes": ["read"], "allowed_hosts": ["a.example.com"] * 101}, "allowed_hosts"),
])
def test_a_bad_token_body_is_422_naming_the_field(client, body, field):
    response = client.post("/v1/tokens", json=body, headers=ADMIN_AUTH)
    assert_error(response, 422)
    assert field in response.get_json()["errors"]


def test_an_unknown_token_id_is_404(client):
    assert_error(client.get("/v1/tokens/nope", headers=ADMIN_AUTH), 404)
    assert_error(client.delete("/v1/tokens/01JEAKQ7M3F4W2Z8V6T5R9N1PB", headers=ADMIN_AUTH), 404)


def test_without_api_tokens_every_route_stays_open(redis_url, sender):
    client = create_app(make_settings(redis_url), publisher=Publisher(sender)).test_client()
    assert client.get("/v1/queues").status_code == 200
    assert client.get("/v1/queues", headers=bearer("htq_whatever")).status_code == 200


# -- allowed hosts at creation ------------------------------------------------------------------

def test_a_token_with_allowed_hosts_creates_requests_only_to_them(client):
    secret = make_token(client, ["publish"], ["*.example.com", "203.0.113.0/24"])["token"]
    ok = client.post("/v1/requests", json={"url": "https://api.example.com/x", "delay": 3600}, headers=bearer(secret))
    assert ok.status_code == 201, ok.get_json()
    assert client.post("/v1/requests", json={"url": "http://203.0.113.7/x", "delay": 3600},
                       headers=bearer(secret)).status_code == 201
    refused = client.post("/v1/requests", json={"url": "https://evil.test/x"}, headers=bearer(secret))
    assert_error(refused, 422)
    assert "evil.test" in refused.get_json()["message"] and "url" in refused.get_json()["errors"]
    callback = client.post("/v1/requests", json={"url": "https://api.example.com/x", "delay": 3600,
                                                 "callback_url": "https://example.com/done"}, headers=bearer(secret))
    assert_error(callback, 422)
    assert set(callback.get_json()["errors"]) == {"callback_url"}  # *.example.com is not example.com
    batch = client.post("/v1/requests/batch", json={"requests": [{"url": "https://a.example.com/1"},
                                                                 {"url": "http://198.51.100.1/2"}]},
                        headers=bearer(secret))
    assert_error(batch, 422)
    assert batch.get_json()["errors"] == {"requests": {"1": {"url": ["198.51.100.1 is not among this token's "
                                                                     "allowed hosts."]}}}
    listed = client.get("/v1/requests", headers=ADMIN_AUTH).get_json()["items"]
    assert sorted(item["url"] for item in listed) == ["http://203.0.113.7/x", "https://api.example.com/x"]
    # the same URLs, with a token without allowed hosts: any host
    other = make_token(client, ["publish"])["token"]
    assert client.post("/v1/requests", json={"url": "https://evil.test/x", "delay": 3600},
                       headers=bearer(other)).status_code == 201


def test_allowed_hosts_bind_schedules_batch_endpoints_and_the_compat_profiles(client):
    secret = make_token(client, ["admin"], ["hooks.example.com"])["token"]
    schedule = {"every": 60, "target": {"request": {"url": "https://evil.test/x"}}}
    refused = client.put("/v1/schedules/s1", json=schedule, headers=bearer(secret))
    assert_error(refused, 422)
    assert set(refused.get_json()["errors"]["target"]["request"]) == {"url"}
    schedule["target"]["request"]["url"] = "https://hooks.example.com/x"
    assert client.put("/v1/schedules/s1", json=schedule, headers=bearer(secret)).status_code == 201
    assert_error(client.put("/v1/batches/b1", json={"endpoint": "https://evil.test/in"}, headers=bearer(secret)), 422)
    assert client.put("/v1/batches/b1", json={"endpoint": "https://hooks.example.com/in"},
                      headers=bearer(secret)).status_code == 201
    timers = client.post("/compat/timers/timers", json={"seconds": 60, "url": "https://evil.test/t"},
                         headers=bearer(secret))
    assert timers.status_code == 422 and "evil.test" in timers.get_json()["error"]["details"]
    assert client.post("/compat/timers/timers", json={"seconds": 60, "url": "https://hooks.example.com/t"},
                       headers=bearer(secret)).status_code == 201
    assert_error(client.post("/compat/htq/", json={"url": "https://evil.test/h"}, headers=bearer(secret)), 422)
    assert client.post("/compat/htq/", json={"url": "https://hooks.example.com/h"},
                       headers=bearer(secret)).status_code == 303
