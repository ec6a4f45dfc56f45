"""Task events, as Flower and `celery events` see them: a real worker and beat with htq's default
configuration, a receiver on the real broker. Deliveries show with their request ids; beat's
housekeeping shows not at all."""
from __future__ import annotations

import json
import threading

import pytest
from celery import Celery

from app import create_app
from app.core.task_names import DELIVER_REQUESTS
from app.storage import beat as store_beat
from tests.support.http_target import Reply
from tests.support.settings import make_settings
from tests.support.waiting import wait_until


class EventLog:
    """Every task event on the broker, from a receiver in a thread of the test."""

    def __init__(self, settings):
        self.app = Celery("htq-events-test", set_as_current=False)
        self.app.conf.update(settings.celery_config())
        self.events: list[dict] = []
        self.ready = threading.Event()
        self._receiver = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with self.app.connection() as connection:
            self._receiver = self.app.events.Receiver(connection, handlers={"*": self._on_event})
            self._receiver.consume  # noqa: B018 - declares the receiver's queue before the test publishes
            self.ready.set()
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def _on_event(self, event: dict):
        if event["type"].startswith("task-"):
            self.events.append(event)

    def start(self):
        self._thread.start()
        assert self.ready.wait(10)

    def stop(self):
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(10)

    def of(self, uuid: str) -> list[str]:
        return [event["type"] for event in self.events if event.get("uuid") == uuid]


@pytest.fixture
def events(settings):
    log = EventLog(settings)
    log.start()
    yield log
    log.stop()


@pytest.mark.parametrize("pool", ["prefork", "threads", "gevent"])
def test_a_delivery_shows_in_task_events_with_its_request_id_and_ticks_show_not_at_all(
        services_factory, settings, store, events, http_target, pool):
    procs = services_factory()
    # Exactly as the Procfile runs it (events come from the defaults), on each worker pool: the
    # threads pool sends task-started from the task's own thread.
    procs.start_worker(concurrency=1, pool=pool, options=())
    procs.start_beat()
    procs.wait_log("worker", " ready.")
    client = create_app(make_settings(settings.redis_url)).test_client()

    created = client.post("/v1/requests", json={"url": http_target.url + "/seen"}).get_json()
    http_target.wait_for(1, "/seen")
    sent = wait_until(lambda: [e for e in events.events if e["type"] == "task-sent"
                               and created["id"] in str(e.get("args"))], timeout_s=10)
    [sent] = sent
    assert sent["name"] == DELIVER_REQUESTS and sent["args"] == f"requests={created['id']}#1"
    # The web process and the worker publish their events on connections of their own: they may
    # arrive in any order between them.
    every = {"task-sent", "task-received", "task-started", "task-succeeded"}
    wait_until(lambda: set(events.of(sent["uuid"])) == every, timeout_s=10)
    assert sorted(events.of(sent["uuid"])) == sorted(every)  # each once
    [received] = [e for e in events.events if e["type"] == "task-received" and e["uuid"] == sent["uuid"]]
    assert received["name"] == DELIVER_REQUESTS and created["id"] in received["args"]

    # Beat ticked all along (each tick ran on the worker), and none of it made an event.
    ticks = store_beat.ticks(store).ticks
    wait_until(lambda: store_beat.ticks(store).ticks >= ticks + 2, timeout_s=10)
    named = {e["name"] for e in events.events if e.get("name")}
    assert named == {DELIVER_REQUESTS}, named
    assert {e["uuid"] for e in events.events} == {sent["uuid"]}


def test_with_log_format_json_a_delivery_is_one_json_line_with_its_ids_as_keys(services_factory, settings,
                                                                                  http_target):
    procs = services_factory(LOG_FORMAT="json")
    procs.start_worker(concurrency=1)
    procs.wait_log("worker", " ready.")
    client = create_app(make_settings(settings.redis_url)).test_client()
    created = client.post("/v1/requests", json={"url": http_target.url + "/json"}).get_json()
    http_target.wait_for(1, "/json")

    def delivery_lines() -> list[dict]:
        entries = [json.loads(line) for line in procs.log("worker").splitlines() if line.startswith("{")]
        return [entry for entry in entries if entry.get("request_id") == created["id"]]

    [entry] = wait_until(delivery_lines, timeout_s=10)
    assert entry["message"].startswith(f"request {created['id']}: attempt 1 -> succeeded (200) in ")
    assert (entry["attempt"], entry["result"], entry["status_code"], entry["error"]) == (1, "succeeded", 200, None)
    assert entry["worker"].startswith("worker@") and isinstance(entry["elapsed_ms"], int)


def test_on_the_threads_pool_every_task_sends_each_of_its_events(services_factory, settings, events, http_target):
    """Tasks run in threads send task-started from their own thread while the consumer sends the
    others: each event of each task arrives, once."""
    procs = services_factory()
    procs.start_worker(concurrency=8, pool="threads", options=())
    procs.wait_log("worker", " ready.")
    client = create_app(make_settings(settings.redis_url)).test_client()
    http_target.reply("/many", *[Reply(200, delay_s=0.05)] * 40)
    for _ in range(40):
        client.post("/v1/requests", json={"url": http_target.url + "/many"})
    http_target.wait_for(40, "/many", timeout_s=30)
    every = ["task-received", "task-sent", "task-started", "task-succeeded"]

    def complete() -> list[str]:
        uuids = {e["uuid"] for e in events.events if e["type"] == "task-sent" and e["name"] == DELIVER_REQUESTS}
        done = [uuid for uuid in uuids if sorted(events.of(uuid)) == every]
        return done if len(done) == 40 else []

    wait_until(complete, timeout_s=15)
