"""A request's own delivery rules (CONTRACT "Delivery policy"): what counts as success, what is
retried, and for how long.

`success`: {"status": [codes or classes "2xx"], "json": {"path": "a.b.0", "equals": value}},
default {"status": ["2xx"]}. With `json`, an answer counts as success only when its body is JSON
whose value at the dotted path equals `equals` (JSON equality: true is not 1); otherwise the
attempt is retried. `retry.on`: codes, classes, "network", "timeout"; default DEFAULT_RETRY_ON.
An answer that is neither success nor in `retry.on` fails for good. Failures that are htq's own
(a worker lost mid-attempt) are always retried; a refused destination always fails.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from app.core.outcome import FAILED, NETWORK, RETRY, SUCCEEDED, TIMEOUT, Outcome

DEFAULT_SUCCESS = {"status": ["2xx"]}
DEFAULT_RETRY_ON = [408, 425, 429, "5xx", NETWORK, TIMEOUT]
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
FAILURE_KINDS = (NETWORK, TIMEOUT)


def matches(status_code: int, rules: list) -> bool:
    """Whether a status code is one of `rules`: codes and classes ("5xx")."""
    return status_code in rules or f"{status_code // 100}xx" in rules


def value_at(document: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at a dotted path: object keys, and array indexes as numbers ("items.0.id")."""
    value = document
    for step in path.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return False, None
    return True, value


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (1 equals 1.0), booleans only to booleans, null to null."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def body_matches(body: bytes, rule: dict) -> bool:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return False
    found, value = value_at(document, rule["path"])
    return found and json_equal(value, rule["equals"])


def judge(spec: dict, outcome: Outcome) -> Outcome:
    """The outcome under the request's rules."""
    if spec.get("success_on_any_status"):
        # The htq 2014 profile's rule: any complete HTTP answer succeeds.
        if outcome.status_code is not None and not outcome.error:
            return replace(outcome, verdict=SUCCEEDED, retry_after_s=None)
        return outcome
    if "success" not in spec and "on" not in spec.get("retry", {}):
        return outcome  # the defaults: the delivery's own verdict
    retry_on = spec.get("retry", {}).get("on", DEFAULT_RETRY_ON)
    if outcome.failure is not None:
        return replace(outcome, verdict=RETRY if outcome.failure in retry_on else FAILED)
    if outcome.status_code is None:
        return outcome  # refused before sending, or lost with its worker: as decided
    success = spec.get("success", DEFAULT_SUCCESS)
    if matches(outcome.status_code, success.get("status", DEFAULT_SUCCESS["status"])):
        if "json" not in success or body_matches(outcome.body, success["json"]):
            return replace(outcome, verdict=SUCCEEDED, retry_after_s=None)
        return replace(outcome, verdict=RETRY, error=f"answer {outcome.status_code}: its JSON at "
                                                     f"{success['json']['path']!r} is not the expected value")
    return replace(outcome, verdict=RETRY if matches(outcome.status_code, retry_on) else FAILED)
