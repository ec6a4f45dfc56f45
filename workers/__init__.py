"""The Celery application: `celery -A workers worker|beat|flower|inspect`."""
from __future__ import annotations

import dataclasses
import os

from celery import bootsteps
from celery.signals import (
    beat_init,
    celeryd_init,
    setup_logging,
    task_received,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)
from kombu import Queue

from app import broker
from app.log import configure_logging
from config import load_settings
from workers.schedule import BEAT_QUEUE, beat_schedule

settings = load_settings()

app = broker.BoundedCelery("htq", events="workers.events:LockedEvents",
                           include=["workers.tasks.requests", "workers.tasks.batches", "workers.tasks.beat"])
app.conf.update(settings.celery_config())
app.conf.beat_schedule = beat_schedule()
# Every worker consumes both queues, taking from each in turn: beat's ticks never wait behind a
# backlog of deliveries.
app.conf.task_queues = (Queue(settings.celery_config()["task_default_queue"]), Queue(BEAT_QUEUE))
celery = app
broker.consume_from_a_full_redis()  # a Redis out of memory must not stop the workers


@setup_logging.connect
def _configure_logging(**_):
    configure_logging(settings.log_level, settings.log_format)


@beat_init.connect
def _prepare_beat(**_):
    # The schedule file's directory (the data directory) may not exist yet.
    os.makedirs(os.path.dirname(app.conf.beat_schedule_filename) or ".", exist_ok=True)
    # Beat publishes only its own housekeeping ticks: no task-sent events for Flower to list.
    app.conf.task_send_sent_event = False


@celeryd_init.connect
def _check_pool(options, **_):
    global settings
    pool = options.get("pool") or options.get("pool_cls")
    module = getattr(pool, "__module__", str(pool))
    # gevent works only on a process monkey-patched before anything else is imported, which
    # Celery does when `-P gevent` is on its command line, not when the pool comes from settings.
    if "gevent" in module:
        from gevent import monkey

        if not monkey.is_module_patched("socket"):
            raise SystemExit("htq: the gevent worker pool (HTQ_WORKER_POOL=gevent) needs `-P gevent` on the "
                             "command line: celery -A workers worker -P gevent")
    # Each process's runtime (workers/runtime.py) sizes its sends at once and Redis connections
    # by the pool and concurrency the worker really runs, also when `-P` and `-c` chose them.
    settings = dataclasses.replace(settings, worker_pool=_pool_name(module),
                                   concurrency=options.get("concurrency") or settings.concurrency)


def _pool_name(module: str) -> str:
    """Celery's pool module as htq's HTQ_WORKER_POOL names it: solo runs one task at a time, as
    each prefork process does; eventlet is gevent's kin."""
    if module.endswith(".thread"):
        return "threads"
    if "gevent" in module or "eventlet" in module:
        return "gevent"
    return "prefork"


@worker_process_init.connect
def _fresh_runtime(**_):
    # Each pool process builds its own connections and HTTP session, never the parent's.
    from workers import runtime

    runtime.reset()


@worker_ready.connect
def _configure_env_batch(**_):
    # The `log` batch from WEBHOOK_*, so records can be added before any PUT (the web side does too).
    from workers.tasks.batches import configure_env_batch

    configure_env_batch(settings, app)


_liveness = None  # this worker's heartbeat and holdings, in its main process


@worker_ready.connect
def _start_heartbeat(sender, **_):
    global _liveness
    from workers.liveness import Liveness

    _liveness = Liveness(settings, sender.hostname)
    _liveness.start()


class ReleaseHeldOnConnectionLoss(bootsteps.StartStopStep):
    """Stopped each time the consumer restarts after losing its broker connection (and at
    shutdown): the task messages it held are gone from its memory, so are its holds."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def stop(self, parent):
        if _liveness is not None:
            _liveness.release_held()


app.steps["consumer"].add(ReleaseHeldOnConnectionLoss)


@task_received.connect
def _hold_received(request, **_):
    if _liveness is not None:
        _liveness.received(request.name, request.args)


@worker_shutdown.connect
def _hand_back(**_):
    global _liveness
    if _liveness is not None:
        _liveness.stop()
        _liveness = None
