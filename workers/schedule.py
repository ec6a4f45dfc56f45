"""The beat schedule: everything that happens because time has passed. Run exactly one beat."""
from __future__ import annotations

from app.core.task_names import EXPIRE_REQUESTS, TICK

# Beat's tasks travel in a queue of their own, which every worker consumes beside `htq`
# (workers/__init__.py): behind a backlog of deliveries they would wait, expire, and recovery
# (dead workers, due requests, republishing) would stall until the backlog drained.
BEAT_QUEUE = "htq.beat"
TICK_EVERY_S = 1.0
EXPIRE_EVERY_S = 60.0


def beat_schedule() -> dict:
    # `expires` drops a periodic task that waited in the queue past its next run: a later one
    # does the same work, so a backlog never turns into a pile of ticks.
    return {
        "tick": {"task": TICK, "schedule": TICK_EVERY_S,
                 "options": {"queue": BEAT_QUEUE, "expires": 5 * TICK_EVERY_S}},
        "expire-requests": {"task": EXPIRE_REQUESTS, "schedule": EXPIRE_EVERY_S,
                            "options": {"queue": BEAT_QUEUE, "expires": EXPIRE_EVERY_S}},
    }
