"""The beat schedule: everything that happens because time has passed. Run exactly one beat."""
from __future__ import annotations

from app.core.task_names import EXPIRE_REQUESTS, FLUSH_BATCHES, RELAY_REQUESTS, RUN_SCHEDULES, SWEEP_QUEUES

# Beat's tasks travel in a queue of their own, which every worker consumes beside `htq`
# (workers/__init__.py): behind a backlog of deliveries they would wait, expire, and recovery
# (dead workers, due requests, republishing) would stall until the backlog drained.
BEAT_QUEUE = "htq.beat"
RELAY_EVERY_S = 1.0
EXPIRE_EVERY_S = 60.0
SWEEP_QUEUES_EVERY_S = 1.0
FLUSH_BATCHES_EVERY_S = 1.0
RUN_SCHEDULES_EVERY_S = 1.0


def beat_schedule() -> dict:
    # `expires` drops a periodic task that waited in the queue past its next run: a later one
    # does the same work, so a backlog never turns into a pile of relays.
    return {
        "relay-requests": {"task": RELAY_REQUESTS, "schedule": RELAY_EVERY_S,
                           "options": {"queue": BEAT_QUEUE, "expires": 5 * RELAY_EVERY_S}},
        "expire-requests": {"task": EXPIRE_REQUESTS, "schedule": EXPIRE_EVERY_S,
                            "options": {"queue": BEAT_QUEUE, "expires": EXPIRE_EVERY_S}},
        "sweep-queues": {"task": SWEEP_QUEUES, "schedule": SWEEP_QUEUES_EVERY_S,
                         "options": {"queue": BEAT_QUEUE, "expires": 5 * SWEEP_QUEUES_EVERY_S}},
        "flush-batches": {"task": FLUSH_BATCHES, "schedule": FLUSH_BATCHES_EVERY_S,
                          "options": {"queue": BEAT_QUEUE, "expires": 5 * FLUSH_BATCHES_EVERY_S}},
        "run-schedules": {"task": RUN_SCHEDULES, "schedule": RUN_SCHEDULES_EVERY_S,
                          "options": {"queue": BEAT_QUEUE, "expires": RUN_SCHEDULES_EVERY_S}},
    }
