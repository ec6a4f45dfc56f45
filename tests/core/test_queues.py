"""QueueService on a real Redis: config, names, limits, receipts, dead letters, the sweep with an
injected clock, long polls woken through pub/sub, and several consumers at once."""
from __future__ import annotations

import threading
import time

import pytest

from app.core.errors import Conflict, Invalid, NotFound, TooLarge
from app.core.queues import QueueService, json_body, text_body
from app.storage.notify import Notifier
from app.storage.queues import channel
from tests.support.settings import make_settings
from tests.support.waiting import wait_parked


@pytest.fixture
def notifier(redis_url):
    return Notifier(redis_url)


@pytest.fixture
def service(store, redis_url, clock):
    return QueueService(store, make_settings(redis_url, max_body_bytes=1024, max_delay_s=3600), clock_ms=clock)


@pytest.fixture
def live(store, redis_url, notifier):
    """The service on the real clock, with long polling."""
    return QueueService(store, make_settings(redis_url), notifier)


def push_json(service, name, *values, delay_s=None):
    return service.push_many(name, [(json_body(value), delay_s) for value in values])


def test_put_creates_with_defaults_and_a_later_put_replaces_the_whole_config(service, clock):
    queue, created = service.put("orders", {"max_receives": 5})
    assert created is True
    assert queue == {"name": "orders", "visibility_timeout": 30, "max_receives": 5, "retention": 345600,
                     "delay": 0, "dead_letter_queue": None,
                     "created_at": "2023-11-14T22:13:20.000Z", "updated_at": "2023-11-14T22:13:20.000Z",
                     "visible": 0, "in_flight": 0, "delayed": 0, "dead": 0}
    clock.advance(1)
    queue, created = service.put("orders", {"visibility_timeout": 2.5})
    assert created is False
    assert (queue["visibility_timeout"], queue["max_receives"]) == (2.5, 0)  # left out: its default again
    assert queue["updated_at"] == "2023-11-14T22:13:21.000Z"


def test_ensure_creates_a_missing_queue_with_defaults_and_leaves_an_existing_one_as_it_is(service):
    assert service.ensure("orders") is True
    service.put("orders", {"max_receives": 5, "visibility_timeout": 2.5})
    assert service.ensure("orders") is False
    queue = service.get("orders")
    assert (queue["visibility_timeout"], queue["max_receives"]) == (2.5, 5)


def test_first_message_creates_the_queue_with_defaults(service):
    service.push("fresh", text_body("hi"))
    queue = service.get("fresh")
    assert (queue["visibility_timeout"], queue["visible"]) == (30, 1)
    assert [q["name"] for q in service.list()] == ["fresh"]


@pytest.mark.parametrize("name", ["", "a:b", "a b", "x" * 81, "é", "a/b", "{a}"])
def test_bad_name_is_invalid_where_it_would_create_and_not_found_where_it_is_looked_up(service, name):
    with pytest.raises(Invalid) as error:
        service.put(name, {})
    assert "name" in error.value.errors
    with pytest.raises(Invalid):
        service.push(name, text_body("x"))
    for lookup in (service.get, service.delete, service.receive, service.dead, service.redrive):
        with pytest.raises(NotFound):
            lookup(name)


def test_unknown_queue_is_not_found_everywhere_but_put_and_push(service):
    for call in (lambda: service.get("nope"), lambda: service.delete("nope"), lambda: service.receive("nope"),
                 lambda: service.ack("nope", "id"), lambda: service.ack_many("nope", [("id", None)]),
                 lambda: service.change_visibility("nope", "id", "r", 1), lambda: service.dead("nope"),
                 lambda: service.redrive("nope")):
        with pytest.raises(NotFound):
            call()


def test_message_over_the_body_limit_is_too_large(service):
    with pytest.raises(TooLarge) as error:
        service.push("q", text_body("x" * 1025))
    assert "body" in error.value.errors
    service.push("q", text_body("é" * 512))  # 1024 bytes exactly
    with pytest.raises(TooLarge) as error:
        push_json(service, "q", "ok", "x" * 1030)
    assert error.value.errors == {"messages": {1: {"body": ["at most 1024 bytes"]}}}
    assert service.get("q")["visible"] == 1  # nothing of the refused batch was stored


def test_delay_beyond_the_maximum_is_invalid(service):
    with pytest.raises(Invalid) as error:
        service.push("q", text_body("x"), 3601)
    assert "delay" in error.value.errors
    with pytest.raises(Invalid) as error:
        push_json(service, "q", 1, delay_s=3601)
    assert error.value.errors == {"messages": {0: {"delay": ["0 to 3600 seconds"]}}}


@pytest.mark.parametrize("size", [0, 101])
def test_batch_needs_one_to_a_hundred_messages(service, size):
    with pytest.raises(Invalid):
        service.push_many("q", [(text_body("x"), None)] * size)


def test_json_and_text_bodies_come_back_as_sent(service):
    values = [{"a": [1, 2.5, None]}, "text as json", None, 0, [True]]
    push_json(service, "q", *values)
    service.push("q", text_body("plain\ntext"))
    got = service.receive("q", max_messages=10)
    assert [m["body"] for m in got] == values + ["plain\ntext"]
    assert all(m["receive_count"] == 1 and m["enqueued_at"] == "2023-11-14T22:13:20.000Z" for m in got)


def test_receive_uses_the_queue_visibility_timeout_unless_given(service, clock):
    service.put("q", {"visibility_timeout": 10})
    push_json(service, "q", 1, 2)
    service.receive("q", max_messages=1)
    service.receive("q", max_messages=1, visibility_timeout_s=2)
    clock.advance(2)
    assert [m["body"] for m in service.receive("q")] == [2]
    clock.advance(8)
    assert [m["body"] for m in service.receive("q")] == [1]


def test_ack_checks_the_receipt_when_given(service, clock):
    push_json(service, "q", 1)
    old = service.receive("q", visibility_timeout_s=1)[0]
    clock.advance(1)
    new = service.receive("q")[0]
    with pytest.raises(Conflict):
        service.ack("q", old["id"], old["receipt"])
    service.ack("q", new["id"], new["receipt"])
    with pytest.raises(NotFound):
        service.ack("q", new["id"])


def test_ack_many_counts_and_lists_failures(service):
    push_json(service, "q", 1, 2)
    one, two = service.receive("q")
    assert service.ack_many("q", [(one["id"], one["receipt"]), (two["id"], "old"), ("nope", None)]) == {
        "acked": 1, "failed": [{"id": two["id"], "reason": "stale"}, {"id": "nope", "reason": "not_found"}]}


def test_change_visibility_answers_the_new_time_and_refuses_bad_receipts(service, clock):
    push_json(service, "q", 1)
    message = service.receive("q")[0]
    assert service.change_visibility("q", message["id"], message["receipt"], 60) == {
        "id": message["id"], "receipt": message["receipt"], "visible_at": "2023-11-14T22:14:20.000Z", "dead": False}
    with pytest.raises(Conflict):
        service.change_visibility("q", message["id"], "other", 60)
    with pytest.raises(NotFound):
        service.change_visibility("q", "nope", message["receipt"], 60)
    released = service.change_visibility("q", message["id"], message["receipt"], 0)
    assert released["visible_at"] == "2023-11-14T22:13:20.000Z"
    assert service.get("q")["visible"] == 1


def test_dead_letters_are_listed_then_redriven(service, clock):
    service.put("q", {"max_receives": 1, "visibility_timeout": 1})
    push_json(service, "q", "a", "b")
    service.receive("q")
    clock.advance(1)
    assert service.receive("q") == []
    dead = service.dead("q")
    assert [(m["body"], m["receive_count"], m["dead_at"]) for m in dead] == [
        ("a", 1, "2023-11-14T22:13:21.000Z"), ("b", 1, "2023-11-14T22:13:21.000Z")]
    assert service.dead("q", limit=1)[0]["body"] == "a"
    assert service.redrive("q") == 2
    assert service.get("q")["dead"] == 0
    assert [m["receive_count"] for m in service.receive("q")] == [1, 1]


def test_sweep_keeps_every_queue_current_and_applies_retention(service, store, clock):
    from app.storage import keys

    service.put("a", {"retention": 60, "visibility_timeout": 1})
    service.put("b", {"max_receives": 1, "visibility_timeout": 1})
    push_json(service, "a", 1, 2)
    push_json(service, "b", 1)
    service.receive("a", max_messages=1)
    service.receive("b")
    clock.advance(1)
    assert service.sweep() == {"queues": 2, "returned": 1, "dropped": 0}
    assert store.redis.zcard(keys.queue_inflight("a")) == 0 and store.redis.zcard(keys.queue_dead("b")) == 1
    clock.advance(59)
    assert service.sweep() == {"queues": 2, "returned": 0, "dropped": 2}
    assert service.get("a")["visible"] == 0


def test_delete_removes_the_queue_and_its_messages(service):
    push_json(service, "q", 1)
    service.delete("q")
    with pytest.raises(NotFound):
        service.get("q")
    assert service.list() == []


# -- long polls, on the real clock --------------------------------------------------------------


def _once_waiting(service: QueueService, name: str, action) -> list[float]:
    """Run `action` in a thread as soon as a long poll waits on queue `name`; the list gets the
    time.monotonic() at which it ran."""
    ran_at: list[float] = []

    def run():
        wait_parked(service.notifier, channel(name))
        ran_at.append(time.monotonic())
        action()

    threading.Thread(target=run, daemon=True).start()
    return ran_at


def test_long_poll_returns_as_soon_as_a_message_is_pushed(live):
    live.put("q", {})
    pushed_at = _once_waiting(live, "q", lambda: live.push("q", text_body("hello")))
    got = live.receive("q", wait_s=10)
    returned_at = time.monotonic()
    assert [m["body"] for m in got] == ["hello"]
    assert returned_at - pushed_at[0] < 0.7  # woken by the push: the periodic re-check is 2.5 s away at least


def test_long_poll_returns_nothing_once_the_wait_is_over(live):
    live.put("q", {})
    started = time.monotonic()
    assert live.receive("q", wait_s=0.4) == []
    assert 0.4 <= time.monotonic() - started < 1.5


def test_long_poll_wakes_when_a_delayed_message_becomes_visible(live):
    live.push("q", text_body("later"), 0.5)
    started = time.monotonic()
    got = live.receive("q", wait_s=10)
    assert [m["body"] for m in got] == ["later"]
    assert 0.45 <= time.monotonic() - started < 1.5  # its due time, not the periodic re-check (>= 2.5 s)


def test_long_poll_wakes_when_a_lock_expires(live):
    live.push("q", text_body("m"))
    live.receive("q", visibility_timeout_s=0.5)
    started = time.monotonic()
    got = live.receive("q", wait_s=10)
    assert [m["receive_count"] for m in got] == [2]
    assert 0.45 <= time.monotonic() - started < 1.5


def test_long_poll_wakes_on_release(live):
    live.push("q", text_body("m"))
    held = live.receive("q", visibility_timeout_s=60)[0]
    _once_waiting(live, "q", lambda: live.change_visibility("q", held["id"], held["receipt"], 0))
    started = time.monotonic()
    assert [m["id"] for m in live.receive("q", wait_s=10)] == [held["id"]]
    assert time.monotonic() - started < 1.0


def test_long_poll_on_a_queue_deleted_meanwhile_is_not_found(live):
    live.put("q", {})
    _once_waiting(live, "q", lambda: live.delete("q"))
    started = time.monotonic()
    with pytest.raises(NotFound):
        live.receive("q", wait_s=10)
    assert time.monotonic() - started < 1.0


def test_one_push_of_one_message_satisfies_exactly_one_of_many_waiters(live):
    live.put("q", {})
    results: list[list] = []
    waiters = [threading.Thread(target=lambda: results.append(live.receive("q", wait_s=1.5))) for _ in range(8)]
    for waiter in waiters:
        waiter.start()
    wait_parked(live.notifier, channel("q"), count=8)
    live.push("q", text_body("only one"))
    for waiter in waiters:
        waiter.join()
    assert sorted(len(r) for r in results) == [0] * 7 + [1]


def test_concurrent_consumers_receive_each_message_once_per_visibility_window(live):
    total = 600
    for start in range(0, total, 100):
        live.push_many("q", [(json_body(i), None) for i in range(start, start + 100)])
    received: list[list[int]] = [[] for _ in range(6)]

    def consume(mine: list[int]) -> None:
        while True:
            batch = live.receive("q", max_messages=7, visibility_timeout_s=60)
            if not batch:
                return
            mine.extend(m["body"] for m in batch)

    consumers = [threading.Thread(target=consume, args=(mine,)) for mine in received]
    for consumer in consumers:
        consumer.start()
    for consumer in consumers:
        consumer.join()
    everything = [body for mine in received for body in mine]
    assert sorted(everything) == list(range(total))  # each once: none lost, none twice
    assert sum(1 for mine in received if mine) > 1
    for mine in received:
        assert mine == sorted(mine)  # each consumer sees the queue's order
