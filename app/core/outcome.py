"""What one delivery attempt produced; built by workers/delivery.py, stored by the core."""
from __future__ import annotations

from dataclasses import dataclass, field

SUCCEEDED, RETRY, FAILED = "succeeded", "retry", "failed"
NETWORK, TIMEOUT = "network", "timeout"


@dataclass(frozen=True)
class Outcome:
    """The verdict follows the contract's default retry rule: 2xx succeeded; network errors,
    timeouts, 408, 425, 429 and 5xx retry; any other answer (other 4xx, 3xx) or a refused
    destination fails. A request's own rules (`success`, `retry.on`) judge it again
    (app/core/policy.py). `failure` says what kind of failure without an answer it was:
    NETWORK or TIMEOUT (the kinds `retry.on` names), None otherwise."""

    verdict: str
    status_code: int | None = None
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncated: bool = False
    elapsed_ms: int = 0
    error: str | None = None
    retry_after_s: float | None = None
    failure: str | None = None
    worker_lost: bool = False  # not a sending's outcome: its worker died during the attempt
