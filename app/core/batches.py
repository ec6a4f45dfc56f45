"""Batch forwarding: JSON records collected per named batch and POSTed to its endpoint as arrays.

Records wait in the batch's pending list. A batch is *taken* (its records moved into a numbered
batch, atomically) as soon as `max_records` or `max_bytes` is reached, by the call that added
the last record, or by beat once the oldest pending record is `interval` old. A taken batch is
then POSTed by a worker, with the same `Htq-Batch-Id` on every attempt, until it succeeds or runs
out of attempts and becomes dead; dead batches are kept until redriven or deleted. A worker that
dies mid-send holds an expiring lease, so the sweep sends its batch again: delivery is
at-least-once and no record is ever dropped. An endpoint's 413 splits a batch of several records
in two halves sent one after the other (storage/lua/batch_split.lua); a lone record answered 413
is dead at once.

Every record id (`<epoch>.<number>`) has a receipt: pending, sending (in a taken batch), sent
(kept for the retention period) or dead; `BatchService.record` reads it.

`BatchService` is what the API (and the forwarder compat layer) call; `BatchForwarder` is the
worker side: beat's flush and sweep, and the claim and settlement of each attempt.
"""
from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from app.core import clock, ids, jsontext
from app.core.errors import Invalid, NotFound, TooLarge
from app.core.model import NAME_RULE, is_name, ms, seconds
from app.core.outcome import FAILED, SUCCEEDED, Outcome
from app.core.publish import Publisher
from app.core.tokens import NO_ORIGIN, Origin
from app.core.workers import Workers
from app.log import fields
from app.storage import batches as store_batches
from app.storage.batches import BatchConfig, Claimed, Finished, Receipt, Refused
from app.storage.client import Store
from config import Settings

log = logging.getLogger(__name__)

ENV_BATCH = "log"  # the batch configured from WEBHOOK_POST_ENDPOINT / _SIZE / _INTERVAL
MAX_RECORDS_PER_CALL = 1000
DEFAULTS: dict[str, Any] = {"max_records": 10, "max_bytes": 1024 * 1024, "interval": 10.0, "headers": {},
                            "timeout": 30.0}
DEFAULT_RETRY: dict[str, Any] = {"max_attempts": 3, "backoff_base": 2.0}
# The earlier forwarder retried a failed POST 3 times, 2 s apart: 4 POSTs in all for the `log` batch.
ENV_BATCH_ATTEMPTS = 4
MAX_RETRY_DELAY_S = 3600.0
SWEEP_NAMES = 1000  # batches handled per beat tick
SWEEP_LIMIT = 500  # expired taken batches handled per batch and tick
REDRIVE_CHUNK = 500
TOO_LARGE = 413  # the endpoint's answer that splits a batch in two halves
# A record id: the batch's epoch (a 26-character id; any letters and digits are looked up) and
# the record's number.
RECORD_ID = re.compile(r"([0-9A-Za-z]{1,64})\.([1-9][0-9]{0,14})")


def encode_record(record: Any) -> str:
    """Compact JSON text of one record. NaN and Infinity are refused: the endpoint gets valid JSON."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


_scan_value = json.JSONDecoder().scan_once
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def split_point(body: bytes, records: int) -> tuple[int, int]:
    """Where a batch's JSON array of `records` (at least 2) records is cut in two halves: the
    byte offset in `body` of the comma after the first half, and the first half's record count
    (the larger half when `records` is odd). Redis then cuts the stored body there without
    parsing it. -1 if `body` is not such an array (the split script then refuses the cut)."""
    first = (records + 1) // 2
    index = 1
    try:
        text = body.decode()
        for number in range(first):
            index = _WHITESPACE.match(text, index + (1 if number else 0)).end()
            index = _WHITESPACE.match(text, _scan_value(text, index)[1]).end()
    except (StopIteration, ValueError):
        return -1, first
    if text[index:index + 1] != ",":
        return -1, first
    return len(text[:index].encode()), first


@dataclass(frozen=True)
class Settled:
    """What a worker does after an attempt: nothing more, or retry attempt `next_attempt`
    after `countdown_s` (None when the delay is beyond the horizon: the sweep publishes it)."""

    result: str
    next_attempt: int | None = None
    countdown_s: float | None = None
    released: tuple[str, ...] = ()  # batches whose attempt 1 is due now (see storage's Finished)


class BatchService:
    """The API side; one per process, cheap to share between threads."""

    def __init__(self, store: Store, publisher: Publisher, settings: Settings,
                 clock_ms: Callable[[], int] = clock.now_ms):
        self.store = store
        self.publisher = publisher
        self.settings = settings
        self.now_ms = clock_ms

    # -- configuration ------------------------------------------------------------------------

    def configure(self, name: str, fields: dict, origin: Origin = NO_ORIGIN) -> tuple[dict, bool]:
        """Create or replace a batch's configuration (omitted fields take their defaults); it
        keeps `origin` (the token configuring it), whose allowed hosts its sends are held to.

        Lowering the limits below what is pending sends the full batches at once."""
        if not is_name(name):
            raise Invalid("Bad batch name", {"name": [NAME_RULE]})
        retry = {**DEFAULT_RETRY, **(fields.get("retry") or {})}
        values = {**DEFAULTS, **{key: value for key, value in fields.items() if key != "retry"}}
        config = BatchConfig(
            endpoint=values["endpoint"], max_records=int(values["max_records"]), max_bytes=int(values["max_bytes"]),
            interval_ms=ms(values["interval"]), headers=dict(values["headers"]),
            max_attempts=int(retry["max_attempts"]), backoff_base_ms=ms(retry["backoff_base"]),
            timeout_ms=ms(values["timeout"]), token_id=origin.token_id, allowed_hosts=origin.allowed_hosts)
        created = self._configure(name, config, "replace")
        return self.get(name), created

    def ensure_env_batch(self) -> bool:
        """Configure the `log` batch from WEBHOOK_* (when WEBHOOK_POST_ENDPOINT is set); idempotent.

        The environment sets its endpoint, max_records and interval, so a restart with new values
        applies them; other fields keep what a PUT gave them. Returns whether it is configured."""
        if not self.settings.webhook_post_endpoint:
            return False
        config = BatchConfig(
            endpoint=self.settings.webhook_post_endpoint, max_records=self.settings.webhook_batch_size,
            max_bytes=DEFAULTS["max_bytes"], interval_ms=ms(self.settings.webhook_batch_interval_s),
            headers={}, max_attempts=ENV_BATCH_ATTEMPTS,
            backoff_base_ms=ms(DEFAULT_RETRY["backoff_base"]), timeout_ms=ms(DEFAULTS["timeout"]))
        self._configure(ENV_BATCH, config, "env")
        return True

    def _configure(self, name: str, config: BatchConfig, mode: str) -> bool:
        now = self.now_ms()
        configured = store_batches.configure(self.store, name, config, now_ms=now,
                                             grace_ms=self.settings.publish_grace_ms, epoch=ids.new_id(now), mode=mode)
        self._publish(name, configured.taken)
        return configured.created

    # -- reading ------------------------------------------------------------------------------

    def _load(self, name: str) -> dict:
        if not is_name(name):
            raise NotFound(f"No batch {name}")
        loaded = store_batches.load(self.store, name)
        if loaded is None and name == ENV_BATCH and self.ensure_env_batch():
            loaded = store_batches.load(self.store, name)
        if loaded is None:
            raise NotFound(f"No batch {name}")
        return loaded

    def get(self, name: str) -> dict:
        return to_resource(name, self._load(name))

    def list(self) -> list[dict]:
        found = ((name, store_batches.load(self.store, name)) for name in store_batches.names(self.store))
        return [to_resource(name, loaded) for name, loaded in found if loaded is not None]

    def dead(self, name: str, limit: int = 100) -> list[dict]:
        self._load(name)
        return [{"id": batch.batch_id, "records": jsontext.loads_stored(batch.body),
                 "attempts": batch.meta.get("attempts", 0), "last_status_code": batch.meta.get("last_status_code"),
                 "error": batch.meta.get("error") or None}
                for batch in store_batches.dead(self.store, name, limit=limit)]

    def record(self, name: str, record_id: str) -> dict:
        """The receipt of a record: pending, sending (in batch `batch_id`), sent (when, and the
        answer's status code) or dead; a sent record's receipt is kept for the retention period."""
        match = RECORD_ID.fullmatch(record_id)
        receipt = None
        if is_name(name) and match:
            receipt = store_batches.record(self.store, name, match.group(1), int(match.group(2)),
                                           now_ms=self.now_ms())
        if receipt is None:
            self._load(name)  # 404 for the batch (or the `log` batch is configured now)
            receipt = Receipt("unknown")
        if receipt.state == "unknown":
            raise NotFound(f"No record {record_id} in batch {name}")
        return {"id": record_id, "state": receipt.state, "batch_id": receipt.batch_id,
                "sent_at": clock.to_rfc3339(receipt.sent_ms), "status_code": receipt.status_code}

    # -- changing -----------------------------------------------------------------------------

    def add(self, name: str, records: list) -> list[str]:
        """Store records (in order) in the batch's pending list before answering; returns their ids.

        A record must fit in a batch alone (its JSON plus 2 bytes within max_bytes) and within
        the record size limit: otherwise 413 and none of the records is stored."""
        return self.add_texts(name, self._encode(name, records))

    def add_texts(self, name: str, texts: list[str]) -> list[str]:
        """`add` for records that are JSON texts already (checked by the caller: valid JSON, no NaN)."""
        if not is_name(name):
            raise NotFound(f"No batch {name}")
        self._check_sizes(name, texts)
        now = self.now_ms()
        added = store_batches.add(self.store, name, texts, now_ms=now, grace_ms=self.settings.publish_grace_ms)
        if added is None and name == ENV_BATCH and self.ensure_env_batch():
            added = store_batches.add(self.store, name, texts, now_ms=now, grace_ms=self.settings.publish_grace_ms)
        if added is None:
            raise NotFound(f"No batch {name}")
        if added.too_large is not None:
            index, max_bytes = added.too_large, added.max_bytes
            raise TooLarge(f"Record {index} does not fit in one batch of at most {max_bytes} bytes",
                           {"records": {str(index): [f"at most {max_bytes - 2} bytes of JSON"]}})
        self._publish(name, added.taken)
        return added.ids

    def _encode(self, name: str, records: list) -> list[str]:
        texts = []
        for index, record in enumerate(records):
            try:
                texts.append(encode_record(record))
            except ValueError:
                self._load(name)
                raise Invalid("Records must be valid JSON",
                              {"records": {str(index): ["NaN and Infinity are not JSON"]}}) from None
        return texts

    def _check_sizes(self, name: str, texts: list[str]) -> None:
        limit = self.settings.max_body_bytes
        for index, text in enumerate(texts):
            if len(text) > limit // 4 and len(text.encode()) > limit:
                self._load(name)
                raise TooLarge(f"Record {index} is over the limit of {limit} bytes",
                               {"records": {str(index): [f"at most {limit} bytes"]}})

    def delete(self, name: str) -> None:
        if not is_name(name) or not store_batches.delete(self.store, name):
            raise NotFound(f"No batch {name}")

    def redrive(self, name: str) -> int:
        """Send every dead batch again, with a fresh budget of attempts, to the current endpoint."""
        self._load(name)
        moved = 0
        while True:
            ids_moved = store_batches.redrive(self.store, name, now_ms=self.now_ms(),
                                              grace_ms=self.settings.publish_grace_ms, limit=REDRIVE_CHUNK)
            self._publish(name, ids_moved)
            moved += len(ids_moved)
            if len(ids_moved) < REDRIVE_CHUNK:
                return moved

    def _publish(self, name: str, batch_ids: list[str]) -> None:
        self.publisher.send_batches(name, [(batch_id, 1) for batch_id in batch_ids])


class BatchForwarder:
    """The worker side: beat's flush and sweep, claiming and settling attempts."""

    def __init__(self, store: Store, publisher: Publisher, settings: Settings,
                 clock_ms: Callable[[], int] | None = None, backlog: Callable[[], int] = lambda: 0):
        """`backlog()` tells how many task messages wait in the broker: a taken batch nobody
        claimed in time is published again only when none wait. `clock_ms` as RequestRelay's."""
        self.store = store
        self.publisher = publisher
        self.settings = settings
        self.now_ms = clock_ms or clock.now_ms
        self.workers = Workers(store, clock_ms or clock.real_ms)
        self.backlog = backlog

    def flush(self) -> dict[str, int]:
        """Beat, every second: take batches whose oldest record is `interval` old, publish again
        taken batches nobody claimed in time, and settle attempts whose worker died."""
        counts = {"taken": 0, "republish": 0, "lost": 0, "dead": 0}
        now = self.now_ms()
        names = store_batches.due_names(self.store, now_ms=now, limit=SWEEP_NAMES)
        if not names:
            return counts
        to_send: dict[str, list[tuple[str, int]]] = defaultdict(list)
        grace_ms = self.settings.publish_grace_ms
        flushed = store_batches.flush(self.store, names, now_ms=now, grace_ms=grace_ms, limit=SWEEP_LIMIT,
                                      alive_after_ms=self.workers.alive_after_ms(),
                                      held_after_ms=self.workers.held_after_ms(),
                                      backlog=self.backlog())
        for kind, name, batch_id, attempt in flushed:
            counts[kind] += 1
            if kind == "dead":
                log.warning("batch %s/%s: worker lost during attempt %d, no attempts left: dead", name, batch_id,
                            attempt)
                continue
            if kind == "lost":
                log.warning("batch %s/%s: worker lost during attempt %d (lease expired), sending again", name,
                            batch_id, attempt - 1)
            to_send[name].append((batch_id, attempt))
        for name, items in to_send.items():
            self.publisher.send_batches(name, items)
        return counts

    def claim(self, name: str, batch_id: str, attempt: int, worker: str) -> Claimed | None:
        """The batch for `worker` (its node name) to POST, or None when this message is a
        duplicate, stale, or the batch is gone."""
        result = store_batches.claim(self.store, name, batch_id, attempt, worker=worker, now_ms=self.now_ms(),
                                     lease_margin_ms=self.settings.lease_margin_ms)
        if isinstance(result, Refused):
            log.info("batch %s/%s: attempt %d not started (%s %s)", name, batch_id, attempt, result.reason,
                     result.state or "")
            return None
        return result

    def request_headers(self, claimed: Claimed) -> dict[str, str]:
        headers = dict(claimed.headers)
        if not any(key.lower() == "content-type" for key in headers):
            headers["Content-Type"] = "application/json"
        headers["Htq-Batch-Id"] = claimed.batch_id
        return headers

    def finish(self, claimed: Claimed, outcome: Outcome) -> Settled:
        """Store the attempt's outcome: delete the batch once sent, queue a retry, or make it dead.

        A 413 splits a batch of several records in two halves, sent in order, each with a fresh
        budget of attempts; a record alone answered 413 can never be sent: its batch is dead at once."""
        if outcome.status_code == TOO_LARGE:
            if claimed.records > 1:
                return self._split(claimed, outcome)
            outcome = replace(outcome, verdict=FAILED)
        now = self.now_ms()
        delay_s = min(MAX_RETRY_DELAY_S, seconds(claimed.backoff_base_ms) if outcome.retry_after_s is None
                      else outcome.retry_after_s)
        countdown_s: float | None = delay_s
        deadline_ms = now + ms(delay_s) + self.settings.publish_grace_ms
        if delay_s > self.settings.horizon_s:
            countdown_s, deadline_ms = None, now + ms(delay_s)
        error = outcome.error or (None if outcome.verdict == SUCCEEDED else f"HTTP {outcome.status_code}")
        finished = store_batches.finish(self.store, claimed.name, claimed.batch_id, claimed.attempt,
                                        worker=claimed.worker, now_ms=now, verdict=outcome.verdict,
                                        status_code=outcome.status_code, error=error, deadline_ms=deadline_ms,
                                        grace_ms=self.settings.publish_grace_ms,
                                        retention_ms=self.settings.retention_ms)
        self._log_post(claimed, outcome, finished)
        if finished.result == "dead":
            why = "a permanent failure" if outcome.verdict == FAILED else f"{claimed.attempt} attempts"
            log.warning("batch %s/%s: dead after %s (%s)", claimed.name, claimed.batch_id, why, error)
        if finished.result == "retry":
            return Settled("retry", finished.next_attempt, countdown_s)
        return Settled(finished.result, released=finished.released)

    def _split(self, claimed: Claimed, outcome: Outcome) -> Settled:
        at, first_records = split_point(claimed.body, claimed.records)
        finished = store_batches.split(self.store, claimed.name, claimed.batch_id, claimed.attempt,
                                       worker=claimed.worker, now_ms=self.now_ms(),
                                       grace_ms=self.settings.publish_grace_ms, at=at, first_records=first_records)
        self._log_post(claimed, outcome, finished)
        if finished.result == "split":
            log.info("batch %s/%s: too large for the endpoint, split in two: %d records in %s, then %d in %s",
                     claimed.name, claimed.batch_id, first_records, finished.released[0],
                     claimed.records - first_records, finished.state)
        elif finished.result == "dead":
            log.warning("batch %s/%s: dead after a 413 (it could not be split)", claimed.name, claimed.batch_id)
        return Settled(finished.result, released=finished.released)

    def _log_post(self, claimed: Claimed, outcome: Outcome, finished: Finished) -> None:
        log.info("batch %s/%s: POST %d records (%d bytes), attempt %d -> %s in %d ms: %s", claimed.name,
                 claimed.batch_id, claimed.records, len(claimed.body), claimed.attempt,
                 outcome.status_code if outcome.status_code is not None else outcome.error, outcome.elapsed_ms,
                 finished.result,
                 **fields(batch=claimed.name, batch_id=claimed.batch_id, records=claimed.records,
                          bytes=len(claimed.body), attempt=claimed.attempt, status_code=outcome.status_code,
                          error=outcome.error, elapsed_ms=outcome.elapsed_ms, result=finished.result,
                          worker=claimed.worker))

    def publish_retries(self, name: str, settled: Iterable[tuple[str, Settled]]) -> None:
        """Publish the next attempt of each (batch id, Settled) to retry after its countdown: a new
        task message with that countdown, as a Celery retry would send. Countdowns stay within the
        horizon (a later retry is left to the sweep), and a lost message is published again by the
        sweep once the batch's deadline passes. Batches an outcome released (a split's halves) are
        published at once, with attempt 1."""
        groups: dict[float, list[tuple[str, int]]] = defaultdict(list)
        for batch_id, outcome in settled:
            if outcome.result == "retry" and outcome.countdown_s is not None and outcome.next_attempt:
                groups[outcome.countdown_s].append((batch_id, outcome.next_attempt))
            groups[0.0].extend((released, 1) for released in outcome.released)
        now = self.now_ms()
        for countdown_s, items in groups.items():
            if not items:
                continue
            self.publisher.send_batches(name, items, now + ms(countdown_s) if countdown_s > 0 else None)


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def to_resource(name: str, loaded: dict) -> dict:
    """The contract's batch resource: configuration plus counts, from a stored config hash."""
    return {
        "name": name,
        "endpoint": loaded["endpoint"],
        "max_records": int(loaded["max_records"]),
        "max_bytes": int(loaded["max_bytes"]),
        "interval": seconds(int(loaded["interval_ms"])),
        "headers": json.loads(loaded.get("headers") or "{}"),
        "retry": {"max_attempts": int(loaded["max_attempts"]), "backoff_base": seconds(int(loaded["backoff_base_ms"]))},
        "timeout": seconds(int(loaded["timeout_ms"])),
        "created_at": clock.to_rfc3339(_int_or_none(loaded.get("created_ms"))),
        "pending": int(loaded["pending"]),
        "in_flight": int(loaded["in_flight"]),
        "sent_batches": int(loaded.get("sent_batches") or 0),
        "sent_records": int(loaded.get("sent_records") or 0),
        "dead_batches": int(loaded["dead_batches"]),
        "last_sent_at": clock.to_rfc3339(_int_or_none(loaded.get("last_sent_ms"))),
        "last_status_code": _int_or_none(loaded.get("last_status_code")),
        "last_error": loaded.get("last_error") or None,
        "token_id": loaded.get("token_id") or None,
    }
