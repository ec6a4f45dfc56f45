"""Recurring schedules: a timetable (cron or every) that makes a request, a queue message or a
batch record at each tick.

How a tick runs exactly once: beat reads the schedules due from the due zset (only those: idle
schedules cost nothing), computes each one's run and following tick here (Lua cannot compute
cron), and writes the run, its effect and the timetable's next tick in one script that first
compares the schedule's version and next tick with what was read. A second beat, a restart or a
run-now racing with beat finds them changed and writes nothing; a crash leaves either nothing
or everything written.

Runs are claimed up to LOOKAHEAD_MS before their tick for requests and queue messages: the
request is created due at the tick (and sent at it by a worker, as any deferred request), the
message becomes available at the tick, so a run is as punctual as a request, whatever beat's
granularity. A batch record is appended only once its tick has come.

Missed ticks collapse: a tick more than CATCH_UP_MS in the past (htq was down, or beat stopped)
is not run; the latest such tick runs once instead, and the timetable continues after it.
"""
from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from app.core import clock, jsontext
from app.core.batches import encode_record
from app.core.errors import Conflict, HTQError, Invalid, NotFound, TooLarge
from app.core.model import NAME_RULE, is_name, ms
from app.core.publish import Publisher
from app.core.queues import STORED_DEFAULTS, json_body
from app.core.requests import RequestService
from app.core.timetable import BadTimetable, Timetable, check_cron, zone
from app.core.tokens import NO_ORIGIN, Origin
from app.storage import batches as store_batches
from app.storage import schedules as store
from app.storage.client import Store
from app.storage.schedules import Fired, Run
from config import Settings

log = logging.getLogger(__name__)

LOOKAHEAD_MS = 2000  # two beat periods: a late beat still claims before the tick
CATCH_UP_MS = 5000  # a tick further behind than this was missed: only the latest missed one runs
TICK_CHUNK = 500  # schedules claimed per round trip
TICK_MAX_ROUNDS = 50  # rounds per beat tick (a schedule due again within the lookahead runs next round)
MAX_EVERY_S = 366 * 86400


class ScheduleService:
    """What the API calls, and what beat's tick calls; one per process."""

    def __init__(self, store_: Store, publisher: Publisher, settings: Settings, requests: RequestService,
                 clock_ms: Callable[[], int] = clock.now_ms):
        self.store = store_
        self.publisher = publisher
        self.settings = settings
        self.requests = requests
        self.now_ms = clock_ms

    # -- definitions ------------------------------------------------------------------------

    def put(self, name: str, fields: dict, origin: Origin = NO_ORIGIN) -> tuple[dict, bool]:
        """Create or replace a schedule (fields validated by the API schema); (resource, created).
        The schedule keeps its `origin` (the token that put it): every request it runs carries it."""
        if not is_name(name):
            raise Invalid("Bad schedule name", {"name": [NAME_RULE]})
        now = self.now_ms()
        spec = origin.stamp(self._spec(fields, now))
        table = timetable(spec, anchor_ms=now)
        created = store.put(self.store, name, spec=json.dumps(spec), now_ms=now, anchor_ms=now,
                            next_ms=table.next_after(now), paused=bool(fields.get("paused", False)))
        return self.get(name), created

    def _spec(self, fields: dict, now: int) -> dict:
        spec: dict[str, Any] = {"timezone": fields.get("timezone") or "UTC"}
        try:
            zone(spec["timezone"])
            if fields.get("cron") is not None:
                check_cron(fields["cron"])
                spec["cron"] = " ".join(fields["cron"].split())
            else:
                spec["every"] = fields["every"]
        except BadTimetable as exc:
            raise Invalid(f"Bad {exc.field}", {exc.field: [str(exc)]}) from None
        spec["target"] = self._target(fields["target"], now)
        return spec

    def _target(self, target: dict, now: int) -> dict:
        """The target as stored, checked as its own route would check it (field names nested)."""
        def nested(exc: HTQError, kind: str) -> HTQError:
            exc.errors = {"target": {kind: exc.errors}}
            return exc

        if "request" in target:
            fields = dict(target["request"])
            try:
                self.requests.prepare(fields, now)
            except HTQError as exc:
                raise nested(exc, "request") from None
            return {"request": fields}
        if "queue" in target:
            if not is_name(target["queue"]):
                raise Invalid("Bad queue name", {"target": {"queue": [NAME_RULE]}})
            body = json_body(target.get("message"))
            if len(body.encode()) - 1 > self.settings.max_body_bytes:
                raise TooLarge("The message is too large",
                               {"target": {"message": [f"at most {self.settings.max_body_bytes} bytes"]}})
            return {"queue": target["queue"], "message": target.get("message")}
        name = target["batch"]
        if not is_name(name) or store_batches.load(self.store, name) is None:
            raise Invalid("No such batch", {"target": {"batch": [f"No batch {name} is configured."]}})
        try:
            text = encode_record(target.get("record"))
        except ValueError:
            raise Invalid("Bad record", {"target": {"record": ["NaN and Infinity are not JSON"]}}) from None
        if len(text.encode()) > self.settings.max_body_bytes:
            raise TooLarge("The record is too large",
                           {"target": {"record": [f"at most {self.settings.max_body_bytes} bytes"]}})
        return {"batch": name, "record": target.get("record")}

    def get(self, name: str) -> dict:
        return to_resource(name, self._load(name))

    def _load(self, name: str) -> dict:
        record = store.load(self.store, name) if is_name(name) else {}
        if not record:
            raise NotFound(f"No schedule {name}")
        return record

    def list(self) -> list[dict]:
        names = store.names(self.store)
        return [to_resource(name, record) for name, record in zip(names, store.load_many(self.store, names))
                if record]

    def delete(self, name: str) -> None:
        if not is_name(name) or not store.delete(self.store, name):
            raise NotFound(f"No schedule {name}")

    def pause(self, name: str) -> dict:
        return self._set_paused(name, True)

    def resume(self, name: str) -> dict:
        """Back on the timetable from now: the next tick after now (nothing missed while paused runs)."""
        return self._set_paused(name, False)

    def _set_paused(self, name: str, paused: bool) -> dict:
        for _ in range(3):
            record = self._load(name)
            next_ms = timetable_of(record).next_after(self.now_ms())
            result = store.set_paused(self.store, name, paused=paused, next_ms=next_ms, version=record["version"])
            if result == "missing":
                raise NotFound(f"No schedule {name}")
            if result == "ok":
                return self.get(name)
        raise Conflict(f"Schedule {name} keeps changing; try again")

    # -- runs -------------------------------------------------------------------------------

    def run_now(self, name: str) -> str:
        """One run now, outside the timetable (which does not move); the id of what it made."""
        for _ in range(3):
            record = self._load(name)
            now = self.now_ms()
            run = Run(name, record["version"], None, now, now)
            fired = self._fire_all([(run, json.loads(record["spec"]))], now)[0]
            if fired.outcome == "stale":
                continue
            if fired.outcome in ("missing", "too_large"):
                raise Conflict(f"Schedule {name}: its batch refused the record ({fired.outcome})")
            return fired.run_id
        raise Conflict(f"Schedule {name} keeps changing; try again")

    def tick(self) -> dict[str, int]:
        """Beat's: run every tick that is due (or due within the lookahead), each exactly once."""
        counts = {"runs": 0, "stale": 0, "refused": 0}
        for _ in range(TICK_MAX_ROUNDS):
            now = self.now_ms()
            due = store.due(self.store, until_ms=now + LOOKAHEAD_MS, limit=TICK_CHUNK)
            if not due:
                break
            records = store.load_many(self.store, [name for name, _ in due])
            runs = []
            for (name, next_ms), record in zip(due, records, strict=True):
                if not record or str(next_ms) != record.get("next_ms"):
                    continue  # deleted or changed since the zset was read
                spec = json.loads(record["spec"])
                if "batch" in spec["target"] and next_ms > now:
                    continue  # a record is appended only once its tick has come
                table = timetable(spec, anchor_ms=int(record["anchor_ms"]))
                run_ms = next_ms
                if next_ms < now - CATCH_UP_MS:  # missed ticks collapse into the latest one
                    run_ms = table.latest_at_or_before(now, next_ms)
                runs.append((Run(name, record["version"], next_ms, run_ms, table.next_after(run_ms)), spec))
            if not runs:
                break
            for fired in self._fire_all(runs, now):
                key = {"stale": "stale", "missing": "refused", "too_large": "refused"}.get(fired.outcome, "runs")
                counts[key] += 1
            if len(due) < TICK_CHUNK and all(run.next_ms > now + LOOKAHEAD_MS for run, _ in runs):
                break
        return counts

    def _fire_all(self, runs: list[tuple[Run, dict]], now: int) -> list[Fired]:
        """Write every run (with its schedule's spec) and its effect (one script each, one round
        trip), then publish."""
        pipe = self.store.pipeline()
        request_ids: list[str | None] = []
        for run, spec in runs:
            request_ids.append(self._queue_fire(pipe, run, spec, now))
        replies = self.store.execute_durable(pipe)  # runs accept work: replicas hold them first
        results = [store.fired(reply, request_id) for reply, request_id in zip(replies, request_ids)]
        deliver = []
        for (run, spec), fired in zip(runs, results, strict=True):
            target = spec["target"]
            if fired.outcome == "created" and fired.status == "queued":
                deliver.append((fired.run_id, 1, max(run.run_ms, now) + self._delay_ms(target)))
            elif fired.outcome == "added" and fired.taken:
                self.publisher.send_batches(target["batch"], [(batch_id, 1) for batch_id in fired.taken])
            elif fired.outcome in ("missing", "too_large"):
                log.warning("schedule %s: batch %s refused the run's record (%s)", run.name, target["batch"],
                            fired.outcome)
        if deliver:
            self.publisher.deliver(deliver, now)
        return results

    @staticmethod
    def _delay_ms(target: dict) -> int:
        return ms(target["request"].get("delay") or 0)

    def _queue_fire(self, pipe, run: Run, spec: dict, now: int) -> str | None:
        grace = self.settings.publish_grace_ms
        target = spec["target"]
        if "request" in target:
            fields = dict(target["request"])
            new = self.requests.prepare(fields, max(run.run_ms, now), schedule=run.name, origin=Origin.of(spec))
            store.fire_request(self.store, run, new, now_ms=now, horizon_end_ms=now + self.settings.horizon_ms,
                               grace_ms=grace, pipeline=pipe)
            return new.request_id
        if "queue" in target:
            store.fire_queue(self.store, run, target["queue"], json_body(target.get("message")), now_ms=now,
                             id_suffix=secrets.token_urlsafe(6), defaults=STORED_DEFAULTS, pipeline=pipe)
            return None
        store.fire_batch(self.store, run, target["batch"], encode_record(target.get("record")), now_ms=now,
                         grace_ms=grace, pipeline=pipe)
        return None


def timetable(spec: dict, anchor_ms: int) -> Timetable:
    if "cron" in spec:
        return Timetable(cron=spec["cron"], timezone=spec["timezone"])
    return Timetable(every_ms=ms(spec["every"]), anchor_ms=anchor_ms, timezone=spec["timezone"])


def timetable_of(record: dict) -> Timetable:
    return timetable(json.loads(record["spec"]), int(record["anchor_ms"]))


def to_resource(name: str, record: dict) -> dict:
    spec = jsontext.loads_stored(record["spec"])
    paused = record.get("paused") == "1"
    resource: dict[str, Any] = {"name": name}
    if "cron" in spec:
        resource["cron"] = spec["cron"]
    else:
        resource["every"] = spec["every"]
    last_run = record.get("last_run_ms")
    resource.update(
        timezone=spec["timezone"], target=spec["target"], paused=paused,
        next_run_at=None if paused else clock.to_rfc3339(int(record["next_ms"])),
        last_run_at=clock.to_rfc3339(int(last_run)) if last_run else None,
        last_run_id=record.get("last_run_id") or None,
        runs=int(record.get("runs") or 0),
        last_error=record.get("last_error") or None,
        created_at=clock.to_rfc3339(int(record["created_ms"])),
        token_id=spec.get("token_id"),
    )
    return resource


