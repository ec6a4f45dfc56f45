"""/v1/schedules through the Flask app on a real Redis: every route and the 422s naming fields."""
from __future__ import annotations

import pytest

from app import create_app
from app.core.publish import Publisher
from tests.support.settings import make_settings

URL = "http://127.0.0.1:9/hook"
TARGET = {"request": {"url": URL, "json": {"a": 1}, "headers": {"X-A": "b"}, "retry": {"max_attempts": 2}}}


@pytest.fixture
def client(redis_url, sender, clock):
    return create_app(make_settings(redis_url), publisher=Publisher(sender), clock_ms=clock).test_client()


def test_put_get_list_replace_delete(client):
    answer = client.put("/v1/schedules/daily", json={"cron": "30 2 * * *", "timezone": "Europe/Berlin",
                                                     "target": TARGET})
    assert answer.status_code == 201, answer.json
    body = answer.json
    assert body["name"] == "daily" and body["cron"] == "30 2 * * *" and body["timezone"] == "Europe/Berlin"
    assert body["target"]["request"]["url"] == URL and body["paused"] is False and body["runs"] == 0
    assert body["next_run_at"].endswith("Z") and body["last_run_at"] is None and body["last_run_id"] is None
    assert client.put("/v1/schedules/daily", json={"every": 60, "target": TARGET}).status_code == 200
    client.put("/v1/schedules/a-first", json={"every": 5, "target": {"queue": "q", "message": None}})
    assert [s["name"] for s in client.get("/v1/schedules").json["items"]] == ["a-first", "daily"]
    assert client.get("/v1/schedules/daily").json["every"] == 60
    assert client.delete("/v1/schedules/daily").status_code == 204
    assert client.get("/v1/schedules/daily").status_code == 404
    assert client.delete("/v1/schedules/daily").status_code == 404


def test_pause_resume_and_run_now_listed_under_the_schedule(client):
    client.put("/v1/schedules/job", json={"every": 3600, "target": TARGET})
    paused = client.post("/v1/schedules/job/pause")
    assert paused.status_code == 200 and paused.json["paused"] is True and paused.json["next_run_at"] is None
    resumed = client.post("/v1/schedules/job/resume").json
    assert resumed["paused"] is False and resumed["next_run_at"]
    run = client.post("/v1/schedules/job/run")
    assert run.status_code == 202
    request_id = run.json["id"]
    listed = client.get("/v1/requests?schedule=job").json["items"]
    assert [r["id"] for r in listed] == [request_id] and listed[0]["schedule"] == "job"
    assert listed[0]["headers"] == {"X-A": "b"} and listed[0]["retry"]["max_attempts"] == 2
    assert client.get("/v1/requests?schedule=other").json["items"] == []
    assert client.get("/v1/requests?schedule=job&status=succeeded").json["items"] == []
    resource = client.get("/v1/schedules/job").json
    assert resource["runs"] == 1 and resource["last_run_id"] == request_id
    assert resource["next_run_at"] == resumed["next_run_at"]
    assert client.post("/v1/schedules/nope/run").status_code == 404


@pytest.mark.parametrize(("body", "errors"), [
    ({"cron": "61 * * * *", "target": TARGET}, {"cron"}),
    ({"cron": "* * * * * *", "target": TARGET}, {"cron"}),
    ({"cron": "* * * * *", "timezone": "Mars/Base", "target": TARGET}, {"timezone"}),
    ({"cron": "* * * * *", "every": 5, "target": TARGET}, {"every"}),
    ({"target": TARGET}, {"cron"}),
    ({"every": 0, "target": TARGET}, {"every"}),
    ({"every": 5}, {"target"}),
    ({"every": 5, "target": {"request": {"url": "ftp://x"}}}, {"target"}),
    ({"every": 5, "target": {"request": {"url": URL, "eta": 5}}}, {"target"}),
    ({"every": 5, "target": {"queue": "bad name", "message": 1}}, {"target"}),
    ({"every": 5, "target": {"queue": "q"}}, {"target"}),
    ({"every": 5, "target": {"batch": "missing", "record": 1}}, {"target"}),
    ({"every": 5, "target": {"queue": "q", "message": 1, "batch": "b", "record": 1}}, {"target"}),
    ({"every": 5, "target": {}}, {"target"}),
])
def test_bad_input_is_422_naming_the_field(client, body, errors):
    answer = client.put("/v1/schedules/x", json=body)
    assert answer.status_code == 422, answer.json
    assert set(answer.json["errors"]["json"] if "json" in answer.json["errors"] else answer.json["errors"]) == errors


def test_request_url_error_names_the_nested_field(client):
    answer = client.put("/v1/schedules/x", json={"every": 5, "target": {"request": {"url": "ftp://x"}}})
    errors = answer.json["errors"]
    errors = errors.get("json", errors)
    assert "url" in errors["target"]["request"]


def test_bad_name_is_422_on_put_and_404_elsewhere(client):
    assert client.put("/v1/schedules/" + "x" * 81, json={"every": 5, "target": TARGET}).status_code == 422
    assert client.get("/v1/schedules/" + "x" * 81).status_code == 404


def test_bulk_cancel_by_schedule_takes_only_its_runs(client):
    delayed = {"request": {**TARGET["request"], "delay": 600}}
    client.put("/v1/schedules/job", json={"every": 3600, "target": delayed})
    client.put("/v1/schedules/other", json={"every": 3600, "target": delayed})
    runs = [client.post("/v1/schedules/job/run").json["id"] for _ in range(3)]
    kept = client.post("/v1/schedules/other/run").json["id"]
    answer = client.post("/v1/requests/cancel", json={"schedule": "job"})
    assert answer.status_code == 200 and answer.json == {"canceled": 3}
    assert {client.get(f"/v1/requests/{r}/status").json["status"] for r in runs} == {"canceled"}
    assert client.get(f"/v1/requests/{kept}/status").json["status"] == "scheduled"
    assert client.post("/v1/requests/cancel", json={"schedule": "other", "status": ["queued"]}).json == {"canceled": 0}
    assert client.post("/v1/requests/cancel", json={"schedule": "no such"}).status_code == 422
