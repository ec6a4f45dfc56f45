"""Tasks of message queues: the beat sweep that keeps idle queues current."""
from __future__ import annotations

import logging

from celery import shared_task

from app.core.task_names import SWEEP_QUEUES
from workers import runtime

log = logging.getLogger(__name__)


@shared_task(name=SWEEP_QUEUES, ignore_result=True)
def sweep_queues() -> dict:
    """Beat, every second: return expired locks (dead-lettering as receive would) so counts stay
    current and long polls wake on idle queues, and drop messages past their queue's retention.
    Receiving never waits for this: it returns expired locks itself."""
    counts = runtime.current().queues.sweep()
    if counts["returned"] or counts["dropped"]:
        log.info("queue sweep: %s", counts)
    return counts
