"""The outbox of notices owed about requests (a callback, a cancel notice), so none is lost to a
broker that is down when a request ends.

A notice is recorded by the script that ends the request, in the same step (request_finish.lua,
request_cancel.lua): an entry ``<kind>:<request id>`` of P:requests:outbox, scored by the time it
is next due to be published, a publish grace after the end (whoever ended it publishes it at
once). The relay claims entries whose time has come and puts each a grace later (`claim`), so it
publishes an entry again only if no worker has taken it by then; a notice task that retries puts
its entry off past the retry (`postpone`) and removes it once it is delivered or given up
(`settle`), unless the request has ended again meanwhile (retried, then ended anew): one entry
stands for the request's latest end, so a task about an earlier end must not take it away. The
expiry sweep removes the entries of the requests it deletes (request_expire.lua).
"""
from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from app.storage import keys
from app.storage.client import Store
from app.storage.scripts import Script

_CLAIM = Script("outbox_claim")
_SETTLE = Script("outbox_settle")


class Notice(StrEnum):
    """The kinds of notice, each sent by its own task (app/core/relay.py, NOTICE_TASKS)."""

    CALLBACK = "callback"  # POST the final request resource to its callback_url
    CANCEL = "cancel"  # DELETE to its url: canceled while running or after an attempt


class Owed(NamedTuple):
    """A notice to publish: its kind and the request it is about."""

    notice: Notice
    request_id: str


def entry(notice: Notice, request_id: str) -> str:
    """The outbox member of a request's notice, as the scripts that end requests record it."""
    return f"{notice}:{request_id}"


def claim(store: Store, *, now_ms: int, grace_ms: int, limit: int) -> list[Owed]:
    """Up to `limit` notices due by now_ms, each put `grace_ms` later: publish them."""
    owed = []
    for member in store.run(_CLAIM, keys={"outbox": keys.requests_outbox()},
                            args={"now_ms": now_ms, "grace_ms": grace_ms, "limit": limit}):
        kind, request_id = member.split(":", 1)
        owed.append(Owed(Notice(kind), request_id))
    return owed


def postpone(store: Store, notice: Notice, request_id: str, *, until_ms: int) -> None:
    """Leave a notice a worker holds (it retries later) unpublished until `until_ms`; nothing if
    its entry is gone already (XX: never recorded again once removed)."""
    store.redis.zadd(keys.requests_outbox(), {entry(notice, request_id): until_ms}, xx=True)


def settle(store: Store, notice: Notice, request_id: str, *, ended_ms: str) -> bool:
    """The notice about the end at `ended_ms` (the request's field as the task read it; "" when it
    had not ended or was gone) was delivered or given up, or there is nothing to tell: the relay
    stops publishing it. False when the request ended again since: the entry stays for that end."""
    return store.run(_SETTLE, keys={"outbox": keys.requests_outbox(), "request": keys.request(request_id)},
                     args={"entry": entry(notice, request_id), "ended_ms": ended_ms}) == 1
