"""The batch scripts on a real Redis: taking, byte caps, order, claims, leases, dead batches."""
from __future__ import annotations

import json

import pytest

from app.storage import batches as sb
from app.storage import keys
from app.storage.batches import Added, BatchConfig, Claimed, Finished, Flushed, Receipt, Refused

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


# -- record receipts ------------------------------------------------------------------------------


def receipt(store, number, now=T0, epoch="E") -> Receipt | None:
    return sb.record(store, NAME, epoch, number, now_ms=now)


def test_a_record_is_pending_then_sending_in_its_batch_then_sent_until_its_receipt_expires(store):
    setup(store, max_records=3)
    add(store, ["a", "b"])
    assert [receipt(store, n) for n in (1, 2, 3)] == [Receipt("pending"), Receipt("pending"), Receipt("unknown")]
    batch_id = add(store, ["c", "d"], now=T0 + 1).taken[0]  # records 1..3 leave, 4 waits
    assert [receipt(store, n).state for n in (1, 2, 3, 4)] == ["sending", "sending", "sending", "pending"]
    assert receipt(store, 1) == Receipt("sending", batch_id)
    claim(store, batch_id, 1, T0 + 2)
    finish(store, batch_id, 1, T0 + 3, "retry", 503, "HTTP 503")
    assert receipt(store, 2) == Receipt("sending", batch_id, status_code=503)  # the latest answer
    claim(store, batch_id, 2, T0 + 4)
    finish(store, batch_id, 2, T0 + 5, "succeeded", 202)
    assert receipt(store, 3) == Receipt("sent", batch_id, sent_ms=T0 + 5, status_code=202)
    assert receipt(store, 4) == Receipt("pending")
    assert receipt(store, 1, now=T0 + 5 + RETENTION_MS - 1).state == "sent"
    assert receipt(store, 1, now=T0 + 5 + RETENTION_MS) == Receipt("unknown")  # expired, before beat deletes it
    assert due_score(store) == T0 + 1 + 10_000  # record 4's interval comes first
    expiry = T0 + 5 + RETENTION_MS
    sb.flush(store, [NAME], now_ms=T0 + 1 + 10_000, grace_ms=GRACE_MS, limit=10, alive_after_ms=0)  # takes it
    assert due_score(store) == T0 + 1 + 10_000 + GRACE_MS
    sb.finish(store, NAME, "E-2", 1, worker=WORKER, now_ms=expiry - 1, verdict="succeeded", status_code=200,
              error=None, deadline_ms=0, grace_ms=GRACE_MS, retention_ms=RETENTION_MS)
    assert due_score(store) == expiry  # the first receipt to expire wakes beat
    sb.flush(store, [NAME], now_ms=expiry, grace_ms=GRACE_MS, limit=10, alive_after_ms=0)
    assert store.redis.zrange(keys.batch_receipts(NAME), 0, -1) == ["E-2"]
    assert store.redis.hkeys(keys.batch_sent(NAME)) == ["E-2"]
    assert store.redis.zrange(keys.batch_sent_expiry(NAME), 0, -1) == ["E-2"]
    assert due_score(store) == expiry - 1 + RETENTION_MS
    assert receipt(store, 4, now=expiry) == Receipt("sent", "E-2", sent_ms=expiry - 1, status_code=200)


def test_unknown_records_and_batches_have_no_receipt(store):
    assert receipt(store, 1) is None  # no such batch
    setup(store, max_records=2)
    add(store, [1, 2, 3])
    assert receipt(store, 1, epoch="OTHER") == Receipt("unknown")  # a batch deleted and made again
    assert receipt(store, 4) == Receipt("unknown")
    assert receipt(store, 0) == Receipt("unknown")


def test_dead_records_say_so_and_a_redrive_sends_them_again(store):
    setup(store, max_records=2)
    batch_id = add(store, ["a", "b"]).taken[0]
    claim(store, batch_id, 1, T0)
    finish(store, batch_id, 1, T0 + 1, "failed", 400, "HTTP 400")
    assert receipt(store, 1) == Receipt("dead", batch_id, status_code=400)
    sb.redrive(store, NAME, now_ms=T0 + 2, grace_ms=GRACE_MS, limit=10)
    assert receipt(store, 2) == Receipt("sending", batch_id, status_code=400)
    claim(store, batch_id, 1, T0 + 3)
    finish(store, batch_id, 1, T0 + 4, "succeeded", 200)
    assert receipt(store, 2) == Receipt("sent", batch_id, sent_ms=T0 + 4, status_code=200)


def test_receipts_follow_batches_cut_by_bytes_and_by_a_new_configuration(store):
    setup(store, max_records=100, max_bytes=40)
    ids = add(store, ["x" * 8] * 7).taken  # batches of 3, 3, and 1 pending
    assert [receipt(store, n).batch_id for n in range(1, 7)] == [ids[0]] * 3 + [ids[1]] * 3
    add(store, ["y"] * 2)
    sb.configure(store, NAME, config(max_records=2), now_ms=T0 + 1, grace_ms=GRACE_MS, epoch="X")
    assert [receipt(store, n).state for n in range(7, 10)] == ["sending", "sending", "pending"]
    assert receipt(store, 7).batch_id != receipt(store, 6).batch_id


def test_a_batch_configured_before_receipts_counts_its_taken_records_from_what_is_pending(store):
    setup(store, max_records=3)
    add(store, [1, 2, 3, 4])  # record 4 pending
    store.redis.hdel(keys.batch(NAME), "taken_seq")  # as an older version left it
    assert receipt(store, 4) == Receipt("pending")
    batch_id = add(store, [5, 6]).taken[0]
    assert [receipt(store, n).batch_id for n in (4, 5, 6)] == [batch_id] * 3
    assert store.redis.hget(keys.batch(NAME), "taken_seq") == "6"


# -- 413: splitting ---------------------------------------------------------------------------------


def split(store, batch_id, attempt, now, at, first_records) -> Finished:
    return sb.split(store, NAME, batch_id, attempt, worker=WORKER, now_ms=now, grace_ms=GRACE_MS, at=at,
                    first_records=first_records)


def comma_after(raw: str, records: int) -> int:
    """The byte offset of the comma after `records` records (simple values: no nested commas)."""
    offsets = [i for i, char in enumerate(raw) if char == ","]
    return offsets[records - 1]


def test_a_413_splits_the_batch_in_order_and_the_second_half_waits_for_the_first(store):
    batch_id = take_one(store, records=(1, 2, 3, 4, 5))
    claim(store, batch_id, 1, T0)
    raw = store.redis.hget(keys.batch_bodies(NAME), batch_id)
    result = split(store, batch_id, 1, T0 + 1, comma_after(raw, 3), 3)
    first, second = result.released[0], result.state
    assert result == Finished("split", state=second, released=(first,))
    assert batch_id not in sb.taken(store, NAME) and first != second != batch_id
    assert (body(store, first), body(store, second)) == ([1, 2, 3], [4, 5])
    metas = sb.taken(store, NAME)
    assert (metas[first]["state"], metas[first]["attempts"], metas[first]["next"]) == ("queued", 0, second)
    assert (metas[second]["state"], metas[second]["after"]) == ("parked", first)
    assert [receipt(store, n).batch_id for n in range(1, 6)] == [first] * 3 + [second] * 2
    assert claim(store, second, 1, T0 + 2) == Refused("skip", "parked")
    assert store.redis.hget(keys.batch(NAME), "posts_retry") == "1"
    assert sb.load(store, NAME)["last_status_code"] == "413"

    # The first half is too large again: its own halves come first, then the parked second half.
    claim(store, first, 1, T0 + 3)
    again = split(store, first, 1, T0 + 4, comma_after(body_text(store, first), 2), 2)
    first_a, first_b = again.released[0], again.state
    assert (body(store, first_a), body(store, first_b)) == ([1, 2], [3])
    assert sb.taken(store, NAME)[second]["after"] == first_b
    claim(store, first_a, 1, T0 + 5)
    assert finish(store, first_a, 1, T0 + 6, "succeeded", 200) == Finished("sent", released=(first_b,))
    assert isinstance(claim(store, first_b, 1, T0 + 7), Claimed)
    assert finish(store, first_b, 1, T0 + 8, "succeeded", 200) == Finished("sent", released=(second,))
    assert isinstance(claim(store, second, 1, T0 + 9), Claimed)
    assert finish(store, second, 1, T0 + 10, "succeeded", 200) == Finished("sent")
    assert [receipt(store, n).batch_id for n in range(1, 6)] == [first_a] * 2 + [first_b] + [second] * 2
    assert store.redis.hget(keys.batch(NAME), "sent_records") == "5"


def body_text(store, batch_id) -> str:
    return store.redis.hget(keys.batch_bodies(NAME), batch_id)


def test_a_dead_first_half_releases_the_second(store):
    batch_id = take_one(store, records=("a", "b"))
    claim(store, batch_id, 1, T0)
    result = split(store, batch_id, 1, T0, 4, 1)
    first, second = result.released[0], result.state
    claim(store, first, 1, T0 + 1)
    assert finish(store, first, 1, T0 + 2, "failed", 400, "HTTP 400") == Finished("dead", released=(second,))
    assert isinstance(claim(store, second, 1, T0 + 3), Claimed)
    assert [receipt(store, n).state for n in (1, 2)] == ["dead", "sending"]


def test_a_worker_lost_on_a_first_halfs_last_attempt_releases_the_second_in_beats_flush(store):
    setup(store, max_records=2, max_attempts=1)
    batch_id = add(store, ["a", "b"]).taken[0]
    claim(store, batch_id, 1, T0)
    first, second = (r := split(store, batch_id, 1, T0, 4, 1)).released[0], r.state
    claim(store, first, 1, T0 + 1)
    lease_end = T0 + 1 + 30_000 + MARGIN_MS
    assert sb.flush(store, [NAME], now_ms=lease_end, grace_ms=GRACE_MS, limit=10, alive_after_ms=0) == [
        Flushed("dead", NAME, first, 1), Flushed("taken", NAME, second, 1)]


def test_a_parked_half_waits_while_its_first_half_is_there_and_goes_if_the_release_was_lost(store):
    batch_id = take_one(store, records=("a", "b"))
    claim(store, batch_id, 1, T0)
    first, second = (r := split(store, batch_id, 1, T0, 4, 1)).released[0], r.state
    # Beat looks at both after the publish grace: the first is published again, the second waits on.
    assert sb.flush(store, [NAME], now_ms=T0 + GRACE_MS, grace_ms=GRACE_MS, limit=10, alive_after_ms=0) == [
        Flushed("republish", NAME, first, 1)]
    assert store.redis.zscore(keys.batch_taken(NAME), second) == T0 + 2 * GRACE_MS
    store.redis.hdel(keys.batch_meta(NAME), first)  # as if its release had never been written
    assert sb.flush(store, [NAME], now_ms=T0 + 2 * GRACE_MS, grace_ms=GRACE_MS, limit=10,
                    alive_after_ms=0)[-1] == Flushed("taken", NAME, second, 1)
    assert isinstance(claim(store, second, 1, T0 + 2 * GRACE_MS + 1), Claimed)


def test_a_cut_that_is_not_between_records_makes_the_batch_dead_and_loses_nothing(store):
    batch_id = take_one(store, records=("a,b", "c"))
    claim(store, batch_id, 1, T0)
    assert split(store, batch_id, 1, T0, 2, 1) == Finished("dead")  # byte 2 is a letter
    [(dead_id, dead_body, meta)] = sb.dead(store, NAME, limit=10)
    assert (dead_id, json.loads(dead_body), meta["last_status_code"]) == (batch_id, ["a,b", "c"], 413)
    assert "could not be split" in meta["error"]


def test_a_stale_or_gone_413_changes_nothing(store):
    batch_id = take_one(store, records=(1, 2))
    claim(store, batch_id, 1, T0)
    finish(store, batch_id, 1, T0, "retry", 500)
    assert split(store, batch_id, 1, T0 + 1, 2, 1) == Finished("stale", state="queued")
    assert body(store, batch_id) == [1, 2]
    assert split(store, "E-404", 1, T0, 2, 1) == Finished("gone")
