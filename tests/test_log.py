"""Log lines: JSON lines carry the fields of a line as keys; Celery's per-task lines go below DEBUG."""
from __future__ import annotations

import io
import json
import logging

import pytest

from app import log as htq_log
from app.log import configure_logging, fields


@pytest.fixture
def output():
    """What the root handler that configure_logging installs writes (stdout, in production)."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)
    htq_log._quiet_celery_task_lines(logging.INFO)


def configure(level: str, stream: io.StringIO, fmt: str = "text") -> None:
    configure_logging(level, fmt)
    logging.getLogger().handlers[0].setStream(stream)


def test_json_lines_have_the_fields_of_the_text_line_as_keys(output):
    configure("INFO", output, "json")
    logging.getLogger("app.core.attempts").info(
        "request %s: attempt %d -> %s", "01ABC", 2, "succeeded",
        **fields(request_id="01ABC", attempt=2, result="succeeded", status_code=200))
    entry = json.loads(output.getvalue())
    assert entry["message"] == "request 01ABC: attempt 2 -> succeeded"
    assert (entry["request_id"], entry["attempt"], entry["result"], entry["status_code"]) == ("01ABC", 2, "succeeded",
                                                                                            200)
    assert (entry["level"], entry["logger"]) == ("INFO", "app.core.attempts")


def test_celerys_per_task_info_lines_are_dropped_and_its_warnings_kept(output):
    configure("INFO", output)
    logging.getLogger("celery.worker.strategy").info("Task %s[%s] received", "htq.tick", "id-1")
    logging.getLogger("celery.app.trace").info("Task %s[%s] succeeded in %ss: %s", "htq.tick", "id-1", 0.01, {})
    logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", "tick", "htq.tick")
    logging.getLogger("celery.beat").info("beat: Starting...")
    logging.getLogger("celery.app.trace").error("Task %s[%s] raised unexpected: %r", "htq.tick", "id-2", "boom")
    lines = output.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert "beat: Starting..." in lines[0] and "raised unexpected" in lines[1]


def test_at_debug_celerys_per_task_lines_are_kept(output):
    configure("DEBUG", output)
    logging.getLogger("celery.worker.strategy").info("Task %s[%s] received", "htq.tick", "id-1")
    logging.getLogger("celery.beat").info("Scheduler: Sending due task %s (%s)", "tick", "htq.tick")
    assert len(output.getvalue().splitlines()) == 2
