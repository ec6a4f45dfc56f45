"""BatchService and BatchForwarder on a real Redis, with an injected clock and a recording sender."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app.core.batches import BatchForwarder, BatchService, Settled, encode_record
from app.core.errors import Invalid, NotFound, TooLarge
from app.core.outcome import FAILED, RETRY, SUCCEEDED, Outcome
from app.core.publish import Publisher
from app.core.task_names import SEND_BATCHES
from app.storage import batches as sb
from app.storage import keys
from app.storage.client import Store
from tests.support.clock import FakeClock
from tests.support.sender import RecordingSender
from tests.support.settings import make_settings


@pytest.fixture
def service(store, settings, sender, clock) -> BatchService:
    return BatchService(store, Publisher(sender), settings, clock)


@pytest.fixture
def forwarder(store, settings, sender, clock) -> BatchForwarder:
    return BatchForwarder(store, Publisher(sender), settings, clock)


def sends(sender: RecordingSender) -> list[list]:
    """Every [name, batch id, attempt] published, in order."""
    return [[args[0], batch_id, attempt] for name, args, _ in sender.sent if name == SEND_BATCHES
            for batch_id, attempt in args[1]]


def body_of(store, name, batch_id) -> list:
    return json.loads(store.redis.hget(keys.batch_bodies(name), batch_id))


def configure(service, name="events", **fields):
    return service.configure(name, {"endpoint": "http://127.0.0.1:9/in", **fields})


def test_configure_creates_then_replaces_with_defaults_for_omitted_fields(service):
    resource, created = configure(service, max_records=5, retry={"max_attempts": 9})
    assert created
    assert resource["max_records"] == 5 and resource["retry"] == {"max_attempts": 9, "backoff_base": 2.0}
    resource, created = configure(service)
    assert not created
    assert resource == {**resource, "max_records": 10, "max_bytes": 1048576, "interval": 10.0, "headers": {},
                        "retry": {"max_attempts": 3, "backoff_base": 2.0}, "timeout": 30.0, "pending": 0,
                        "in_flight": 0, "sent_batches": 0, "sent_records": 0, "dead_batches": 0,
                        "last_sent_at": None, "last_status_code": None}


def test_a_bad_name_is_invalid_to_configure_and_unknown_everywhere_else(service):
    with pytest.raises(Invalid) as error:
        configure(service, name="no:colons")
    assert error.value.errors == {"name": ["Must match [A-Za-z0-9_-]{1,80}."]}
    for call in (lambda: service.get("a:b"), lambda: service.add("a:b", [1]), lambda: service.delete("x" * 81),
                 lambda: service.dead("a b"), lambda: service.redrive("a:b")):
        with pytest.raises(NotFound):
            call()


def test_the_call_that_fills_a_batch_publishes_it(service, sender, store):
    configure(service, max_records=3)
    ids = service.add("events", [{"n": 1}, {"n": 2}])
    assert len(ids) == 2 and ids[0] != ids[1] and sends(sender) == []
    service.add("events", [{"n": 3}, {"n": 4}])
    [[name, batch_id, attempt]] = sends(sender)
    assert (name, attempt) == ("events", 1)
    assert body_of(store, "events", batch_id) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert service.get("events")["pending"] == 1
    assert service.get("events")["in_flight"] == 1


def test_interval_flush_takes_the_pending_records_once_the_oldest_is_interval_old(service, sender, clock, store,
                                                                                 settings):
    # A publish grace beyond the 60 s below: the taken batch is never due for a republish here.
    forwarder = BatchForwarder(store, Publisher(sender), replace(settings, publish_grace_s=120), clock)
    configure(service, max_records=100, interval=10)
    service.add("events", ["a"])
    clock.advance(6)
    service.add("events", ["b"])
    clock.advance(3.999)
    assert forwarder.flush() == {"taken": 0, "republish": 0, "lost": 0, "dead": 0}
    clock.advance(0.001)
    assert forwarder.flush()["taken"] == 1
    [[_, batch_id, attempt]] = sends(sender)
    assert attempt == 1 and body_of(store, "events", batch_id) == ["a", "b"]
    clock.advance(60)
    assert forwarder.flush()["taken"] == 0  # no empty batches, ever
    assert len(sends(sender)) == 1


def test_records_that_cannot_fit_are_refused_before_anything_is_stored(service, store, settings):
    configure(service, max_bytes=32)
    with pytest.raises(TooLarge) as error:
        service.add("events", ["fits", "x" * 40])
    assert error.value.errors == {"records": {"1": ["at most 30 bytes of JSON"]}}
    assert service.get("events")["pending"] == 0
    configure(service, name="big", max_bytes=16 * 1024 * 1024)
    with pytest.raises(TooLarge) as error:
        service.add("big", ["x" * settings.max_body_bytes])
    assert error.value.errors == {"records": {"0": [f"at most {settings.max_body_bytes} bytes"]}}


def test_unknown_batch_is_not_found_before_any_record_check(service):
    for records in (["x"], ["x" * (2 * 1024 * 1024)], [float("nan")]):
        with pytest.raises(NotFound):
            service.add("nowhere", records)


def test_nan_and_infinity_are_refused_as_invalid_json(service):
    configure(service)
    with pytest.raises(Invalid) as error:
        service.add("events", [1, {"x": float("inf")}])
    assert error.value.errors == {"records": {"1": ["NaN and Infinity are not JSON"]}}


def test_record_ids_are_unique_across_calls_and_batches(service):
    configure(service, max_records=3)
    ids = service.add("events", list(range(7))) + service.add("events", list(range(5)))
    assert len(set(ids)) == 12


def test_delete_and_recreate_never_reuses_batch_ids(service, sender, clock):
    configure(service, max_records=1)
    service.add("events", [1])
    service.delete("events")
    with pytest.raises(NotFound):
        service.get("events")
    with pytest.raises(NotFound):
        service.delete("events")
    clock.advance(1)
    configure(service, max_records=1)
    service.add("events", [1])
    first, second = (args[1] for args in sends(sender))
    assert first != second


def test_list_shows_every_batch_by_name(service):
    configure(service, name="b")
    configure(service, name="a")
    assert [item["name"] for item in service.list()] == ["a", "b"]


def outcome(verdict, status=None, error=None, retry_after_s=None) -> Outcome:
    return Outcome(verdict, status_code=status, elapsed_ms=7, error=error, retry_after_s=retry_after_s)


def take(service, sender, records=(1, 2), **fields) -> str:
    configure(service, max_records=len(records), **fields)
    service.add("events", list(records))
    return sends(sender)[-1][1]


def test_a_sent_batch_is_counted_and_gone(service, forwarder, sender, clock):
    batch_id = take(service, sender)
    claimed = forwarder.claim("events", batch_id, 1, "worker@test")
    assert forwarder.request_headers(claimed) == {"Content-Type": "application/json", "Htq-Batch-Id": batch_id}
    clock.advance(0.25)
    assert forwarder.finish(claimed, outcome(SUCCEEDED, 204)) == Settled("sent")
    resource = service.get("events")
    assert (resource["sent_batches"], resource["sent_records"], resource["in_flight"]) == (1, 2, 0)
    assert (resource["last_status_code"], resource["last_sent_at"]) == (204, "2023-11-14T22:13:20.250Z")
    assert forwarder.claim("events", batch_id, 1, "worker@test") is None


def test_configured_headers_are_sent_and_may_set_the_content_type(service, forwarder, sender):
    batch_id = take(service, sender, headers={"Authorization": "Bearer t", "content-type": "application/x+json"})
    claimed = forwarder.claim("events", batch_id, 1, "worker@test")
    assert forwarder.request_headers(claimed) == {"Authorization": "Bearer t", "content-type": "application/x+json",
                                                  "Htq-Batch-Id": batch_id}


def test_retry_waits_the_backoff_base_then_the_batch_dies_after_max_attempts(service, forwarder, sender):
    batch_id = take(service, sender, retry={"max_attempts": 3, "backoff_base": 2})
    for attempt in (1, 2):
        claimed = forwarder.claim("events", batch_id, attempt, "worker@test")
        assert forwarder.finish(claimed, outcome(RETRY, 500)) == Settled("retry", attempt + 1, 2.0)
    claimed = forwarder.claim("events", batch_id, 3, "worker@test")
    assert forwarder.finish(claimed, outcome(RETRY, None, "timeout after 30s")) == Settled("dead")
    [dead] = service.dead("events")
    assert dead == {"id": batch_id, "records": [1, 2], "attempts": 3, "last_status_code": None,
                    "error": "timeout after 30s"}
    assert service.get("events")["dead_batches"] == 1


def test_retry_after_replaces_the_backoff_and_a_long_one_is_left_to_the_sweep(service, forwarder, sender, clock,
                                                                             settings):
    batch_id = take(service, sender)
    claimed = forwarder.claim("events", batch_id, 1, "worker@test")
    assert forwarder.finish(claimed, outcome(RETRY, 429, retry_after_s=5)) == Settled("retry", 2, 5)
    claimed = forwarder.claim("events", batch_id, 2, "worker@test")
    long_s = settings.horizon_s + 30
    assert forwarder.finish(claimed, outcome(RETRY, 503, retry_after_s=long_s)) == Settled("retry", 3, None)
    sent_before = len(sends(sender))
    clock.advance(long_s - 0.001)
    assert forwarder.flush()["republish"] == 0
    clock.advance(0.001)
    assert forwarder.flush()["republish"] == 1
    assert sends(sender)[sent_before:] == [["events", batch_id, 3]]


def test_a_lost_retry_message_is_published_again_by_the_sweep(service, forwarder, sender, clock, settings):
    batch_id = take(service, sender)
    forwarder.finish(forwarder.claim("events", batch_id, 1, "worker@test"), outcome(RETRY, 500))
    # The task's retry (2 s countdown) never arrives.
    clock.advance(2 + settings.publish_grace_s)
    assert forwarder.flush()["republish"] == 1
    assert sends(sender)[-1] == ["events", batch_id, 2]
    assert forwarder.claim("events", batch_id, 2, "worker@test") is not None


def test_a_permanent_failure_is_dead_without_retries(service, forwarder, sender):
    batch_id = take(service, sender)
    claimed = forwarder.claim("events", batch_id, 1, "worker@test")
    assert forwarder.finish(claimed, outcome(FAILED, 400)) == Settled("dead")
    assert service.dead("events")[0]["error"] == "HTTP 400"


def test_redrive_republishes_every_dead_batch_to_the_current_endpoint(service, forwarder, sender):
    configure(service, max_records=1, retry={"max_attempts": 1})
    service.add("events", [1, 2, 3])
    for _, batch_id, attempt in sends(sender):
        forwarder.finish(forwarder.claim("events", batch_id, attempt, "worker@test"), outcome(RETRY, 502))
    assert service.get("events")["dead_batches"] == 3
    configure(service, endpoint="http://127.0.0.1:9/fixed", max_records=1)
    sender.sent.clear()
    assert service.redrive("events") == 3
    assert sorted(args[2] for args in sends(sender)) == [1, 1, 1]
    claimed = forwarder.claim("events", sends(sender)[0][1], 1, "worker@test")
    assert claimed.endpoint == "http://127.0.0.1:9/fixed"
    assert service.get("events")["dead_batches"] == 0


def test_a_worker_killed_mid_send_loses_nothing(service, forwarder, sender, clock, settings):
    batch_id = take(service, sender, timeout=5)
    assert forwarder.claim("events", batch_id, 1, "worker@test") is not None  # then the worker dies
    clock.advance(5 + settings.lease_margin_s)
    assert forwarder.flush()["lost"] == 1
    assert sends(sender)[-1] == ["events", batch_id, 2]
    claimed = forwarder.claim("events", batch_id, 2, "worker@test")
    assert json.loads(claimed.body) == [1, 2] and claimed.batch_id == batch_id


def test_env_batch_is_configured_from_the_webhook_settings(store, sender, clock, redis_url):
    settings = make_settings(redis_url, webhook_post_endpoint="http://127.0.0.1:9/hook", webhook_batch_size=2,
                             webhook_batch_interval_s=1.5)
    service = BatchService(store, Publisher(sender), settings, clock)
    assert service.ensure_env_batch() is True
    resource = service.get("log")
    assert (resource["endpoint"], resource["max_records"], resource["interval"]) == ("http://127.0.0.1:9/hook", 2, 1.5)
    assert resource["retry"] == {"max_attempts": 4, "backoff_base": 2.0}  # the first POST and 3 retries
    service.configure("log", {"endpoint": "http://127.0.0.1:9/put", "max_records": 50, "max_bytes": 4096})
    assert service.ensure_env_batch() is True  # a restart: the environment wins for its three fields
    resource = service.get("log")
    assert (resource["endpoint"], resource["max_records"], resource["max_bytes"]) == ("http://127.0.0.1:9/hook", 2,
                                                                                     4096)


def test_records_can_be_added_to_the_env_batch_before_anything_configured_it(store, sender, clock, redis_url):
    settings = make_settings(redis_url, webhook_post_endpoint="http://127.0.0.1:9/hook", webhook_batch_size=2)
    service = BatchService(store, Publisher(sender), settings, clock)
    service.add("log", [{"user_id": 1}, {"user_id": 2}])
    assert len(sends(sender)) == 1
    service.delete("log")
    assert service.get("log")["pending"] == 0  # configured again on demand


def test_without_webhook_settings_there_is_no_log_batch(service):
    assert service.ensure_env_batch() is False
    with pytest.raises(NotFound):
        service.add("log", [1])


records_strategy = st.lists(st.one_of(st.integers(), st.text(max_size=30), st.none(),
                                      st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
                            min_size=1, max_size=60)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(records_strategy, min_size=1, max_size=5), max_records=st.integers(1, 12),
       max_bytes=st.integers(16, 300), flush_between=st.booleans())
def test_batches_keep_order_never_exceed_the_limits_and_lose_or_repeat_nothing(redis_server, calls, max_records,
                                                                               max_bytes, flush_between):
    store = Store.from_url(redis_server.url)
    store.redis.flushall()
    sender, clock = RecordingSender(), FakeClock()
    settings = make_settings(redis_server.url)
    service = BatchService(store, Publisher(sender), settings, clock)
    forwarder = BatchForwarder(store, Publisher(sender), settings, clock)
    service.configure("p", {"endpoint": "http://127.0.0.1:9/", "max_records": max_records, "max_bytes": max_bytes,
                            "interval": 1})
    added, record_ids = [], []
    for records in calls:
        records = [r for r in records if len(encode_record(r).encode()) + 2 <= max_bytes]
        if not records:
            continue
        record_ids.extend(service.add("p", records))
        added.extend(records)
        if flush_between:
            clock.advance(1)
            forwarder.flush()
    clock.advance(1)
    forwarder.flush()
    batches = []
    for _, batch_id, _ in sends(sender):
        raw = store.redis.hget(keys.batch_bodies("p"), batch_id)
        assert 1 <= len(json.loads(raw)) <= max_records
        assert len(raw.encode()) <= max_bytes
        batches.append(json.loads(raw))
    assert [r for batch in batches for r in batch] == added
    assert sb.load(store, "p")["pending"] == 0
    # Each record's receipt names the batch that holds it.
    receipts = [service.record("p", record_id) for record_id in record_ids]
    assert {receipt["state"] for receipt in receipts} <= {"sending"}
    by_batch: dict[str, list] = {}
    for receipt, record in zip(receipts, added):
        by_batch.setdefault(receipt["batch_id"], []).append(record)
    assert list(by_batch.values()) == batches
    store.redis.close()


def test_taken_batches_travel_a_few_per_task_message(service, sender):
    from app.core.publish import SEND_CHUNK

    configure(service, max_records=1)
    service.add("events", list(range(2 * SEND_CHUNK + 1)))
    messages = [args for name, args, _ in sender.sent if name == SEND_BATCHES]
    assert [len(args[1]) for args in messages] == [SEND_CHUNK, SEND_CHUNK, 1]
    assert all(args[0] == "events" and attempt == 1 for args in messages for _, attempt in args[1])


def test_retries_are_published_with_their_countdown_and_long_ones_left_to_the_sweep(forwarder, sender, clock):
    forwarder.publish_retries("events", [("E-1", Settled("retry", 2, 2.0)), ("E-2", Settled("retry", 3, 2.0)),
                                         ("E-3", Settled("retry", 2, 0.0)), ("E-4", Settled("retry", 2, None)),
                                         ("E-5", Settled("sent")), ("E-6", Settled("dead"))])
    published = [(args, eta) for name, args, eta in sender.sent if name == SEND_BATCHES]
    assert [(args, eta.timestamp() * 1000 if eta else None) for args, eta in published] == [
        (["events", [["E-1", 2], ["E-2", 3]]], clock.ms + 2000), (["events", [["E-3", 2]]], None)]


# -- record receipts and 413 ------------------------------------------------------------------------


def receipt(service, record_id, name="events") -> dict:
    return service.record(name, record_id)


def test_a_records_receipt_goes_from_pending_to_sent_and_expires_after_the_retention(
        service, forwarder, sender, clock, settings, store):
    configure(service, max_records=2)
    first_id, = service.add("events", ["a"])
    assert receipt(service, first_id) == {"id": first_id, "state": "pending", "batch_id": None, "sent_at": None,
                                          "status_code": None}
    service.add("events", ["b"])
    batch_id = sends(sender)[-1][1]
    assert receipt(service, first_id)["state"] == "sending" and receipt(service, first_id)["batch_id"] == batch_id
    clock.advance(0.5)
    forwarder.finish(forwarder.claim("events", batch_id, 1, "worker@test"), outcome(SUCCEEDED, 200))
    assert receipt(service, first_id) == {"id": first_id, "state": "sent", "batch_id": batch_id,
                                          "sent_at": "2023-11-14T22:13:20.500Z", "status_code": 200}
    clock.advance(settings.retention_s - 0.001)
    assert receipt(service, first_id)["state"] == "sent"
    clock.advance(0.001)
    with pytest.raises(NotFound, match=f"No record {first_id} in batch events"):
        receipt(service, first_id)
    forwarder.flush()  # beat deletes what expired
    assert not store.redis.exists(keys.batch_receipts("events"))


def test_a_dead_records_receipt_keeps_the_last_status_and_a_redrive_sends_it_again(service, forwarder, sender):
    batch_id = take(service, sender, records=("x",))
    record_id = f"{batch_id.rsplit('-', 1)[0]}.1"
    forwarder.finish(forwarder.claim("events", batch_id, 1, "worker@test"), outcome(FAILED, 410))
    assert receipt(service, record_id) == {"id": record_id, "state": "dead", "batch_id": batch_id, "sent_at": None,
                                           "status_code": 410}
    service.redrive("events")
    assert receipt(service, record_id)["state"] == "sending"
    forwarder.finish(forwarder.claim("events", batch_id, 1, "worker@test"), outcome(SUCCEEDED, 201))
    assert (receipt(service, record_id)["state"], receipt(service, record_id)["status_code"]) == ("sent", 201)


@pytest.mark.parametrize("record_id", ["nope", "E.0", "E.01", "E.-1", "E.1.2", "E." + "9" * 16, ".1", "é.1",
                                       "A" * 65 + ".1", ""])
def test_a_malformed_record_id_is_not_found(service, record_id):
    configure(service)
    service.add("events", ["a"])
    with pytest.raises(NotFound, match="No record"):
        service.record("events", record_id)


def test_an_unknown_batch_or_record_is_not_found(service):
    with pytest.raises(NotFound, match="No batch"):
        service.record("events", "01JEAKQ7M3F4W2Z8V6T5R9N1PB.1")
    with pytest.raises(NotFound, match="No batch"):
        service.record("a:b", "01JEAKQ7M3F4W2Z8V6T5R9N1PB.1")
    configure(service)
    with pytest.raises(NotFound, match="No record"):
        service.record("events", "01JEAKQ7M3F4W2Z8V6T5R9N1PB.1")


@pytest.mark.parametrize("records, first", [
    ([1, 2], 1), ([1, 2, 3], 2), (["a,b", {"c": [1, 2]}, "]", None, "é,ü"], 3), ([[], {}, "", 0.5], 2)])
def test_split_point_is_the_comma_after_the_first_half_in_bytes(records, first):
    from app.core.batches import split_point

    body = ("[" + ",".join(encode_record(r) for r in records) + "]").encode()
    at, count = split_point(body, len(records))
    assert count == first and body[at:at + 1] == b","
    assert json.loads(body[:at] + b"]") == records[:first]
    assert json.loads(b"[" + body[at + 1:]) == records[first:]


def test_split_point_of_something_else_than_a_json_array_is_refused():
    from app.core.batches import split_point

    assert split_point(b"[1]", 2)[0] == -1
    assert split_point(b"[1 2]", 2)[0] == -1
    assert split_point(b"{}", 2)[0] == -1
    assert split_point(b"[\"\xff\",1]", 2)[0] == -1  # not UTF-8


def test_a_413_splits_a_batch_and_a_single_record_413_is_dead_at_once(service, forwarder, sender):
    batch_id = take(service, sender, records=(1, 2, 3))
    settled = forwarder.finish(forwarder.claim("events", batch_id, 1, "worker@test"), outcome(FAILED, 413))
    assert settled.result == "split" and len(settled.released) == 1
    first = settled.released[0]
    assert body_of(forwarder.store, "events", first) == [1, 2]
    sender.sent.clear()
    forwarder.publish_retries("events", [(batch_id, settled)])
    assert sends(sender) == [["events", first, 1]]
    single = forwarder.finish(forwarder.claim("events", first, 1, "worker@test"), outcome(FAILED, 413)).released[0]
    assert body_of(forwarder.store, "events", single) == [1]
    epoch = batch_id.rsplit("-", 1)[0]
    parked = receipt(service, f"{epoch}.2")["batch_id"]
    # Not retried, whatever attempts are left; the record after it is sent next.
    assert forwarder.finish(forwarder.claim("events", single, 1, "worker@test"), outcome(FAILED, 413)) == Settled(
        "dead", released=(parked,))
    [dead] = service.dead("events")
    assert (dead["id"], dead["records"], dead["attempts"], dead["last_status_code"]) == (single, [1], 1, 413)
    assert [receipt(service, f"{epoch}.{n}")["state"] for n in (1, 2, 3)] == ["dead", "sending", "sending"]
