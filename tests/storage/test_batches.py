"""The batch scripts on a real Redis: taking, byte caps, order, claims, leases, dead batches."""
from __future__ import annotations

import json

import pytest

from app.storage import batches as sb
from app.storage import keys
from app.storage.batches import Added, BatchConfig, Claimed, Finished, Flushed, Refused

NAME = "orders"
GRACE_MS = 60_000
MARGIN_MS = 5_000
T0 = 1_700_000_000_000
WORKER = "worker@test"
RETENTION_MS = 7 * 86_400_000


def config(**overrides) -> BatchConfig:
    values = dict(endpoint="http://127.0.0.1:9/in", max_records=10, max_bytes=1024 * 1024, interval_ms=10_000,
                  headers={}, max_attempts=3, backoff_base_ms=2000, timeout_ms=30_000)
    values.update(overrides)
    return BatchConfig(**values)


def setup(store, now=T0, **overrides) -> None:
    created, taken = sb.configure(store, NAME, config(**overrides), now_ms=now, grace_ms=GRACE_MS, epoch="E")
    assert created and taken == []


def add(store, records, now=T0) -> Added | None:
    return sb.add(store, NAME, [json.dumps(r) for r in records], now_ms=now, grace_ms=GRACE_MS)


def body(store, batch_id) -> list:
    return json.loads(store.redis.hget(keys.batch_bodies(NAME), batch_id))


def pending(store) -> list:
    return [json.loads(r) for r in store.redis.lrange(keys.batch_pending(NAME), 0, -1)]


def due_score(store):
    return store.redis.zscore(keys.batches_due(), NAME)


def test_records_below_the_limits_stay_pending_and_make_the_batch_due_after_the_interval(store):
    setup(store)
    result = add(store, [1, 2, 3])
    assert result == Added(["E.1", "E.2", "E.3"], [])
    assert pending(store) == [1, 2, 3]
    assert store.redis.hget(keys.batch(NAME), "oldest_ms") == str(T0)
    assert due_score(store) == T0 + 10_000
    assert add(store, [4], now=T0 + 500).ids == ["E.4"]  # record numbers continue
    assert store.redis.hget(keys.batch(NAME), "oldest_ms") == str(T0)  # still the oldest record's arrival


def test_reaching_max_records_takes_one_batch_in_arrival_order(store):
    setup(store, max_records=3)
    assert add(store, ["a", "b"]) == Added(["E.1", "E.2"], [])
    result = add(store, ["c"], now=T0 + 1)
    assert result.ids == ["E.3"] and len(result.taken) == 1
    batch_id = result.taken[0]
    assert batch_id == "E-1"
    assert body(store, batch_id) == ["a", "b", "c"]
    assert pending(store) == []
    assert store.redis.hget(keys.batch(NAME), "oldest_ms") is None
    assert sb.taken(store, NAME)[batch_id] == {"state": "queued", "attempts": 0, "records": 3, "first": 1,
                                               "bytes": len('["a","b","c"]'), "taken_ms": T0 + 1}
    # Nothing pending: only the taken batch's publish deadline keeps the batch in the due index.
    assert due_score(store) == T0 + 1 + GRACE_MS


def test_one_call_over_several_batches_takes_each_full_batch_and_keeps_the_rest_pending(store):
    setup(store, max_records=10)
    result = add(store, list(range(25)))
    assert result.taken == ["E-1", "E-2"]
    assert result.ids == [f"E.{n}" for n in range(1, 26)]
    assert body(store, "E-1") == list(range(10))
    assert body(store, "E-2") == list(range(10, 20))
    assert pending(store) == list(range(20, 25))
    assert store.redis.hget(keys.batch(NAME), "oldest_ms") == str(T0)


def test_byte_cap_cuts_before_the_record_that_would_overflow(store):
    # Each record is '"xxxxxxxx"' = 10 bytes; a body of n records is 10n + n + 1 bytes.
    setup(store, max_records=100, max_bytes=40)
    records = ["x" * 8] * 7
    result = add(store, records)
    # Three records make 34 bytes; a fourth would make 45 > 40: batches of 3, 3, and 1 pending.
    assert result.taken == ["E-1", "E-2"]
    for batch_id in result.taken:
        raw = store.redis.hget(keys.batch_bodies(NAME), batch_id)
        assert len(raw.encode()) <= 40 and json.loads(raw) == records[:3]
    assert pending(store) == records[:1]
    assert store.redis.hget(keys.batch(NAME), "pending_bytes") == "10"


def test_a_batch_reaching_max_bytes_exactly_is_taken_at_once(store):
    setup(store, max_records=100, max_bytes=23)  # two 10-byte records: 10 + 10 + 2 + 1 = 23 bytes
    assert add(store, ["x" * 8]).taken == []
    assert add(store, ["y" * 8]).taken == ["E-1"]
    assert pending(store) == []


def test_multibyte_records_are_measured_in_utf8_bytes(store):
    setup(store, max_records=100, max_bytes=20)
    record = "é" * 4  # '"éééé"' is 6 characters but 10 bytes
    result = sb.add(store, NAME, [json.dumps(record, ensure_ascii=False)] * 2, now_ms=T0, grace_ms=GRACE_MS)
    # Two records make 10 + 10 + 3 = 23 bytes > 20 (in characters it would be 15): the first leaves
    # alone, the second waits.
    assert result == Added(["E.1", "E.2"], ["E-1"])
    assert body(store, "E-1") == [record] and pending(store) == [record]


def test_a_record_that_cannot_fit_in_a_batch_alone_is_refused_and_nothing_is_stored(store):
    setup(store, max_bytes=16)
    result = add(store, ["ok", "x" * 13, "ok"])  # '"xxxxxxxxxxxxx"' = 15 bytes + 2 > 16
    assert result == Added([], [], too_large=1, max_bytes=16)  # the second record (index 1)
    assert pending(store) == []
    assert store.redis.hget(keys.batch(NAME), "record_seq") == "0"


def test_adding_to_an_unknown_batch_is_refused(store):
    assert add(store, [1]) is None
    assert store.redis.keys("*") == []


def test_flush_takes_pending_records_once_the_oldest_is_interval_old_and_never_an_empty_batch(store):
    setup(store, interval_ms=10_000)
    assert sb.flush(store, [NAME], now_ms=T0, grace_ms=GRACE_MS, limit=10, alive_after_ms=0) == []  # nothing pending
    add(store, [1, 2], now=T0)
    add(store, [3], now=T0 + 4000)
    assert sb.flush(store, [NAME], now_ms=T0 + 9999, grace_ms=GRACE_MS, limit=10, alive_after_ms=0) == []
    taken = sb.flush(store, [NAME], now_ms=T0 + 10_000, grace_ms=GRACE_MS, limit=10, alive_after_ms=0)
    assert taken == [Flushed("taken", NAME, "E-1", 1)]
    assert body(store, "E-1") == [1, 2, 3]
    assert sb.flush(store, [NAME], now_ms=T0 + 20_000, grace_ms=GRACE_MS, limit=10, alive_after_ms=0) == []
    assert sb.taken(store, NAME).keys() == {"E-1"}


def test_due_names_lists_batches_whose_interval_or_deadline_passed(store):
    setup(store)
    add(store, [1])
    assert sb.due_names(store, now_ms=T0 + 9999, limit=10) == []
    assert sb.due_names(store, now_ms=T0 + 10_000, limit=10) == [NAME]
    sb.flush(store, [NAME], now_ms=T0 + 10_000, grace_ms=GRACE_MS, limit=10, alive_after_ms=0)
    assert due_score(store) == T0 + 10_000 + GRACE_MS


def claim(store, batch_id, attempt, now) -> Claimed | list:
    return sb.claim(store, NAME, batch_id, attempt, worker=WORKER, now_ms=now, lease_margin_ms=MARGIN_MS)


def finish(store, batch_id, attempt, now, verdict, status=None, error=None, deadline=None) -> list:
    return sb.finish(store, NAME, batch_id, attempt, worker=WORKER, now_ms=now, verdict=verdict, status_code=status,
                     error=error, deadline_ms=deadline if deadline is not None else now + 2000 + GRACE_MS,
                     grace_ms=GRACE_MS, retention_ms=RETENTION_MS)


def take_one(store, records=(1, 2, 3)) -> str:
    setup(store, max_records=len(records))
    return add(store, list(records)).taken[0]


def test_claim_returns_the_body_once_and_drops_duplicate_messages(store):
    batch_id = take_one(store)
    claimed = claim(store, batch_id, 1, T0 + 10)
    assert isinstance(claimed, Claimed)
    assert json.loads(claimed.body) == [1, 2, 3]
    assert (claimed.endpoint, claimed.records, claimed.timeout_ms, claimed.max_attempts) == (
        "http://127.0.0.1:9/in", 3, 30_000, 3)
    assert claim(store, batch_id, 1, T0 + 11) == Refused("skip", "sending")
    assert claim(store, batch_id, 2, T0 + 11) == Refused("skip", "sending")
    assert store.redis.zscore(keys.batch_taken(NAME), batch_id) == T0 + 10 + 30_000 + MARGIN_MS
    assert claim(store, "E-404", 1, T0) == Refused("gone")


def test_success_deletes_the_batch_and_counts_it(store):
    batch_id = take_one(store)
    claim(store, batch_id, 1, T0)
    assert finish(store, batch_id, 1, T0 + 50, "succeeded", 200) == Finished("sent")
    config_hash = store.redis.hgetall(keys.batch(NAME))
    assert (config_hash["sent_batches"], config_hash["sent_records"]) == ("1", "3")
    assert (config_hash["last_sent_ms"], config_hash["last_status_code"]) == (str(T0 + 50), "200")
    assert sb.taken(store, NAME) == {}
    assert store.redis.hlen(keys.batch_bodies(NAME)) == 0
    # Only the receipt is left: beat comes back when it expires.
    assert due_score(store) == T0 + 50 + RETENTION_MS
    assert claim(store, batch_id, 2, T0 + 60) == Refused("gone")


def test_retries_keep_the_id_until_attempts_run_out_then_the_batch_is_dead(store):
    batch_id = take_one(store)
    for attempt in (1, 2):
        assert isinstance(claim(store, batch_id, attempt, T0 + attempt), Claimed)
        assert finish(store, batch_id, attempt, T0 + attempt, "retry", 500, "HTTP 500",
                      deadline=T0 + 99_000) == Finished("retry", attempt + 1)
        assert store.redis.zscore(keys.batch_taken(NAME), batch_id) == T0 + 99_000
    assert isinstance(claim(store, batch_id, 3, T0 + 3), Claimed)
    assert finish(store, batch_id, 3, T0 + 3, "retry", 503, "HTTP 503") == Finished("dead")
    assert sb.taken(store, NAME) == {}
    [(dead_id, dead_body, meta)] = sb.dead(store, NAME, limit=10)
    assert (dead_id, json.loads(dead_body)) == (batch_id, [1, 2, 3])
    assert (meta["attempts"], meta["last_status_code"], meta["error"]) == (3, 503, "HTTP 503")


def test_a_permanent_failure_makes_the_batch_dead_at_once(store):
    batch_id = take_one(store)
    claim(store, batch_id, 1, T0)
    assert finish(store, batch_id, 1, T0, "failed", 400, "HTTP 400") == Finished("dead")
    assert [d[0] for d in sb.dead(store, NAME, limit=10)] == [batch_id]


def test_a_stale_attempt_cannot_settle_the_batch_but_its_success_still_counts(store):
    batch_id = take_one(store)
    claim(store, batch_id, 1, T0)
    finish(store, batch_id, 1, T0, "retry", 500)
    assert finish(store, batch_id, 1, T0 + 1, "retry", 500) == Finished("stale", state="queued")
    claim(store, batch_id, 2, T0 + 2)
    assert finish(store, batch_id, 1, T0 + 3, "succeeded", 200) == Finished("sent")  # delivered all the same
    assert finish(store, batch_id, 2, T0 + 4, "retry", 500) == Finished("gone")


def test_redrive_sends_dead_batches_again_with_a_fresh_budget(store):
    batch_id = take_one(store)
    claim(store, batch_id, 1, T0)
    finish(store, batch_id, 1, T0, "failed", 404)
    assert sb.redrive(store, NAME, now_ms=T0 + 5, grace_ms=GRACE_MS, limit=10) == [batch_id]
    assert sb.dead(store, NAME, limit=10) == []
    assert sb.taken(store, NAME)[batch_id]["state"] == "queued"
    assert isinstance(claim(store, batch_id, 1, T0 + 6), Claimed)
    assert sb.redrive(store, NAME, now_ms=T0 + 7, grace_ms=GRACE_MS, limit=10) == []


def test_an_expired_lease_sends_the_batch_again_with_the_next_attempt(store):
    batch_id = take_one(store)
    claim(store, batch_id, 1, T0)  # lease until T0 + 35 s
    lease_end = T0 + 30_000 + MARGIN_MS
    assert sb.flush(store, [NAME], now_ms=lease_end - 1, grace_ms=GRACE_MS, limit=10, alive_after_ms=0) == []
    lost = sb.flush(store, [NAME], now_ms=lease_end, grace_ms=GRACE_MS, limit=10, alive_after_ms=0)
    assert lost == [Flushed("lost", NAME, batch_id, 2)]
    meta = sb.taken(store, NAME)[batch_id]
    assert (meta["state"], meta["attempts"]) == ("queued", 1)
    assert "worker lost" in meta["error"]
    assert claim(store, batch_id, 1, lease_end + 1) == Refused("skip", "queued")  # the dead worker's message
    assert isinstance(claim(store, batch_id, 2, lease_end + 1), Claimed)


def test_a_lost_worker_on_the_last_attempt_makes_the_batch_dead(store):
    batch_id = take_one(store)
    setup_attempts = 3
    now = T0
    for attempt in range(1, setup_attempts + 1):
        claim(store, batch_id, attempt, now)
        now += 30_000 + MARGIN_MS
        kind = "dead" if attempt == setup_attempts else "lost"
        expected_attempt = attempt if kind == "dead" else attempt + 1
        assert sb.flush(store, [NAME], now_ms=now, grace_ms=GRACE_MS, limit=10, alive_after_ms=0) == [
            Flushed(kind, NAME, batch_id, expected_attempt)]
    assert [d[0] for d in sb.dead(store, NAME, limit=10)] == [batch_id]


def test_a_queued_batch_nobody_claimed_is_published_again_after_its_deadline(store):
    # The publish after taking, or a retry message, was lost: the sweep publishes the attempt again.
    batch_id = take_one(store)
    assert sb.flush(store, [NAME], now_ms=T0 + GRACE_MS, grace_ms=GRACE_MS, limit=10, alive_after_ms=0) == [
        Flushed("republish", NAME, batch_id, 1)]
    claim(store, batch_id, 1, T0 + GRACE_MS + 1)
    finish(store, batch_id, 1, T0 + GRACE_MS + 2, "retry", 500, deadline=T0 + 200_000)
    assert sb.flush(store, [NAME], now_ms=T0 + 199_999, grace_ms=GRACE_MS, limit=10, alive_after_ms=0) == []
    assert sb.flush(store, [NAME], now_ms=T0 + 200_000, grace_ms=GRACE_MS, limit=10, alive_after_ms=0) == [
        Flushed("republish", NAME, batch_id, 2)]


def test_lowering_the_limits_takes_the_full_batches_that_were_pending(store):
    setup(store, max_records=100)
    add(store, list(range(7)))
    created, taken = sb.configure(store, NAME, config(max_records=3), now_ms=T0 + 1, grace_ms=GRACE_MS, epoch="X")
    assert not created and taken == ["E-1", "E-2"]  # the epoch of a batch never changes
    assert [body(store, i) for i in taken] == [[0, 1, 2], [3, 4, 5]]
    assert pending(store) == [6]
    assert store.redis.hget(keys.batch(NAME), "pending_bytes") == "1"


def test_env_mode_sets_endpoint_size_and_interval_and_keeps_the_other_fields(store):
    setup(store, max_bytes=5000, max_attempts=7, headers={"X-A": "1"})
    sb.configure(store, NAME, config(endpoint="http://127.0.0.1:9/other", max_records=5, interval_ms=1000),
                 now_ms=T0, grace_ms=GRACE_MS, epoch="X", mode="env")
    loaded = sb.load(store, NAME)
    assert (loaded["endpoint"], loaded["max_records"], loaded["interval_ms"]) == ("http://127.0.0.1:9/other", "5",
                                                                                  "1000")
    assert (loaded["max_bytes"], loaded["max_attempts"], loaded["headers"]) == ("5000", "7", '{"X-A": "1"}')


def test_delete_removes_every_key_of_the_batch(store):
    setup(store, max_records=2)
    add(store, [1, 2, 3])
    batch_id = "E-1"
    claim(store, batch_id, 1, T0)
    finish(store, batch_id, 1, T0, "failed", 400)
    assert sb.delete(store, NAME) is True
    assert store.redis.keys("*") == []
    assert sb.delete(store, NAME) is False


@pytest.mark.parametrize("records", [[{"k": "v" * 50}] * 30, [[1, 2], None, "s", 3.5, True, {}] * 5])
def test_any_json_values_round_trip_through_batches(store, records):
    setup(store, max_records=4, max_bytes=200)
    ids = add(store, records).taken
    sent = [record for batch_id in ids for record in body(store, batch_id)]
    assert sent + pending(store) == records


def test_a_queued_batch_nobody_claimed_waits_while_the_broker_has_a_backlog(store):
    batch_id = take_one(store)
    assert sb.flush(store, [NAME], now_ms=T0 + GRACE_MS, grace_ms=GRACE_MS, limit=10, alive_after_ms=0, backlog=3) == []
    assert store.redis.zscore(keys.batch_taken(NAME), batch_id) == T0 + 2 * GRACE_MS  # looked at again later
    republished = sb.flush(store, [NAME], now_ms=T0 + 2 * GRACE_MS, grace_ms=GRACE_MS, limit=10, alive_after_ms=0)
    assert republished == [Flushed("republish", NAME, batch_id, 1)]
