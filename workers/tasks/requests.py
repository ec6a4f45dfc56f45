"""Tasks of deferred requests: deliver attempts, callbacks, cancel notices (beat's relay and expiry: tasks/beat.py)."""
from __future__ import annotations

import logging
import time

import redis
from celery import shared_task

from app.core import clock, jsontext
from app.core.attempts import Attempt
from app.core.model import ms
from app.core.outcome import RETRY, SUCCEEDED
from app.core.relay import NOTICE_TASKS
from app.core.requests import to_resource
from app.core.task_names import DELIVER_REQUESTS, NOTIFY_CANCEL, SEND_CALLBACK
from app.storage import outbox
from app.storage import requests as store_requests
from app.storage import workers as store_workers
from workers import runtime

log = logging.getLogger(__name__)

# Above the longest HTTP timeout (1800 s) plus the wait for an eta and the two store round trips.
DELIVERY_TIME_LIMIT_S = 1800 + 120
NOTICE_RETRIES = 5
# The outbox entry each notice task settles (app/storage/outbox.py).
NOTICE_OF_TASK = {task: notice for notice, task in NOTICE_TASKS.items()}


@shared_task(name=DELIVER_REQUESTS, bind=True, ignore_result=True, time_limit=DELIVERY_TIME_LIMIT_S)
def deliver_requests(self, items: list[list]) -> None:
    """Send each [id, attempt, due_ms] item once: claim, wait out any early milliseconds, send, settle."""
    rt, worker = runtime.current(), self.request.hostname
    parsed = [(str(i), int(a), int(d)) for i, a, d in items]
    try:
        run_deliveries(rt, parsed, worker)
    except Exception:
        # The message is done with (acks are late, but a failed task is acknowledged): what it
        # did not start is no longer held here, and the relay publishes it again.
        _release(rt, worker, [request_id for request_id, _, _ in parsed])
        raise


def _release(rt: runtime.Runtime, worker: str, request_ids: list[str]) -> None:
    try:
        store_workers.release(rt.store, worker, request_ids)
    except redis.RedisError as exc:
        log.warning("worker %s: could not release %d requests (%s); they go back once their hold is stale",
                    worker, len(request_ids), exc)


def run_deliveries(rt: runtime.Runtime, items: list[tuple[str, int, int]], worker: str) -> None:
    """The task's logic; `worker` is the node name of the worker running it, which holds what it starts."""
    started = rt.attempts.start(items, worker)
    if len(started) == 1:
        results = [(started[0], send_attempt(rt, started[0]))]
    else:
        results = list(zip(started, rt.executor.map(lambda attempt: send_attempt(rt, attempt), started)))
    if results:
        rt.attempts.finish(results, worker)


def send_attempt(rt: runtime.Runtime, attempt: Attempt):
    # In short steps: on the virtual clock, an advance made meanwhile ends the wait.
    while (early_ms := attempt.due_ms - clock.now_ms()) > 0:
        time.sleep(min(early_ms / 1000, clock.OFFSET_REFRESH_S))
    spec = attempt.spec
    return rt.deliverer.send(delivery_id=attempt.request_id, attempt=attempt.attempt, method=spec["method"],
                             url=spec["url"], headers=attempt.headers, body=attempt.body,
                             timeout_s=float(spec["timeout"]), allowed_hosts=spec.get("allowed_hosts"))


def _send_notice(task, request_id: str, record: dict, kind: str, method: str, url: str, body: bytes | None,
                 headers: dict[str, str]) -> None:
    """Send the notice about the end `record` shows. Its webhook-id is its own (`<id>.<kind>`),
    the same on each of its retries and not the request's: a receiver that de-duplicates on
    webhook-id (as Standard Webhooks advises) would drop a notice that carried the id of the
    delivery it reports on. Its Idempotency-Key is the request id, as on every request htq sends
    for it."""
    rt = runtime.current()
    outcome = rt.deliverer.send(delivery_id=request_id, attempt=task.request.retries + 1, method=method,
                                url=url, headers=headers, body=body, timeout_s=rt.settings.default_timeout_s,
                                webhook_id=f"{request_id}.{NOTICE_OF_TASK[task.name]}",
                                allowed_hosts=store_requests.spec_of(record).get("allowed_hosts"))
    log.info("request %s: %s %s -> %s", request_id, kind, url, outcome.status_code or outcome.error)
    if outcome.verdict == RETRY and task.request.retries < NOTICE_RETRIES:
        countdown_s = min(60, 2 ** task.request.retries)
        # Still held by a worker: the relay leaves its outbox entry until a grace after the retry.
        outbox.postpone(rt.store, NOTICE_OF_TASK[task.name], request_id,
                        until_ms=clock.now_ms() + ms(countdown_s) + rt.settings.publish_grace_ms)
        raise task.retry(countdown=countdown_s)
    if outcome.verdict != SUCCEEDED:
        log.warning("request %s: %s gave up: %s", request_id, kind, outcome.error or outcome.status_code)
    _done(task, request_id, record)


def _ended(task, request_id: str) -> dict | None:
    """The request as it ended, or None (after settling the notice) when there is nothing to tell:
    it is gone (expired), or it is not ended (retried since: its next end owes its own notice)."""
    record = store_requests.load(runtime.current().store, request_id)
    if record and record.get("ended_ms"):
        return record
    _done(task, request_id, record)
    return None


def _done(task, request_id: str, record: dict) -> None:
    """The notice was delivered or given up, or there is nothing to tell: its outbox entry goes,
    so the relay stops publishing it, unless the request ended again after `record` was read.
    Not reached when the task fails otherwise: the relay publishes it again."""
    outbox.settle(runtime.current().store, NOTICE_OF_TASK[task.name], request_id,
                  ended_ms=(record or {}).get("ended_ms", ""))


@shared_task(name=SEND_CALLBACK, bind=True, ignore_result=True, max_retries=NOTICE_RETRIES)
def send_callback(self, request_id: str) -> None:
    """POST the request resource as it ended, with its response, to the request's callback_url."""
    if not (record := _ended(self, request_id)):
        return
    resource = to_resource(record)
    resource["response"] = store_requests.load_response(runtime.current().store, request_id)
    _send_notice(self, request_id, record, "callback", "POST", resource["callback_url"],
                 jsontext.dumps_sent(resource).encode(), {"Content-Type": "application/json"})


@shared_task(name=NOTIFY_CANCEL, bind=True, ignore_result=True, max_retries=NOTICE_RETRIES)
def notify_cancel(self, request_id: str) -> None:
    """Send DELETE to the url of a request canceled while running or after an attempt."""
    if record := _ended(self, request_id):
        _send_notice(self, request_id, record, "cancel notice", "DELETE", store_requests.spec_of(record)["url"],
                     None, {})
