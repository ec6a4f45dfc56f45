"""The queue_*.lua scripts on a real Redis, with time passed in: visibility, expiry, receive counts,
dead letters, stale receipts, FIFO order, delays, retention, counts, notifications."""
from __future__ import annotations

import time

import pytest
import redis

from app.storage import keys
from app.storage import queues as sq

T0 = 1_700_000_000_000
DEFAULTS = {"visibility_timeout_ms": 30_000, "max_receives": 0, "retention_ms": 345_600_000, "delay_ms": 0}


def push(store, *bodies, name="q", now=T0, delay_ms=None, suffix="abc"):
    return sq.push(store, name, now_ms=now, id_suffix=suffix, defaults=DEFAULTS,
                   messages=[(body, delay_ms) for body in bodies])


def receive(store, name="q", now=T0, max_messages=10, vt_ms=None, token="tok"):
    result = sq.receive(store, name, now_ms=now, max_messages=max_messages, visibility_timeout_ms=vt_ms,
                        token=token)
    assert result is not None
    return result[0]


def bodies(messages):
    return [m.body for m in messages]


def configure(store, name="q", **updates):
    sq.put(store, name, now_ms=T0, defaults=DEFAULTS, updates=updates)


def counts(store, name="q", now=T0):
    stats = sq.stats(store, name, now_ms=now)
    return stats.visible, stats.in_flight, stats.delayed, stats.dead


def test_push_creates_the_queue_with_defaults_and_registers_it(store):
    push(store, "ja")
    stats = sq.stats(store, "q", now_ms=T0)
    assert stats.config["visibility_timeout_ms"] == "30000" and stats.config["max_receives"] == "0"
    assert stats.config["created_ms"] == str(T0)
    assert sq.names(store) == ["q"]


def test_put_creates_then_updates_only_the_given_fields(store):
    assert sq.put(store, "q", now_ms=T0, defaults=DEFAULTS, updates={"max_receives": 3}) is True
    assert sq.put(store, "q", now_ms=T0 + 5, defaults=DEFAULTS, updates={"delay_ms": 1000}) is False
    config = sq.stats(store, "q", now_ms=T0).config
    assert (config["max_receives"], config["delay_ms"], config["visibility_timeout_ms"]) == ("3", "1000", "30000")
    assert config["created_ms"] == str(T0) and config["updated_ms"] == str(T0 + 5)


def test_ids_sort_in_push_order_and_receive_is_fifo(store):
    ids = push(store, *[f"j{i}" for i in range(12)])
    ids += push(store, "jlast", suffix="AAA")  # a suffix that sorts first must not matter
    assert ids == sorted(ids) and len(set(ids)) == 13
    got = receive(store, max_messages=100)
    assert [m.id for m in got] == ids
    assert bodies(got) == [f"j{i}" for i in range(12)] + ["jlast"]


def test_receive_takes_at_most_max_and_locks_them(store):
    push(store, "j1", "j2", "j3")
    assert bodies(receive(store, max_messages=2)) == ["j1", "j2"]
    assert bodies(receive(store, max_messages=2)) == ["j3"]
    assert receive(store) == []
    assert counts(store) == (0, 3, 0, 0)


def test_receive_gives_fresh_receipts_and_counts_receives(store):
    push(store, "j1")
    first = receive(store, vt_ms=1000, token="a")[0]
    second = receive(store, now=T0 + 1000, vt_ms=1000, token="b")[0]
    assert (first.receive_count, second.receive_count) == (1, 2)
    assert first.receipt != second.receipt and first.enqueued_ms == second.enqueued_ms == T0


def test_delayed_message_is_invisible_until_due_then_ordered_by_due_time(store):
    push(store, "jlater", delay_ms=5000)
    push(store, "jnow", now=T0 + 1)
    assert counts(store, now=T0 + 1) == (1, 0, 1, 0)
    assert bodies(receive(store, now=T0 + 4999)) == ["jnow"]
    assert bodies(receive(store, now=T0 + 5000)) == ["jlater"]


def test_queue_delay_applies_unless_the_message_sets_its_own(store):
    configure(store, delay_ms=2000)
    push(store, "jqueue")
    push(store, "jown", delay_ms=0)
    assert bodies(receive(store)) == ["jown"]
    assert bodies(receive(store, now=T0 + 2000)) == ["jqueue"]


def test_expired_lock_returns_message_to_its_original_position(store):
    push(store, "j1", "j2")
    receive(store, max_messages=1, vt_ms=1000)
    push(store, "j3", now=T0 + 500)
    assert bodies(receive(store, now=T0 + 999)) == ["j2", "j3"]
    receive_again = receive(store, now=T0 + 1000)
    assert bodies(receive_again) == ["j1"]


def test_received_message_is_not_received_again_within_its_window(store):
    push(store, "j1")
    receive(store, vt_ms=1000)
    assert receive(store, now=T0 + 999) == []
    assert bodies(receive(store, now=T0 + 1000)) == ["j1"]


def test_zero_visibility_timeout_makes_the_message_visible_at_once(store):
    push(store, "j1")
    assert receive(store, vt_ms=0)[0].receive_count == 1
    assert receive(store)[0].receive_count == 2


def test_message_moves_to_dead_letters_after_max_receives(store):
    configure(store, max_receives=2, visibility_timeout_ms=1000)
    push(store, "j1", "j2")
    receive(store, max_messages=1)
    receive(store, now=T0 + 1000, max_messages=1)
    assert bodies(receive(store, now=T0 + 2000)) == ["j2"]  # j1 was received twice: dead now
    assert counts(store, now=T0 + 2000) == (0, 1, 0, 1)
    dead = sq.dead(store, "q", limit=10)
    assert [(m.body, m.receive_count, m.dead_ms) for m in dead] == [("j1", 2, T0 + 2000)]


def test_lowered_max_receives_dead_letters_a_visible_message_instead_of_handing_it_out(store):
    push(store, "j1", "j2")
    receive(store, max_messages=1, vt_ms=0)
    receive(store, max_messages=1, vt_ms=0)  # j1 again: two receives, visible
    configure(store, max_receives=2)
    got = receive(store, max_messages=1)
    assert bodies(got) == ["j2"]  # the batch is filled past the dead-lettered one
    assert counts(store) == (0, 1, 0, 1)


def test_ack_with_current_receipt_deletes_the_message_everywhere(store):
    push(store, "j1")
    message = receive(store)[0]
    assert sq.ack(store, "q", [(message.id, message.receipt)]) == ["acked"]
    assert counts(store) == (0, 0, 0, 0)
    for key in (keys.queue_bodies("q"), keys.queue_meta("q")):
        assert not store.redis.hexists(key, message.id)
    assert store.redis.zscore(keys.queue_ages("q"), message.id) is None
    assert sq.ack(store, "q", [(message.id, message.receipt)]) == ["not_found"]


def test_ack_with_stale_receipt_is_refused_and_without_receipt_succeeds(store):
    push(store, "j1")
    old = receive(store, vt_ms=1000, token="old")[0]
    new = receive(store, now=T0 + 1000, token="new")[0]
    assert sq.ack(store, "q", [(old.id, old.receipt)]) == ["stale"]
    assert counts(store, now=T0 + 1000) == (0, 1, 0, 0)
    assert sq.ack(store, "q", [(new.id, None)]) == ["acked"]


def test_ack_after_lock_expired_but_before_another_receive_succeeds(store):
    push(store, "j1")
    message = receive(store, vt_ms=1000)[0]
    assert counts(store, now=T0 + 5000) == (1, 0, 0, 0)
    assert sq.ack(store, "q", [(message.id, message.receipt)]) == ["acked"]


def test_ack_of_a_never_received_message_needs_no_receipt_and_refuses_one(store):
    (message_id,) = push(store, "j1")
    assert sq.ack(store, "q", [(message_id, "made-up")]) == ["stale"]
    assert sq.ack(store, "q", [(message_id, None)]) == ["acked"]


def test_batch_ack_reports_each_message_and_counts_a_repeated_id_once(store):
    push(store, "j1", "j2")
    one, two = receive(store)
    results = sq.ack(store, "q", [(one.id, one.receipt), (one.id, one.receipt), (two.id, "wrong"),
                                  ("nope", None)])
    assert results == ["acked", "not_found", "stale", "not_found"]
    assert counts(store) == (0, 1, 0, 0)


def test_dead_letter_receipt_is_stale_but_the_message_can_be_deleted_by_id(store):
    configure(store, max_receives=1)
    push(store, "j1")
    message = receive(store, vt_ms=1000)[0]
    assert counts(store, now=T0 + 1000) == (0, 0, 0, 1)
    assert sq.ack(store, "q", [(message.id, message.receipt)]) == ["stale"]
    assert sq.ack(store, "q", [(message.id, None)]) == ["acked"]
    assert counts(store, now=T0 + 1000) == (0, 0, 0, 0)


def test_change_visibility_extends_the_lock_from_now(store):
    push(store, "j1")
    message = receive(store, vt_ms=1000)[0]
    assert sq.change_visibility(store, "q", message.id, message.receipt, now_ms=T0 + 900,
                                visibility_timeout_ms=5000) == ("ok", T0 + 5900)
    assert receive(store, now=T0 + 5899) == []
    assert bodies(receive(store, now=T0 + 5900)) == ["j1"]


def test_change_visibility_to_zero_releases_to_original_position_and_publishes(store, redis_url):
    push(store, "j1", "j2")
    first = receive(store, max_messages=1)[0]
    listener = redis.Redis.from_url(redis_url, decode_responses=True).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(sq.channel("q"))
    assert sq.change_visibility(store, "q", first.id, first.receipt, now_ms=T0 + 10,
                                visibility_timeout_ms=0) == ("ok", T0 + 10)
    assert _next_message(listener) is not None
    assert bodies(receive(store, now=T0 + 10)) == ["j1", "j2"]
    listener.close()


def test_change_visibility_release_over_max_receives_dead_letters(store):
    configure(store, max_receives=1)
    push(store, "j1")
    message = receive(store)[0]
    assert sq.change_visibility(store, "q", message.id, message.receipt, now_ms=T0,
                                visibility_timeout_ms=0) == ("ok", None)
    assert counts(store) == (0, 0, 0, 1)


def test_change_visibility_refuses_stale_receipts_and_unknown_ids(store):
    push(store, "j1")
    old = receive(store, vt_ms=1000, token="old")[0]
    receive(store, now=T0 + 1000, token="new")
    assert sq.change_visibility(store, "q", old.id, old.receipt, now_ms=T0 + 1000,
                                visibility_timeout_ms=10) == ("stale", None)
    assert sq.change_visibility(store, "q", "nope", "r", now_ms=T0, visibility_timeout_ms=10) == ("not_found", None)
    assert sq.change_visibility(store, "other", "nope", "r", now_ms=T0,
                                visibility_timeout_ms=10) == ("missing", None)


def test_change_visibility_of_a_never_received_message_is_stale(store):
    (message_id,) = push(store, "j1")
    assert sq.change_visibility(store, "q", message_id, "", now_ms=T0, visibility_timeout_ms=10)[0] == "stale"


def test_stats_count_each_state_exactly_and_return_expired_locks_first(store):
    configure(store, max_receives=1)
    push(store, "j1", "j2", "j3", "j4")
    push(store, "j5", delay_ms=10_000)
    receive(store, max_messages=1, vt_ms=1000)  # j1: dead once its lock ends
    receive(store, max_messages=1, vt_ms=60_000)  # j2: in flight
    assert counts(store) == (2, 2, 1, 0)
    assert counts(store, now=T0 + 1000) == (2, 1, 1, 1)
    assert counts(store, now=T0 + 10_000) == (3, 1, 0, 1)


def test_sweep_returns_expired_locks_dead_letters_and_publishes(store, redis_url):
    configure(store, max_receives=2, visibility_timeout_ms=1000)
    push(store, "j1", "j2")
    receive(store, max_messages=1)  # j1, once
    assert bodies(receive(store, now=T0 + 1000, max_messages=1)) == ["j1"]  # twice: its limit
    assert bodies(receive(store, now=T0 + 1000, max_messages=1)) == ["j2"]
    listener = redis.Redis.from_url(redis_url, decode_responses=True).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(sq.channel("q"))
    assert sq.sweep_many(store, ["q"], now_ms=T0 + 2000, drop_limit=100) == [(1, 0)]
    assert _next_message(listener) is not None
    assert store.redis.zcard(keys.queue_inflight("q")) == 0
    assert store.redis.zrange(keys.queue_ready("q"), 0, -1) == [receive(store, now=T0 + 2000)[0].id]
    assert [m.body for m in sq.dead(store, "q", limit=10)] == ["j1"]
    listener.close()


def test_sweep_drops_messages_older_than_retention_in_every_state(store):
    configure(store, retention_ms=60_000, max_receives=1)
    push(store, "j1", "j2", "j3")
    push(store, "jdelayed", delay_ms=30_000)
    receive(store, max_messages=1, vt_ms=1000)  # j1: dead at T0 + 1000
    receive(store, max_messages=1, vt_ms=600_000)  # j2: in flight
    assert sq.sweep_many(store, ["q"], now_ms=T0 + 59_999, drop_limit=100) == [(0, 0)]
    assert sq.sweep_many(store, ["q"], now_ms=T0 + 60_000, drop_limit=100) == [(0, 3)]
    assert counts(store, now=T0 + 60_000) == (1, 0, 0, 0)
    assert sq.sweep_many(store, ["q"], now_ms=T0 + 90_000, drop_limit=100) == [(0, 1)]
    assert store.redis.hlen(keys.queue_bodies("q")) == 0 and store.redis.hlen(keys.queue_meta("q")) == 0


def test_sweep_drops_at_most_the_limit_per_run(store):
    configure(store, retention_ms=60_000)
    push(store, *[f"j{i}" for i in range(5)])
    assert sq.sweep_many(store, ["q"], now_ms=T0 + 60_000, drop_limit=3) == [(0, 3)]
    assert bodies(receive(store, now=T0 + 60_000)) == ["j3", "j4"]


def test_redrive_moves_dead_letters_back_visible_now_with_count_reset(store):
    configure(store, max_receives=1)
    push(store, "j1", "j2")
    receive(store, vt_ms=0)
    assert counts(store, now=T0 + 5) == (0, 0, 0, 2)
    assert sq.redrive(store, "q", now_ms=T0 + 5, limit=1) == 1
    assert sq.redrive(store, "q", now_ms=T0 + 5, limit=10) == 1
    got = receive(store, now=T0 + 5)
    assert bodies(got) == ["j1", "j2"] and [m.receive_count for m in got] == [1, 1]
    assert sq.redrive(store, "missing", now_ms=T0, limit=1) is None


def test_delete_removes_every_key_and_the_registry_entry(store):
    configure(store, max_receives=1)
    push(store, "j1", "j2", "j3")
    receive(store, max_messages=1, vt_ms=0)
    receive(store, max_messages=1)
    assert sq.delete(store, "q") is True
    assert store.redis.exists(*keys.queue_keys("q")) == 0 and sq.names(store) == []
    assert sq.delete(store, "q") is False


def test_scripts_answer_missing_for_an_unknown_queue(store):
    assert sq.receive(store, "nope", now_ms=T0, max_messages=1, visibility_timeout_ms=None, token="t") is None
    assert sq.ack(store, "nope", [("x", None)]) is None
    assert sq.stats(store, "nope", now_ms=T0) is None
    assert sq.sweep_many(store, ["nope"], now_ms=T0, drop_limit=1) == [(0, 0)]
    assert store.redis.exists(keys.queue("nope")) == 0


def test_empty_receive_tells_when_something_may_become_visible(store):
    configure(store)
    assert sq.receive(store, "q", now_ms=T0, max_messages=1, visibility_timeout_ms=None,
                      token="t") == ([], sq.NO_NEXT)
    push(store, "jdelayed", delay_ms=5000)
    push(store, "j1")
    receive(store, vt_ms=2000)
    assert sq.receive(store, "q", now_ms=T0, max_messages=1, visibility_timeout_ms=None,
                      token="t") == ([], T0 + 2000)


def test_push_publishes_how_many_messages_it_added_delayed_ones_too(store, redis_url):
    listener = redis.Redis.from_url(redis_url, decode_responses=True).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(sq.channel("q"))
    push(store, "jlater", delay_ms=1000)
    assert _next_message(listener)["data"] == "1"
    push(store, "j1", "j2")
    assert _next_message(listener)["data"] == "2"
    listener.close()


def test_delete_publishes_zero_which_wakes_every_waiter(store, redis_url):
    push(store, "j1")
    listener = redis.Redis.from_url(redis_url, decode_responses=True).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(sq.channel("q"))
    sq.delete(store, "q")
    assert _next_message(listener)["data"] == "0"
    listener.close()


def test_meta_round_trips_through_the_python_parser(store):
    push(store, "j1")
    message = receive(store, vt_ms=10)[0]
    raw = store.redis.hget(keys.queue_meta("q"), message.id)
    assert sq.parse_meta(raw) == (T0, T0, 1, message.receipt)


@pytest.mark.parametrize("body", ["t", "j" + "x" * 100_000, "t\u00e9\u4e2d\n\x00end"])
def test_bodies_are_stored_and_returned_byte_for_byte(store, body):
    push(store, body)
    assert bodies(receive(store)) == [body]


def _next_message(pubsub, timeout_s: float = 2.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.05)
        if message is not None:
            return message
    return None


def test_attributes_and_the_first_receive_time_come_with_each_receive(store):
    ids = sq.push(store, "q", now_ms=T0, id_suffix="abc", defaults=DEFAULTS,
                  messages=[("tplain", None), ("twith", None)], attributes=["", '{"a":1}'])
    first = receive(store, now=T0 + 5, vt_ms=0)
    assert [(m.body, m.attributes, m.first_received_ms) for m in first] == [("tplain", "", T0 + 5),
                                                                          ("twith", '{"a":1}', T0 + 5)]
    again = receive(store, now=T0 + 9)
    assert [(m.receive_count, m.first_received_ms) for m in again] == [(2, T0 + 5), (2, T0 + 5)]
    assert sq.parse_meta(store.redis.hget(keys.queue_meta("q"), ids[1])) == (T0, T0, 2, again[1].receipt)
    assert sq.ack(store, "q", [(ids[1], again[1].receipt)]) == [sq.Acked.ACKED]
    assert not store.redis.exists(keys.queue_attrs("q"))  # acknowledging drops the attributes too


def test_meta_written_before_first_receive_times_were_kept_still_parses(store):
    [message_id] = push(store, "j1")
    store.redis.zrem(keys.queue_ready("q"), message_id)
    store.redis.zadd(keys.queue_inflight("q"), {message_id: T0 - 1})
    store.redis.hset(keys.queue_meta("q"), message_id, f"{T0} {T0} 1 oldtoken.0")  # the former layout
    [message] = receive(store, now=T0)
    assert (message.receive_count, message.first_received_ms) == (2, T0)
    assert sq.ack(store, "q", [(message_id, "oldtoken.0")]) == [sq.Acked.STALE]


def test_a_push_to_existing_queues_only_creates_nothing(store):
    assert sq.push(store, "q", now_ms=T0, id_suffix="abc", defaults=DEFAULTS, messages=[("j1", None)],
                   existing=True) is None
    assert not store.redis.exists(keys.queue("q")) and sq.names(store) == []
    configure(store)
    assert len(sq.push(store, "q", now_ms=T0, id_suffix="abc", defaults=DEFAULTS, messages=[("j1", None)],
                       existing=True)) == 1
