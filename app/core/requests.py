"""Deferred HTTP requests, as the API sees them: create, read, list, cancel, retry."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from app.core import clock, ids, policy
from app.core.errors import Conflict, Gone, HTQError, Invalid, NotFound, TooLarge
from app.core.model import FINAL_STATUSES, NOT_TEXT, is_text, ms
from app.core.publish import Publisher
from app.core.task_names import NOTIFY_CANCEL
from app.core.tokens import NO_ORIGIN, Origin, is_token_id
from app.storage import keys
from app.storage import requests as store_requests
from app.storage.client import Store
from app.storage.notify import Notifier
from app.storage.requests import Canceled, NewRequest, spec_of
from config import Settings

DEFAULT_RETRY = {"max_attempts": 10, "backoff_base": 1.0, "backoff_max": 3600.0}


@dataclass(frozen=True)
class Created:
    resource: dict
    replayed: bool = False


# Requests looked at per script of a bulk cancel: a few milliseconds of Redis each.
CANCEL_CHUNK = 100


class RequestService:
    """What the API and compat layers call; one per process, cheap to share between threads."""

    def __init__(self, store: Store, publisher: Publisher, settings: Settings,
                 notifier: Notifier | None = None, clock_ms: Callable[[], int] = clock.now_ms):
        self.store = store
        self.publisher = publisher
        self.settings = settings
        self.notifier = notifier
        self.now_ms = clock_ms

    # -- creating ---------------------------------------------------------------------------

    def create(self, fields: dict, idempotency_key: str | None = None,
               alias: tuple[str, str] | None = None, origin: Origin = NO_ORIGIN) -> Created:
        """Store and schedule one request (validated by the API schema) in one script. A compat
        profile passes `alias` (its namespace, its own id for the request): stored in the same
        script, so the request is never there without it; `find` resolves it. `origin` (the
        token that made it) is copied onto the request."""
        now = self.now_ms()
        new = self._new(fields, now, origin)
        fingerprint = ""
        if idempotency_key:
            fingerprint = hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()
        stored = store_requests.create(
            self.store, new, now_ms=now, horizon_end_ms=now + self.settings.horizon_ms,
            grace_ms=self.settings.publish_grace_ms,
            idempotency=(idempotency_key, fingerprint) if idempotency_key else None, alias=alias)
        if stored.alias_taken:
            raise Conflict(f"{alias[0]} id {alias[1]} is already taken")
        if stored.replay_of is not None:
            if stored.replay_fingerprint != fingerprint:
                raise Invalid("Idempotency-Key was used with a different body",
                              {"Idempotency-Key": ["already used with a different body"]})
            return Created(self.get(stored.replay_of), replayed=True)
        if stored.status == "queued":
            self.publisher.deliver([(new.request_id, 1, new.due_ms)], now)
        return Created(new_resource(new.spec, stored.status, now, new.due_ms))

    def create_many(self, items: list[dict], origin: Origin = NO_ORIGIN) -> list[dict]:
        """Store all requests in one script (all or none), then publish those due soon."""
        now = self.now_ms()
        created = []
        for index, fields in enumerate(items):
            try:
                created.append(self._new(fields, now, origin))
            except HTQError as exc:  # which request of the batch, as the schema's errors say
                exc.errors = {"requests": {str(index): exc.errors}}
                raise
        statuses = store_requests.create_many(self.store, created, now_ms=now,
                                              horizon_end_ms=now + self.settings.horizon_ms,
                                              grace_ms=self.settings.publish_grace_ms)
        self.publisher.deliver([(new.request_id, 1, new.due_ms) for new, status in zip(created, statuses)
                                if status == "queued"], now)
        return [new_resource(new.spec, status, now, new.due_ms) for new, status in zip(created, statuses)]

    def prepare(self, fields: dict, now: int, schedule: str | None = None,
                origin: Origin = NO_ORIGIN) -> NewRequest:
        """The request that `fields` (validated by the API schema) would create at `now`, checked
        as `create` checks it (Invalid, TooLarge); a schedule's run carries the schedule's name
        and the schedule's origin (the token that made the schedule)."""
        new = self._new(fields, now, origin)
        if schedule is not None:
            new.spec["schedule"] = schedule
        return new

    def _new(self, fields: dict, now: int, origin: Origin = NO_ORIGIN) -> NewRequest:
        """The request to store from fields the API schema validated; its id, due time and spec."""
        self._check_body_size(fields)
        spec = {key: fields[key] for key in ("url", "method", "headers", "body", "json", "callback_url")
                if key in fields}
        spec["id"] = ids.new_id(now)
        spec["timeout"] = fields.get("timeout", self.settings.default_timeout_s)
        spec["retry"] = {**DEFAULT_RETRY, **(fields.get("retry") or {})}
        spec["cancel_notify"] = bool(fields.get("cancel_notify", False))
        if fields.get("success"):
            spec["success"] = fields["success"]
        if fields.get("flow"):
            spec["flow"] = {"period": 1, **fields["flow"]}
        if fields.get("success_on_any_status"):
            # Any complete HTTP answer ends the request as succeeded (policy.judge): the htq
            # 2014 profile's rule. Not offered by /v1/requests.
            spec["success_on_any_status"] = True
        origin.stamp(spec)
        if fields.get("eta_ms") is not None:
            due_ms = max(now, int(fields["eta_ms"]))
        else:
            due_ms = now + ms(fields.get("delay") or 0)
        if due_ms - now > ms(self.settings.max_delay_s):
            field = "eta" if fields.get("eta_ms") is not None else "delay"
            raise Invalid("Too far in the future", {field: [f"at most {self.settings.max_delay_s} seconds from now"]})
        return NewRequest(spec["id"], due_ms, spec)

    def _check_body_size(self, fields: dict) -> None:
        if "body" in fields:
            if not is_text(fields["body"]):
                raise Invalid("Validation failed", {"body": [NOT_TEXT]})
            size, name = len(fields["body"].encode()), "body"
        elif "json" in fields:
            size, name = len(json.dumps(fields["json"]).encode()), "json"
        else:
            return
        if size > self.settings.max_body_bytes:
            raise TooLarge(f"The {name} is {size} bytes, over the limit of {self.settings.max_body_bytes}",
                           {name: [f"at most {self.settings.max_body_bytes} bytes"]})

    # -- reading ----------------------------------------------------------------------------

    def _record(self, request_id: str) -> dict:
        record = store_requests.load(self.store, request_id) if ids.is_valid_id(request_id) else {}
        if record:
            return record
        if ids.is_valid_id(request_id) and store_requests.was_archived(self.store, request_id):
            raise Gone(f"Request {request_id} expired after its retention period")
        raise NotFound(f"No request {request_id}")

    def get(self, request_id: str) -> dict:
        return to_resource(self._record(request_id))

    def status(self, request_id: str) -> dict:
        return to_status(self._record(request_id))

    def attempts(self, request_id: str) -> list[dict]:
        self._record(request_id)
        return store_requests.load_attempts(self.store, request_id)

    def list(self, status: str | None, limit: int, cursor: str | None,
             schedule: str | None = None, token: str | None = None) -> tuple[list[dict], str | None]:
        """A page of requests, newest first; of one status, of one schedule's runs, of one token's
        (its id, `env` for HTQ_API_TOKENS), or several of these at once. One index is read (the
        schedule's, else the token's, else the status's) and filtered by the others, so such a page
        may hold fewer than `limit`; `next_cursor` goes on along the same index."""
        if cursor is not None and not ids.is_valid_id(cursor):
            raise Invalid("Bad cursor", {"cursor": ["not a cursor returned by this listing"]})
        _check_token(token)
        page = store_requests.list_ids(self.store, status=status, after=cursor, limit=limit + 1, schedule=schedule,
                                       token=token)
        records = [r for r in store_requests.load_many(self.store, page[:limit]) if r]
        if status is not None and (schedule is not None or token is not None):
            records = [r for r in records if r.get("status") == status]
        if schedule is not None and token is not None:
            records = [r for r in records if r.get("token") == token]
        next_cursor = page[limit - 1] if len(page) > limit else None
        return [to_resource(r) for r in records], next_cursor

    def find(self, namespace: str, alias: str) -> str:
        """The id of the request created under `alias`; Gone once it expired, else NotFound."""
        request_id = store_requests.resolve_alias(self.store, namespace, alias)
        if request_id:
            return request_id
        if store_requests.alias_archived(self.store, namespace, alias):
            raise Gone(f"{namespace} id {alias} expired after its retention period")
        raise NotFound(f"No {namespace} id {alias}")

    def list_aliased(self, namespace: str, statuses: tuple[str, ...]) -> list[tuple[str, dict]]:
        """(alias, resource) of every live request of `namespace` in one of `statuses`, newest first."""
        records = store_requests.load_many(self.store, store_requests.list_aliased_ids(self.store, namespace, statuses))
        return [(record["alias"].split(":", 1)[1], to_resource(record)) for record in records if record]

    def response(self, request_id: str, wait_s: float = 0) -> tuple[bool, dict]:
        """(True, response) once the request ended; (False, status) if it has not after wait_s."""
        record = self._record(request_id)
        if record["status"] not in FINAL_STATUSES and wait_s > 0 and self.notifier is not None:
            ended = self.notifier.wait_for(
                store_requests.ended_channel(request_id), wait_s,
                lambda: self._ended_record(request_id))
            record = ended or self._record(request_id)
        if record["status"] not in FINAL_STATUSES:
            return False, to_status(record)
        response = None if record.get("response_deleted") else store_requests.load_response(self.store, request_id)
        if response is None:
            raise NotFound(f"Request {request_id} has no response")
        return True, response

    def latest_response(self, request_id: str) -> dict | None:
        """The response (or error) of the latest finished attempt, ended or not: what an operator
        looks at to see why a request is retrying. None when no attempt has finished, or it was deleted."""
        record = self._record(request_id)
        return None if record.get("response_deleted") else store_requests.load_response(self.store, request_id)

    def _ended_record(self, request_id: str) -> dict | None:
        record = store_requests.load(self.store, request_id)
        return record if not record or record.get("status") in FINAL_STATUSES else None

    # -- changing ---------------------------------------------------------------------------

    def cancel(self, request_id: str) -> None:
        record = self._record(request_id)
        # Whether a cancel notice may be owed is fixed at creation (the spec); whether one is
        # owed (something was sent) is decided, and recorded in the outbox, by the script.
        cancel = store_requests.cancel(self.store, request_id, now_ms=self.now_ms(),
                                       grace_ms=self.settings.publish_grace_ms,
                                       lease_margin_ms=self.settings.lease_margin_ms,
                                       notify=bool(spec_of(record).get("cancel_notify")))
        if cancel.result is Canceled.MISSING:
            raise NotFound(f"No request {request_id}")
        if cancel.result is Canceled.ENDED:
            raise Conflict(f"Request {request_id} already {cancel.status}")
        if cancel.notice:
            self.publisher.notify(NOTIFY_CANCEL, request_id)  # at once; the relay again should it be lost

    def cancel_matching(self, statuses: list[str] | None = None, url_prefix: str = "",
                        schedule: str | None = None, token: str | None = None) -> int:
        """Cancel every request not ended that is in one of `statuses` (any, when None), whose url
        starts with `url_prefix` and, given a `schedule`, that one of its runs made, given a
        `token`, that it made. CANCEL_CHUNK at a time along an index (the schedule's, else the
        token's, else each status's), so that Redis is never blocked for more than a few
        milliseconds; how many were canceled."""
        _check_token(token)
        wanted = [status for status in statuses or store_requests.CANCELABLE if status in store_requests.CANCELABLE]
        if schedule is not None:
            indexes = [keys.schedule_requests(schedule)] if wanted else []
        elif token is not None:
            indexes = [keys.token_requests(token)] if wanted else []
        else:
            indexes = [keys.requests_by_status(status) for status in wanted]
        canceled = 0
        for index in indexes:
            cursor = ""
            while cursor is not None:
                chunk = store_requests.cancel_matching(
                    self.store, index, statuses=wanted, url_prefix=url_prefix, after=cursor, limit=CANCEL_CHUNK,
                    now_ms=self.now_ms(), grace_ms=self.settings.publish_grace_ms,
                    lease_margin_ms=self.settings.lease_margin_ms, token=token or "")
                canceled += chunk.canceled
                for request_id in chunk.notify:
                    self.publisher.notify(NOTIFY_CANCEL, request_id)
                cursor = chunk.cursor
        return canceled

    def delete_response(self, request_id: str) -> None:
        if not store_requests.delete_response(self.store, request_id):
            self._record(request_id)  # raises: 410 if it expired, else 404

    def retry(self, request_id: str) -> dict:
        """Queue a failed or canceled request again, now, with a fresh budget of attempts."""
        record = self._record(request_id)
        now = self.now_ms()
        retried = store_requests.retry(self.store, request_id, now_ms=now, grace_ms=self.settings.publish_grace_ms,
                                       max_attempts=int(spec_of(record)["retry"]["max_attempts"]))
        if retried.missing:
            raise NotFound(f"No request {request_id}")
        if retried.attempt is None:
            raise Conflict(f"Only failed or canceled requests can be retried; this one is {retried.status}")
        self.publisher.deliver([(request_id, retried.attempt, now)], now)
        return self.get(request_id)

    def run_now(self, request_id: str) -> dict:
        """Send the next attempt now, skipping what is left of its delay or backoff. 409 if it is
        running or ended; a request whose attempt is due already is left as it is."""
        self._record(request_id)
        now = self.now_ms()
        ran = store_requests.run_now(self.store, request_id, now_ms=now, grace_ms=self.settings.publish_grace_ms,
                                     lease_margin_ms=self.settings.lease_margin_ms)
        if ran.missing:
            raise NotFound(f"No request {request_id}")
        if ran.status is not None:
            raise Conflict(f"Only a request waiting for its next attempt can run now; this one is {ran.status}")
        if ran.attempt is not None:
            self.publisher.deliver([(request_id, ran.attempt, now)], now)
        return self.get(request_id)


def _ms(record: dict, name: str) -> int | None:
    value = record.get(name)
    return int(value) if value not in (None, "") else None


def links(request_id: str) -> dict:
    base = f"/v1/requests/{request_id}"
    return {"self": base, "status": f"{base}/status", "response": f"{base}/response"}


def new_resource(spec: dict, status: str, created_ms: int, due_ms: int) -> dict:
    """The resource of a request just created, from what was written: no read back."""
    return resource_from(spec, {"status": status, "created_ms": created_ms, "due_ms": due_ms,
                                "next_attempt_ms": due_ms, "attempts": 0})


def to_status(record: dict, spec: dict | None = None) -> dict:
    spec = spec_of(record) if spec is None else spec
    return {
        "id": spec["id"],
        "status": record["status"],
        "attempts": int(record.get("attempts") or 0),
        "next_attempt_at": clock.to_rfc3339(_ms(record, "next_attempt_ms")
                                            if record["status"] not in FINAL_STATUSES else None),
    }


def to_resource(record: dict) -> dict:
    """The contract's request resource from a stored hash."""
    return resource_from(spec_of(record), record)


def resource_from(spec: dict, record: dict) -> dict:
    resource = {
        "id": spec["id"],
        "url": spec["url"],
        "method": spec["method"],
        "headers": spec.get("headers", {}),
    }
    for body_field in ("body", "json"):
        if body_field in spec:
            resource[body_field] = spec[body_field]
    status = to_status(record, spec)
    resource.update(
        status=status["status"],
        created_at=clock.to_rfc3339(_ms(record, "created_ms")),
        due_at=clock.to_rfc3339(_ms(record, "due_ms")),
        timeout=spec["timeout"],
        retry=spec["retry"],
        success=spec.get("success", policy.DEFAULT_SUCCESS),
        callback_url=spec.get("callback_url"),
        cancel_notify=spec.get("cancel_notify", False),
        attempts=status["attempts"],
        next_attempt_at=status["next_attempt_at"],
        ended_at=clock.to_rfc3339(_ms(record, "ended_ms")),
        last_error=record.get("last_error") or None,
        links=links(spec["id"]),
    )
    if "flow" in spec:
        resource["flow"] = spec["flow"]
    if "schedule" in spec:
        resource["schedule"] = spec["schedule"]
    resource["token_id"] = spec.get("token_id")
    return resource


def _check_token(token: str | None) -> None:
    """A token filter names a maker: a token id, or `env`."""
    if token is not None and not is_token_id(token):
        raise Invalid("Bad token", {"token": ["a token id, or env"]})
