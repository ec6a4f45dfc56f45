"""Tasks of batch forwarding: POST taken batches (beat's flush of due and lost batches: tasks/beat.py)."""
from __future__ import annotations

import logging

import redis
from celery import shared_task

from app import broker
from app.core import clock
from app.core.batches import BatchService, Settled
from app.core.publish import Sender
from app.core.task_names import SEND_BATCHES
from app.storage import workers as store_workers
from app.storage.client import Store
from config import Settings
from workers import runtime

log = logging.getLogger(__name__)

# Above the longest batch timeout (1800 s) plus the two store round trips; a message's batches
# are sent at the same time.
SEND_TIME_LIMIT_S = 1800 + 120


@shared_task(name=SEND_BATCHES, bind=True, ignore_result=True, time_limit=SEND_TIME_LIMIT_S)
def send_batches(self, name: str, items: list[list]) -> None:
    """POST each [batch id, attempt] of the batch `name`, at the same time; publish the retries."""
    rt, worker = runtime.current(), self.request.hostname
    batches = [(str(batch_id), int(attempt)) for batch_id, attempt in items]
    try:
        run_sends(rt, name, batches, worker)
    except Exception:
        # As deliver_requests: the failed message is acknowledged, so what it did not start is no
        # longer held here, and beat's next flush publishes it again.
        _release(rt, worker, name, [batch_id for batch_id, _ in batches])
        raise


def _release(rt: runtime.Runtime, worker: str, name: str, batch_ids: list[str]) -> None:
    try:
        store_workers.release_batches(rt.store, worker, [(name, batch_id) for batch_id in batch_ids],
                                      now_ms=clock.now_ms())
    except redis.RedisError as exc:
        log.warning("worker %s: could not release %d batches of %s (%s); they go back once their hold is stale",
                    worker, len(batch_ids), name, exc)


def run_sends(rt: runtime.Runtime, name: str, batches: list[tuple[str, int]], worker: str) -> list[Settled]:
    """The task's logic; `worker` is the node name of the worker running it, which holds what it claims."""
    if len(batches) == 1:
        settled = [run_send(rt, name, *batches[0], worker)]
    else:
        settled = list(rt.executor.map(lambda item: run_send(rt, name, *item, worker), batches))
    rt.forwarder.publish_retries(name, zip((batch_id for batch_id, _ in batches), settled))
    return settled


def run_send(rt: runtime.Runtime, name: str, batch_id: str, attempt: int, worker: str) -> Settled:
    """Claim the attempt, POST the JSON array, settle the outcome: the task's logic as a plain function."""
    batches = rt.forwarder
    claimed = batches.claim(name, batch_id, attempt, worker)
    if claimed is None:
        return Settled("skip")
    outcome = rt.deliverer.send(delivery_id=batch_id, attempt=attempt, method="POST", url=claimed.endpoint,
                                headers=batches.request_headers(claimed), body=claimed.body,
                                timeout_s=claimed.timeout_ms / 1000,
                                allowed_hosts=claimed.allowed_hosts)
    return batches.finish(claimed, outcome)


def configure_env_batch(settings: Settings, sender: Sender) -> bool:
    """Configure the `log` batch from WEBHOOK_* at worker start (idempotent). Redis being down is
    not fatal: the API configures it too, at start-up and when the first record arrives."""
    store = Store.from_settings(settings)
    try:
        return BatchService(store, broker.publisher(settings, sender), settings).ensure_env_batch()
    except redis.RedisError as exc:
        log.warning("batch log: not configured from WEBHOOK_* yet (%s)", exc)
        return False
    finally:
        store.close()
