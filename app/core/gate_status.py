"""What the API shows of the gates (app/core/gates.py): a flow key's limits and load, and the
destinations' circuit breakers."""
from __future__ import annotations

from collections.abc import Callable

from app.core import clock
from app.core.errors import NotFound
from app.storage import gates as store_gates


class GateStatus:
    """What the API shows of the gates: a flow key's limits and load, the destinations' breakers."""

    def __init__(self, store, clock_ms: Callable[[], int] = clock.now_ms):
        self.store = store
        self.now_ms = clock_ms

    def flow(self, key: str) -> dict:
        found = store_gates.flow(self.store, key, self.now_ms())
        if found is None:
            raise NotFound(f"No request sent flow key {key!r} (in the last 30 days)")
        return {"key": found.key, "rate": found.rate, "period": found.period_ms / 1000,
                "parallelism": found.parallelism, "waiting": found.waiting, "in_flight": found.in_flight}

    def destinations(self) -> list[dict]:
        return [{"destination": d.destination, "state": d.state, "consecutive_failures": d.consecutive_failures,
                 "open_until": None if d.open_until_ms is None else clock.to_rfc3339(d.open_until_ms)}
                for d in store_gates.destinations(self.store, self.now_ms())]
