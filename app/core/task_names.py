"""The names of htq's Celery tasks, in one place: the tasks register under them, the publisher
sends them and beat schedules them, so neither the web side nor the core imports the workers.

Each name says what the task does; its arguments name the work (request ids and attempts, a
batch's name and ids), so Flower's task list and `celery events` read without htq's code."""
from __future__ import annotations

DELIVER_REQUESTS = "htq.deliver_requests"
SEND_CALLBACK = "htq.send_callback"
NOTIFY_CANCEL = "htq.notify_cancel"
SEND_BATCHES = "htq.send_batches"

# Beat's (workers/schedule.py): every second one tick does all the periodic work; every minute the
# expiry. Neither sends task events, so Flower lists only the work itself.
TICK = "htq.tick"
EXPIRE_REQUESTS = "htq.expire_requests"

# Beat's per-second tasks before htq.tick: still registered (doing their part of the tick) for
# one release, so a worker of this version runs what an older beat queued under them.
RELAY_REQUESTS = "htq.relay_requests"
SWEEP_QUEUES = "htq.sweep_queues"
FLUSH_BATCHES = "htq.flush_batches"
RUN_SCHEDULES = "htq.run_schedules"
LEGACY_TICKS = (RELAY_REQUESTS, SWEEP_QUEUES, FLUSH_BATCHES, RUN_SCHEDULES)
