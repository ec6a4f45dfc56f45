"""/v1/batches through the Flask app on a real Redis: every route, every validation rule."""
from __future__ import annotations

import json

import pytest

from app import create_app
from app.core.batches import BatchForwarder
from app.core.outcome import FAILED, SUCCEEDED, Outcome
from app.core.publish import Publisher
from app.core.task_names import SEND_BATCHES
from app.extensions import services
from tests.support.settings import make_settings

URL = "http://127.0.0.1:9/in"
MAX_BODY = 1024


@pytest.fixture
def app(redis_url, sender):
    return create_app(make_settings(redis_url, max_body_bytes=MAX_BODY), publisher=Publisher(sender))


@pytest.fixture
def client(app):
    return app.test_client()


def put(client, name="events", **body):
    return client.put(f"/v1/batches/{name}", json={"endpoint": URL, **body})


def sends(sender) -> list[list]:
    """Every [name, batch id, attempt] published, in order."""
    return [[args[0], batch_id, attempt] for name, args, _ in sender.sent if name == SEND_BATCHES
            for batch_id, attempt in args[1]]


def test_put_creates_then_replaces_and_get_shows_config_and_counts(client):
    response = put(client, max_records=5, max_bytes=2048, interval=2.5, headers={"X-Key": "k"},
                   retry={"max_attempts": 4, "backoff_base": 1}, timeout=5)
    assert response.status_code == 201
    body = response.get_json()
    assert body == {"name": "events", "endpoint": URL, "max_records": 5, "max_bytes": 2048, "interval": 2.5,
                    "headers": {"X-Key": "k"}, "retry": {"max_attempts": 4, "backoff_base": 1.0}, "timeout": 5.0,
                    "created_at": body["created_at"], "pending": 0, "in_flight": 0, "sent_batches": 0,
                    "sent_records": 0, "dead_batches": 0, "last_sent_at": None, "last_status_code": None,
                    "last_error": None, "token_id": None}
    assert put(client).status_code == 200
    replaced = client.get("/v1/batches/events").get_json()  # PUT replaces: left out, back to the defaults
    assert (replaced["max_records"], replaced["max_bytes"], replaced["interval"], replaced["headers"],
            replaced["retry"], replaced["timeout"]) == (10, 1048576, 10.0, {}, {"max_attempts": 3,
                                                                                "backoff_base": 2.0}, 30.0)
    assert [b["name"] for b in client.get("/v1/batches").get_json()["items"]] == ["events"]


def test_records_are_accepted_with_ids_and_a_full_batch_is_published(client, sender):
    put(client, max_records=3)
    one = client.post("/v1/batches/events/records", json={"user_id": 1})
    assert one.status_code == 202 and set(one.get_json()) == {"id"}
    many = client.post("/v1/batches/events/records/batch", json={"records": [2, None, "x", [4]]})
    assert many.status_code == 202
    ids = many.get_json()["ids"]
    assert len(ids) == 4 and one.get_json()["id"] not in ids
    assert len(sends(sender)) == 1
    assert client.get("/v1/batches/events").get_json()["pending"] == 2


def test_a_json_null_record_is_a_record(client):
    put(client)
    response = client.post("/v1/batches/events/records", data="null", content_type="application/json")
    assert response.status_code == 202
    assert client.get("/v1/batches/events").get_json()["pending"] == 1


def test_delete_removes_the_batch(client):
    put(client)
    client.post("/v1/batches/events/records", json=1)
    assert client.delete("/v1/batches/events").status_code == 204
    assert client.get("/v1/batches/events").status_code == 404
    assert client.delete("/v1/batches/events").status_code == 404


def test_dead_batches_are_listed_and_redriven(app, client, sender):
    put(client, max_records=2)
    client.post("/v1/batches/events/records/batch", json={"records": [{"a": 1}, {"b": 2}]})
    [[name, batch_id, attempt]] = sends(sender)
    with app.app_context():
        forwarder = BatchForwarder(services().store, Publisher(sender), services().settings)
        forwarder.finish(forwarder.claim(name, batch_id, attempt, "worker@test"), Outcome(FAILED, status_code=410))
    dead = client.get("/v1/batches/events/dead")
    assert dead.status_code == 200
    assert dead.get_json() == {"items": [{"id": batch_id, "records": [{"a": 1}, {"b": 2}], "attempts": 1,
                                          "last_status_code": 410, "error": "HTTP 410"}]}
    assert client.get("/v1/batches/events").get_json()["dead_batches"] == 1
    assert client.get("/v1/batches/events/dead?limit=0").status_code == 422
    redrive = client.post("/v1/batches/events/dead/redrive")
    assert redrive.status_code == 200 and redrive.get_json() == {"moved": 1}
    assert sends(sender)[-1] == ["events", batch_id, 1]
    assert client.get("/v1/batches/events/dead").get_json() == {"items": []}


def test_a_records_receipt_follows_it_from_pending_to_sent(app, client, sender):
    put(client, max_records=2)
    record_id = client.post("/v1/batches/events/records", json={"a": 1}).get_json()["id"]
    response = client.get(f"/v1/batches/events/records/{record_id}")
    assert response.status_code == 200
    assert response.get_json() == {"id": record_id, "state": "pending", "batch_id": None, "sent_at": None,
                                   "status_code": None}
    client.post("/v1/batches/events/records", json={"b": 2})
    [[name, batch_id, attempt]] = sends(sender)
    assert client.get(f"/v1/batches/events/records/{record_id}").get_json()["batch_id"] == batch_id
    with app.app_context():
        forwarder = BatchForwarder(services().store, Publisher(sender), services().settings)
        forwarder.finish(forwarder.claim(name, batch_id, attempt, "worker@test"), Outcome(SUCCEEDED, status_code=204))
    sent = client.get(f"/v1/batches/events/records/{record_id}").get_json()
    assert (sent["state"], sent["batch_id"], sent["status_code"]) == ("sent", batch_id, 204)
    assert sent["sent_at"].endswith("Z")


@pytest.mark.parametrize("record_id", ["x", "01JEAKQ7M3F4W2Z8V6T5R9N1PB.0", "01JEAKQ7M3F4W2Z8V6T5R9N1PB.7",
                                       "01JEAKQ7M3F4W2Z8V6T5R9N1PB.1%00", "a.b", "%E9.1", "9" * 300])
def test_an_unknown_or_malformed_record_id_is_404_in_the_error_shape(client, record_id):
    put(client)
    client.post("/v1/batches/events/records", json={"a": 1})
    response = client.get(f"/v1/batches/events/records/{record_id}")
    assert response.status_code == 404
    body = response.get_json()
    assert (body["code"], body["status"]) == (404, "Not Found") and "No record" in body["message"]


def test_get_records_batch_is_not_a_record_but_the_batch_route(client):
    put(client)
    response = client.get("/v1/batches/events/records/batch")
    assert response.status_code == 405 and "GET" not in response.headers["Allow"]


@pytest.mark.parametrize("field, value", [
    ("endpoint", "ftp://example.com/x"),
    ("endpoint", "http://user:pw@example.com/"),
    ("endpoint", "/relative"),
    ("endpoint", 5),
    ("max_records", 0),
    ("max_records", 10001),
    ("max_records", "10"),
    ("max_records", 2.5),
    ("max_bytes", 15),
    ("max_bytes", 16 * 1024 * 1024 + 1),
    ("interval", -1),
    ("interval", 86401),
    ("interval", "soon"),
    ("headers", {"Content-Length": "5"}),
    ("headers", {"X-Bad": "a\r\nb"}),
    ("headers", ["X-A"]),
    ("retry", {"max_attempts": 0}),
    ("retry", {"backoff_base": -1}),
    ("retry", {"backoff_max": 5}),
    ("retry", 3),
    ("timeout", 0.5),
    ("timeout", 1801),
    ("size", 10),
])
def test_each_bad_config_field_is_422_naming_the_field(client, field, value):
    response = put(client, **{field: value})
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["code"] == 422 and body["status"] == "Unprocessable Entity"
    assert list(body["errors"]) == [field]
    assert client.get("/v1/batches/events").status_code == 404


def test_a_missing_endpoint_is_422(client):
    response = client.put("/v1/batches/events", json={"max_records": 5})
    assert response.status_code == 422 and list(response.get_json()["errors"]) == ["endpoint"]


def test_a_bad_name_is_422_on_put_and_404_elsewhere(client):
    response = put(client, name="x" * 81)
    assert response.status_code == 422 and response.get_json()["errors"] == {"name": ["Must match "
                                                                                       "[A-Za-z0-9_-]{1,80}."]}
    assert client.get("/v1/batches/a:b").status_code == 404
    assert client.post("/v1/batches/a:b/records", json=1).status_code == 404


@pytest.mark.parametrize("path", ["/v1/batches/events/records", "/v1/batches/events/records/batch"])
def test_malformed_json_is_400(client, path):
    put(client)
    response = client.post(path, data='{"a": ', content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["code"] == 400


def test_malformed_json_on_put_is_400(client):
    response = client.put("/v1/batches/events", data="{", content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("method, path", [("put", "/v1/batches/events"), ("post", "/v1/batches/events/records"),
                                          ("post", "/v1/batches/events/records/batch")])
def test_a_body_that_is_not_json_is_415(client, method, path):
    put(client)
    response = getattr(client, method)(path, data="a=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.get_json()["code"] == 415


def test_records_batch_validation(client):
    put(client)
    for body, field in (({"records": []}, "records"), ({"records": list(range(1001))}, "records"),
                        ({"records": "x"}, "records"), ({}, "records"), ({"records": [1], "extra": 1}, "extra")):
        response = client.post("/v1/batches/events/records/batch", json=body)
        assert response.status_code == 422, body
        assert list(response.get_json()["errors"]) == [field]


def test_nan_is_422_not_a_broken_batch(client):
    put(client)
    response = client.post("/v1/batches/events/records/batch", data='{"records": [1, NaN]}',
                           content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"records": {"1": ["NaN and Infinity are not JSON"]}}
    assert client.get("/v1/batches/events").get_json()["pending"] == 0


def test_a_record_over_the_batch_max_bytes_is_413_and_nothing_is_stored(client):
    put(client, max_bytes=64)
    response = client.post("/v1/batches/events/records/batch", json={"records": [1, "x" * 70]})
    assert response.status_code == 413
    body = response.get_json()
    assert body["code"] == 413 and body["errors"] == {"records": {"1": ["at most 62 bytes of JSON"]}}
    assert client.get("/v1/batches/events").get_json()["pending"] == 0
    assert client.post("/v1/batches/events/records", json="x" * 70).status_code == 413


def test_a_record_over_the_record_size_limit_is_413(client):
    put(client, max_bytes=1024 * 1024)
    response = client.post("/v1/batches/events/records", json={"blob": "x" * MAX_BODY})
    assert response.status_code == 413
    assert response.get_json()["errors"] == {"records": {"0": [f"at most {MAX_BODY} bytes"]}}


def test_a_request_over_the_request_size_limit_is_413(client, app):
    put(client)
    size = app.config["MAX_CONTENT_LENGTH"] + 1
    response = client.post("/v1/batches/events/records/batch", data=b'{"records": ["' + b"x" * size + b'"]}',
                           content_type="application/json")
    assert response.status_code == 413


@pytest.mark.parametrize("method, path, body", [
    ("get", "/v1/batches/nowhere", None),
    ("delete", "/v1/batches/nowhere", None),
    ("post", "/v1/batches/nowhere/records", 1),
    ("post", "/v1/batches/nowhere/records/batch", {"records": [1]}),
    ("get", "/v1/batches/nowhere/dead", None),
    ("post", "/v1/batches/nowhere/dead/redrive", None),
    ("get", "/v1/batches/nowhere/records/01JEAKQ7M3F4W2Z8V6T5R9N1PB.1", None),
    ("get", "/v1/batches/nowhere/records/bad-id", None),
])
def test_an_unknown_batch_is_404(client, method, path, body):
    kwargs = {} if body is None else {"json": body}
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == 404
    assert response.get_json()["status"] == "Not Found"


def test_the_log_batch_takes_records_before_any_put_when_the_environment_configures_it(redis_url, sender):
    settings = make_settings(redis_url, webhook_post_endpoint=URL, webhook_batch_size=2, webhook_batch_interval_s=5)
    client = create_app(settings, publisher=Publisher(sender)).test_client()
    body = client.get("/v1/batches/log").get_json()  # configured at start-up
    assert (body["endpoint"], body["max_records"], body["interval"]) == (URL, 2, 5.0)
    client.delete("/v1/batches/log")
    assert client.post("/v1/batches/log/records/batch", json={"records": [{"a": 1}, {"b": 2}]}).status_code == 202
    assert len(sends(sender)) == 1
    put_response = client.put("/v1/batches/log", json={"endpoint": URL + "/2", "max_records": 3})
    assert put_response.status_code == 200 and put_response.get_json()["max_records"] == 3


def test_the_openapi_document_describes_the_batch_routes(client):
    paths = json.loads(client.get("/openapi.json").data)["paths"]
    assert {"/v1/batches", "/v1/batches/{name}", "/v1/batches/{name}/records", "/v1/batches/{name}/records/batch",
            "/v1/batches/{name}/dead", "/v1/batches/{name}/dead/redrive",
            "/v1/batches/{name}/records/{record_id}"} <= set(paths)
    receipt = paths["/v1/batches/{name}/records/{record_id}"]["get"]["responses"]["200"]["content"]
    assert receipt["application/json"]["example"]["state"] == "sent"
    assert "requestBody" in paths["/v1/batches/{name}/records"]["post"]


def pending_texts(app, name="events") -> list[str]:
    from app.storage import keys

    with app.app_context():
        return services().store.redis.lrange(keys.batch_pending(name), 0, -1)


def test_records_are_stored_exactly_as_sent(app, client):
    put(client)
    body = '{ "records" : [ {"a": 1.0, "big": 12345678901234567890},\n "é\\u00e9" , [ ] ] }'
    assert client.post("/v1/batches/events/records/batch", data=body.encode(),
                       content_type="application/json").status_code == 202
    assert client.post("/v1/batches/events/records", data=b'  {"b":\n 2}  ',
                       content_type="application/json").status_code == 202
    assert pending_texts(app) == ['{"a": 1.0, "big": 12345678901234567890}', '"é\\u00e9"', "[ ]", '{"b":\n 2}']


@pytest.mark.parametrize("body", [b'{"records": [1]} x', b'{"records": [1,]}', b'{"records": [1] "x": 2}', b"[1]",
                                  b'{"records": [1}', b"", b"   ", b'{records: [1]}', b'{"records": [1]}\xff',
                                  b'{"records": [1], "x": NaN}'])
def test_malformed_batch_bodies_are_400(client, body):
    put(client)
    response = client.post("/v1/batches/events/records/batch", data=body, content_type="application/json")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["message"].startswith("Malformed JSON body")


@pytest.mark.parametrize("body", [b"1 2", b"", b'{"a": 1', b"\xff", b"nul"])
def test_malformed_single_records_are_400(client, body):
    put(client)
    response = client.post("/v1/batches/events/records", data=body, content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("body, errors", [
    ('{"records": {"a": 1}}', {"records": ["Not a valid list."]}),
    ('{"records": [1], "records": 5}', {"records": ["Not a valid list."]}),
    ('{"records": 5, "records": [1], "n": 1}', {"n": ["Unknown field."]}),
    ('{"items": [1]}', {"items": ["Unknown field."], "records": ["Missing data for required field."]}),
    ('{"records": [1, [Infinity]]}', {"records": {"1": ["NaN and Infinity are not JSON"]}}),
    ('{"records": [1, -Infinity]}', {"records": {"1": ["NaN and Infinity are not JSON"]}}),
])
def test_invalid_batch_bodies_are_422_per_field(client, body, errors):
    put(client)
    response = client.post("/v1/batches/events/records/batch", data=body, content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["errors"] == errors


def test_a_nan_single_record_is_422(client):
    put(client)
    response = client.post("/v1/batches/events/records", data=b"NaN", content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"records": {"0": ["NaN and Infinity are not JSON"]}}


def test_a_sent_records_receipt_expires_after_the_retention_on_the_virtual_clock(settings, sender, store):
    from dataclasses import replace

    from app.core import clock
    from app.storage import keys

    app = create_app(replace(settings, clock="virtual"), publisher=Publisher(sender))
    client = app.test_client()
    try:
        put(client, max_records=1)
        record_id = client.post("/v1/batches/events/records", json=[1]).get_json()["id"]
        [[name, batch_id, attempt]] = sends(sender)
        with app.app_context():
            forwarder = BatchForwarder(services().store, Publisher(sender), services().settings)
            forwarder.finish(forwarder.claim(name, batch_id, attempt, "worker@test"),
                             Outcome(SUCCEEDED, status_code=200))
        client.post("/v1/clock/advance", json={"seconds": settings.retention_s - 60})
        assert client.get(f"/v1/batches/events/records/{record_id}").get_json()["state"] == "sent"
        client.post("/v1/clock/advance", json={"seconds": 60})
        assert client.get(f"/v1/batches/events/records/{record_id}").status_code == 404
        # The advance did beat's work: the receipt is gone from Redis, not only hidden.
        assert not store.redis.exists(keys.batch_sent("events"), keys.batch_receipts("events"))
    finally:
        clock.use_real()
