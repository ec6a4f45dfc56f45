"""Tasks of recurring schedules: beat's tick that runs what is due."""
from __future__ import annotations

import logging

from celery import shared_task

from app.core.task_names import RUN_SCHEDULES
from workers import runtime

log = logging.getLogger(__name__)


@shared_task(name=RUN_SCHEDULES, ignore_result=True)
def run_schedules() -> dict:
    """Beat, every second: run the schedules whose tick is due (or due within the lookahead),
    each tick once however many beats send this task (see app/core/schedules.py)."""
    counts = runtime.current().schedules.tick()
    if counts["runs"] or counts["refused"]:
        log.info("schedules: %s", counts)
    return counts
