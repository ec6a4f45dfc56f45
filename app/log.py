"""Logging to stdout, level and format (text or JSON lines) from the environment.

A line about one piece of work names it in its text and, with `extra=fields(...)`, in named
fields too: `LOG_FORMAT=json` then has them as keys (`request_id`, `attempt`, `batch`, ...), so a
log search needs no parsing of the text.

At INFO, htq logs one line per thing that happened (an attempt ended, a batch was POSTed, a
worker was lost), nothing for a periodic tick that found nothing to do. Celery's own per-task
lines ("Task ... received", "Task ... succeeded in ...") and beat's "Sending due task" line, a
few a second even when idle, are dropped below DEBUG: htq's line says more, with the ids.
Celery's warnings and errors (a task that raised, a retry) are kept.
"""
from __future__ import annotations

import json
import logging
import sys
from typing import Any

# Celery's per-task INFO lines: the logger, and the message templates dropped below DEBUG (None: all).
CELERY_TASK_LINES: dict[str, tuple[str, ...] | None] = {
    "celery.worker.strategy": None,  # "Task %(name)s[%(id)s] received"
    "celery.app.trace": None,  # "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s"
    "celery.beat": ("Scheduler: Sending due task",),
}


def fields(**values: Any) -> dict[str, dict[str, Any]]:
    """`extra=` for a logging call: named fields of the line, keys of its JSON form."""
    return {"extra": {"fields": values}}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class DropCeleryTaskLines(logging.Filter):
    """Drops the INFO records of one Celery logger whose message starts with one of `templates`
    (every INFO record when None)."""

    def __init__(self, templates: tuple[str, ...] | None):
        super().__init__()
        self.templates = templates

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        return self.templates is not None and not str(record.msg).startswith(self.templates)


def _quiet_celery_task_lines(level: int) -> None:
    for name, templates in CELERY_TASK_LINES.items():
        logger = logging.getLogger(name)
        logger.filters[:] = [f for f in logger.filters if not isinstance(f, DropCeleryTaskLines)]
        if level > logging.DEBUG:
            logger.addFilter(DropCeleryTaskLines(templates))


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _quiet_celery_task_lines(root.level)
