"""A queue's dead_letter_queue on a real Redis: each script that dead-letters (receive, stats, sweep,
a release) moves the message to the target in the same script, keeping id, body and enqueued time;
a deleted target falls back to the queue's own dead letters; a target changed by another process
is followed."""
from __future__ import annotations

import pytest
import redis

from app.storage import keys
from app.storage import queues as sq

T0 = 1_700_000_000_000
VT = 1000
DEFAULTS = {"visibility_timeout_ms": 30_000, "max_receives": 0, "retention_ms": 345_600_000, "delay_ms": 0}


@pytest.fixture(autouse=True)
def forget_guesses():
    """Each test starts as a fresh process would: no remembered targets."""
    sq._dead_letter_queues.clear()
    yield
    sq._dead_letter_queues.clear()


def configure(store, name, **updates):
    sq.put(store, name, now_ms=T0, defaults=DEFAULTS, updates=updates)


def poisoned(store, target="dlq", source="q"):
    """`source` dead-letters into `target` after one receive; one message received once, its
    lock ended at T0 + VT. Returns its id."""
    configure(store, target)
    configure(store, source, max_receives=1, visibility_timeout_ms=VT, dead_letter_queue=target)
    [message_id] = sq.push(store, source, now_ms=T0 - 5, id_suffix="abc", defaults=DEFAULTS,
                           messages=[("jpoison", None)])
    received, _ = sq.receive(store, source, now_ms=T0, max_messages=1, visibility_timeout_ms=None, token="t")
    assert [m.id for m in received] == [message_id]
    return message_id


def assert_moved(store, message_id, now, source="q", target="dlq"):
    for key in (keys.queue_ready(source), keys.queue_inflight(source), keys.queue_dead(source),
                keys.queue_ages(source)):
        assert store.redis.zscore(key, message_id) is None, key
    assert not store.redis.hexists(keys.queue_bodies(source), message_id)
    assert not store.redis.hexists(keys.queue_meta(source), message_id)
    assert store.redis.zscore(keys.queue_ready(target), message_id) == now
    assert store.redis.zscore(keys.queue_ages(target), message_id) == now  # retention counts from the move
    assert sq.parse_meta(store.redis.hget(keys.queue_meta(target), message_id)) == (now, T0 - 5, 0, "")
    received, _ = sq.receive(store, target, now_ms=now, max_messages=10, visibility_timeout_ms=None, token="u")
    assert [(m.id, m.body, m.receive_count, m.enqueued_ms) for m in received] == [(message_id, "jpoison", 1, T0 - 5)]


def test_receive_moves_a_message_past_max_receives_to_the_target(store):
    message_id = poisoned(store)
    received, _ = sq.receive(store, "q", now_ms=T0 + VT, max_messages=10, visibility_timeout_ms=None, token="t2")
    assert received == []
    assert_moved(store, message_id, T0 + VT)


def test_stats_and_sweep_move_expired_messages_too(store):
    first = poisoned(store)
    stats = sq.stats(store, "q", now_ms=T0 + VT)
    assert (stats.visible, stats.in_flight, stats.dead) == (0, 0, 0)
    assert_moved(store, first, T0 + VT)
    second = poisoned(store, target="dlq2", source="q2")
    assert sq.sweep_many(store, ["q", "q2"], now_ms=T0 + VT + 1, drop_limit=100) == [sq.Swept(0, 0)] * 2
    assert_moved(store, second, T0 + VT + 1, source="q2", target="dlq2")


def test_a_release_past_max_receives_moves_the_message(store):
    message_id = poisoned(store)
    changed = sq.change_visibility(store, "q", message_id, "t.0", now_ms=T0 + 10, visibility_timeout_ms=0)
    assert changed == sq.Visibility("ok", None)
    assert_moved(store, message_id, T0 + 10)


def test_a_lowered_max_receives_moves_a_visible_message_instead_of_handing_it_out(store):
    configure(store, "dlq")
    configure(store, "q", dead_letter_queue="dlq")
    [message_id] = sq.push(store, "q", now_ms=T0 - 5, id_suffix="abc", defaults=DEFAULTS, messages=[("jpoison", None)])
    sq.receive(store, "q", now_ms=T0, max_messages=1, visibility_timeout_ms=0, token="t")
    configure(store, "q", max_receives=1, dead_letter_queue="dlq")
    assert sq.receive(store, "q", now_ms=T0 + 1, max_messages=1, visibility_timeout_ms=None, token="t")[0] == []
    assert_moved(store, message_id, T0 + 1)


def test_the_move_wakes_long_polls_of_the_target(store, redis_url):
    message_id = poisoned(store)
    listener = redis.Redis.from_url(redis_url, decode_responses=True).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(sq.channel("dlq"))
    assert listener.get_message(timeout=1) is None
    sq.receive(store, "q", now_ms=T0 + VT, max_messages=10, visibility_timeout_ms=None, token="t2")
    message = listener.get_message(timeout=5)
    assert message is not None and message["data"] == "1"
    listener.close()
    assert store.redis.zscore(keys.queue_ready("dlq"), message_id) == T0 + VT


def test_a_deleted_target_falls_back_to_the_queues_own_dead_letters(store):
    message_id = poisoned(store)
    assert sq.delete(store, "dlq")
    assert sq.receive(store, "q", now_ms=T0 + VT, max_messages=10, visibility_timeout_ms=None, token="t2")[0] == []
    assert [m.id for m in sq.dead(store, "q", limit=10)] == [message_id]
    assert not store.redis.exists(keys.queue("dlq"))  # not re-created by the move


def test_a_target_changed_by_another_process_is_followed(store):
    message_id = poisoned(store)  # this process now remembers "dlq" for q
    assert sq._dead_letter_queues["q"] == "dlq"
    configure(store, "other")
    # as another process would:
    configure(store, "q", max_receives=1, visibility_timeout_ms=VT, dead_letter_queue="other")
    sq.receive(store, "q", now_ms=T0 + VT, max_messages=10, visibility_timeout_ms=None, token="t2")
    assert_moved(store, message_id, T0 + VT, target="other")
    assert store.redis.zcard(keys.queue_ready("dlq")) == 0


def test_a_target_removed_by_another_process_means_the_own_dead_letters(store):
    message_id = poisoned(store)
    configure(store, "q", max_receives=1, visibility_timeout_ms=VT, dead_letter_queue="")
    sq.receive(store, "q", now_ms=T0 + VT, max_messages=10, visibility_timeout_ms=None, token="t2")
    assert [m.id for m in sq.dead(store, "q", limit=10)] == [message_id]
    assert store.redis.zcard(keys.queue_ready("dlq")) == 0


def test_a_stale_guess_in_a_pipelined_sweep_is_run_again_with_the_right_target(store):
    message_id = poisoned(store)
    sq._dead_letter_queues["q"] = "nonexistent"
    assert sq.sweep_many(store, ["q"], now_ms=T0 + VT, drop_limit=100) == [sq.Swept(0, 0)]
    assert_moved(store, message_id, T0 + VT)


def test_an_id_already_in_the_target_keeps_the_message_in_the_own_dead_letters(store):
    message_id = poisoned(store)
    store.redis.hset(keys.queue_meta("dlq"), message_id, f"{T0} {T0} 0 ")
    sq.receive(store, "q", now_ms=T0 + VT, max_messages=10, visibility_timeout_ms=None, token="t2")
    assert [m.id for m in sq.dead(store, "q", limit=10)] == [message_id]


def test_attributes_move_with_the_message(store):
    configure(store, "dlq")
    configure(store, "q", max_receives=1, visibility_timeout_ms=VT, dead_letter_queue="dlq")
    attributes = '{"k":{"DataType":"String","StringValue":"v"}}'
    [message_id] = sq.push(store, "q", now_ms=T0, id_suffix="abc", defaults=DEFAULTS, messages=[("tx", None)],
                           attributes=[attributes])
    sq.receive(store, "q", now_ms=T0, max_messages=1, visibility_timeout_ms=None, token="t")
    sq.receive(store, "q", now_ms=T0 + VT, max_messages=1, visibility_timeout_ms=None, token="t")
    assert not store.redis.hexists(keys.queue_attrs("q"), message_id)
    [moved], _ = sq.receive(store, "dlq", now_ms=T0 + VT, max_messages=1, visibility_timeout_ms=None, token="u")
    assert (moved.id, moved.body, moved.attributes) == (message_id, "tx", attributes)
