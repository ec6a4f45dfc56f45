"""/compat/forwarder (the webhook batch forwarder) on a real Redis: /healthz, POST /log decoding as
the Go service did (unknown fields dropped, missing ones zero-valued, Go's type errors), its error
bodies, and, through a real worker and beat, records reaching the endpoint in batches."""
from __future__ import annotations

import json

import pytest

from app import create_app
from app.core.batches import ENV_BATCH, BatchForwarder
from app.core.publish import Publisher
from app.core.task_names import SEND_BATCHES
from app.extensions import services
from tests.support.http_target import Reply
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

URL = "http://127.0.0.1:9/in"
README_RECORD = {
    "user_id": 1,
    "total": 1.65,
    "title": "delectus aut autem",
    "meta": {
        "logins": [{"time": "2020-08-08T01:52:50Z", "ip": "0.0.0.0"}],
        "phone_numbers": {"home": "555-1212", "mobile": "123-5555"},
    },
    "completed": False,
}
ZERO = {"user_id": 0, "total": 0, "title": "", "meta": {"logins": [], "phone_numbers": {"home": "", "mobile": ""}},
        "completed": False}


@pytest.fixture
def app(redis_url, sender):
    return create_app(make_settings(redis_url, webhook_post_endpoint=URL, webhook_batch_size=1, max_body_bytes=4096),
                      publisher=Publisher(sender))


@pytest.fixture
def client(app):
    return app.test_client()


def forwarded(app, sender) -> list:
    """The records of every batch taken so far, in order (batch size 1: one record each)."""
    records = []
    with app.app_context():
        forwarder = BatchForwarder(services().store, Publisher(sender), app.config["HTQ_SETTINGS"])
        for name, args, _ in list(sender.sent):
            if name == SEND_BATCHES and args[0] == ENV_BATCH:
                for batch_id, attempt in args[1]:
                    records += json.loads(forwarder.claim(ENV_BATCH, batch_id, attempt, "worker@test").body)
    return records


def post(client, body):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post("/compat/forwarder/log", data=raw, content_type="application/json")


def error(response) -> str:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert set(response.get_json()) == {"message"}
    return response.get_json()["message"]


def test_healthz_says_ok(client):
    response = client.get("/compat/forwarder/healthz")
    assert response.status_code == 200 and response.get_data(as_text=True) == "OK"


def test_the_readme_record_is_accepted_and_forwarded_as_sent(app, client, sender):
    response = post(client, README_RECORD)
    assert response.status_code == 201 and response.get_data(as_text=True) == "accepted"
    assert forwarded(app, sender) == [README_RECORD]


def test_unknown_fields_are_dropped_and_missing_ones_zero_valued(app, client, sender):
    assert post(client, {"user_id": 7, "extra": {"x": 1}, "meta": {"logins": [{"ip": "1.2.3.4", "port": 80}],
                                                                    "other": 1}}).status_code == 201
    assert post(client, {"user_id": 8, "title": None, "meta": None, "total": None}).status_code == 201
    first, second = forwarded(app, sender)
    assert first == {**ZERO, "user_id": 7, "meta": {"logins": [{"time": "0001-01-01T00:00:00Z", "ip": "1.2.3.4"}],
                                                    "phone_numbers": {"home": "", "mobile": ""}}}
    assert second == {**ZERO, "user_id": 8}


def test_field_names_match_case_insensitively_as_in_go(app, client, sender):
    assert post(client, {"USER_ID": 3, "Title": "t", "Meta": {"Phone_Numbers": {"HOME": "1"}}}).status_code == 201
    assert forwarded(app, sender) == [{**ZERO, "user_id": 3, "title": "t",
                                       "meta": {"logins": [], "phone_numbers": {"home": "1", "mobile": ""}}}]


def test_numbers_and_times_are_written_back_as_go_writes_them(app, client, sender):
    record = {"user_id": 2, "total": 3.0, "meta": {"logins": [
        {"time": "2020-08-08T03:52:50.120+02:00"}, {"time": "2020-08-08T01:52:50.000+00:00"}]}}
    assert post(client, record).status_code == 201
    (sent,) = forwarded(app, sender)
    assert sent["total"] == 3 and isinstance(sent["total"], int)
    assert [login["time"] for login in sent["meta"]["logins"]] == ["2020-08-08T03:52:50.12+02:00",
                                                                   "2020-08-08T01:52:50Z"]


@pytest.mark.parametrize("body", [{}, {"user_id": 0}, {"user_id": None}, {"title": "no id"}, "null"])
def test_a_missing_user_id_is_refused(client, body):
    assert error(post(client, body)) == "can not post empty user id"


@pytest.mark.parametrize("body, expected", [
    ('{"user_id": "1"}', "decode: json: cannot unmarshal string into Go struct field Log.user_id of type int"),
    ('{"user_id": 1.5}', "decode: json: cannot unmarshal number 1.5 into Go struct field Log.user_id of type int"),
    ('{"user_id": 1e2}', "decode: json: cannot unmarshal number 1e2 into Go struct field Log.user_id of type int"),
    ('{"user_id": 9223372036854775808}',
     "decode: json: cannot unmarshal number 9223372036854775808 into Go struct field Log.user_id of type int"),
    ('{"user_id": true}', "decode: json: cannot unmarshal bool into Go struct field Log.user_id of type int"),
    ('{"user_id": 1, "total": "1.65"}',
     "decode: json: cannot unmarshal string into Go struct field Log.total of type float64"),
    ('{"user_id": 1, "title": 5}',
     "decode: json: cannot unmarshal number 5 into Go struct field Log.title of type string"),
    ('{"user_id": 1, "completed": "no"}',
     "decode: json: cannot unmarshal string into Go struct field Log.completed of type bool"),
    ('{"user_id": 1, "meta": {"logins": {}}}',
     "decode: json: cannot unmarshal object into Go struct field Log.meta.logins of type []struct"),
    ('{"user_id": 1, "meta": {"logins": [{"ip": 1}]}}',
     "decode: json: cannot unmarshal number 1 into Go struct field Log.meta.logins.ip of type string"),
    ('{"user_id": 1, "meta": []}', "decode: json: cannot unmarshal array into Go struct field Log.meta of type struct"),
    ("[1]", "decode: json: cannot unmarshal array into Go value of type main.Log"),
    ('"text"', "decode: json: cannot unmarshal string into Go value of type main.Log"),
    ("", "decode: EOF"),
])
def test_bad_types_are_400_with_gos_decode_message(client, body, expected):
    assert error(post(client, body)) == expected


@pytest.mark.parametrize("time_text", ["yesterday", "2020-08-08", "2020-08-08 01:52:50Z", "2020-02-30T00:00:00Z",
                                       "2020-08-08T24:00:00Z", "2020-08-08T01:52:50"])
def test_a_login_time_that_is_not_rfc_3339_is_a_decode_error(client, time_text):
    message = error(post(client, {"user_id": 1, "meta": {"logins": [{"time": time_text}]}}))
    assert message.startswith(f'decode: parsing time "{time_text}"')


def test_a_login_time_that_is_not_a_string_is_a_decode_error(client):
    message = error(post(client, {"user_id": 1, "meta": {"logins": [{"time": 1596851570}]}}))
    assert message == "decode: Time.UnmarshalJSON: input is not a JSON string"


@pytest.mark.parametrize("raw", ['{"user_id": 1', "{user_id: 1}", '{"user_id": NaN}', b"\xff{}", "[" * 100_000])
def test_malformed_json_is_a_decode_error(redis_url, raw):
    client = create_app(make_settings(redis_url, webhook_post_endpoint=URL)).test_client()
    assert error(post(client, raw)).startswith("decode: ")


def test_a_record_over_the_body_limit_is_413(client):
    response = post(client, {"user_id": 1, "title": "x" * 5000})
    assert response.status_code == 413 and "too large" in response.get_json()["message"]


def test_without_a_configured_log_batch_records_are_refused_with_503(redis_url):
    client = create_app(make_settings(redis_url)).test_client()
    response = post(client, README_RECORD)
    assert response.status_code == 503
    assert "WEBHOOK_POST_ENDPOINT" in response.get_json()["message"]
    assert client.get("/compat/forwarder/healthz").status_code == 200


def test_the_log_batch_follows_the_webhook_settings(client):
    batch = client.get("/v1/batches/log").get_json()
    assert (batch["endpoint"], batch["max_records"], batch["retry"]) == (URL, 1, {"max_attempts": 4,
                                                                                  "backoff_base": 2.0})


# -- end to end: a real worker and beat POST the batches ---------------------------------------


def test_records_reach_the_endpoint_in_batches_by_size_then_by_interval(redis_url, http_target, services_factory):
    endpoint = http_target.url + "/collect"
    env = {"WEBHOOK_POST_ENDPOINT": endpoint, "WEBHOOK_BATCH_SIZE": "3", "WEBHOOK_BATCH_INTERVAL": "1s"}
    processes = services_factory(**env)
    processes.start_worker(concurrency=2)
    processes.start_beat()
    client = create_app(make_settings(redis_url, webhook_post_endpoint=endpoint, webhook_batch_size=3,
                                      webhook_batch_interval_s=1.0)).test_client()
    records = [{**README_RECORD, "user_id": n} for n in range(1, 5)]
    for record in records:
        assert post(client, record).status_code == 201
    http_target.wait_for(2, "/collect", timeout_s=30)
    first, second = http_target.requests_to("/collect")
    assert json.loads(first.body) == records[:3]  # by size, at once
    assert json.loads(second.body) == records[3:]  # the rest once the interval passed
    assert first.headers["Content-Type"] == "application/json" and first.headers["Htq-Batch-Id"]
    wait_until(lambda: "batch log/" in processes.log("worker") and " -> 200 in " in processes.log("worker"), 10)


def test_a_failing_endpoint_keeps_the_batch_as_dead_and_the_service_keeps_accepting(
        redis_url, http_target, services_factory):
    endpoint = http_target.url + "/down"
    for _ in range(4):
        http_target.reply("/down", Reply(status=500, body=b"down"))
    processes = services_factory(WEBHOOK_POST_ENDPOINT=endpoint, WEBHOOK_BATCH_SIZE="1")
    processes.start_worker(concurrency=1)
    processes.start_beat()
    client = create_app(make_settings(redis_url, webhook_post_endpoint=endpoint, webhook_batch_size=1)).test_client()
    assert post(client, README_RECORD).status_code == 201
    wait_until(lambda: client.get("/v1/batches/log").get_json()["dead_batches"] == 1, 30, 0.1)
    attempts = http_target.requests_to("/down")
    assert len(attempts) == 4  # the first POST and 3 retries
    assert all(json.loads(attempt.body) == [README_RECORD] for attempt in attempts)
    assert 5.5 < attempts[3].at - attempts[0].at < 12  # 2 s apart
    assert client.get("/v1/batches/log/dead").get_json()["items"][0]["records"] == [README_RECORD]
    assert post(client, {**README_RECORD, "user_id": 2}).status_code == 201  # still accepting
    http_target.wait_for(5, "/down", timeout_s=15)
    assert json.loads(http_target.requests_to("/down")[4].body) == [{**README_RECORD, "user_id": 2}]
