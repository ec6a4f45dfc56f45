"""Storage of the gates of deferred requests (flow control, circuit breakers; app/core/gates.py):
the relay's sweep and what the API shows of them. Starting, settling, canceling requests passes
the gates inside the request scripts themselves (app/storage/requests.py)."""
from __future__ import annotations

from typing import NamedTuple

from app.core import gates
from app.storage import keys
from app.storage.client import Store
from app.storage.scripts import Script

_SWEEP = Script("gates_sweep")
DESTINATIONS_SHOWN = 1000


class Flow(NamedTuple):
    key: str
    rate: int | None
    period_ms: int
    parallelism: int | None
    waiting: int  # parked for a slot, or published again for a reserved start
    in_flight: int  # slots taken: running, or kept for a request woken or waiting for its rate


class Destination(NamedTuple):
    destination: str
    state: str  # closed, open, half_open
    consecutive_failures: int
    open_until_ms: int | None


def new_request_arg(spec: dict) -> str:
    """What _request_new.lua's store_new_request stores of a spec's gates."""
    flow, limits = gates.flow_of(spec)
    return f"{gates.destination(spec.get('url', ''))}\n{flow}\n{limits}"


def script_args(grace_ms: int, lease_margin_ms: int) -> dict:
    """The arguments every script including _gates.lua takes."""
    return {"gates": keys.gates_prefix(), "grace_ms": grace_ms, "lease_margin_ms": lease_margin_ms}


def sweep(store: Store, *, now_ms: int, grace_ms: int, lease_margin_ms: int,
          limit: int) -> list[tuple[str, int, int]]:
    """Wake what the gates whose check is due let through now: (id, attempt, due_ms) to publish."""
    flat = store.run(_SWEEP, keys={"inflight": keys.requests_inflight()},
                     args={**script_args(grace_ms, lease_margin_ms), "now_ms": now_ms, "limit": limit})
    return [(flat[i], int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)]


def flow(store: Store, key: str, now_ms: int) -> Flow | None:
    """A flow key's limits and load, or None if no request sent it (or not for 30 days)."""
    pipe = store.pipeline(transaction=False)
    pipe.hmget(keys.flow_limits(key), "rate", "period_ms", "parallelism")
    pipe.zcard(keys.gate_waiting(f"flows:{key}"))
    pipe.zcard(keys.flow_reserved(key))
    pipe.zcount(keys.flow_running(key), f"({now_ms}", "+inf")
    (rate, period_ms, parallelism), parked, reserved, running = pipe.execute()
    if rate is None:
        return None
    return Flow(key, int(rate) or None, int(period_ms), int(parallelism) or None, parked + reserved, running)


def destinations(store: Store, now_ms: int) -> list[Destination]:
    """The destinations with breaker state (failures, open or half-open), by name; the first
    DESTINATIONS_SHOWN. Closed ones without failures are not kept."""
    names = store.redis.zrange(keys.destinations(), 0, DESTINATIONS_SHOWN - 1)
    pipe = store.pipeline(transaction=False)
    for name in names:
        pipe.hmget(keys.destination(name), "failures", "open_until")
    shown = []
    for name, (failures, open_until) in zip(names, pipe.execute()):
        if failures is None and open_until is None:
            continue  # expired after a week without news
        until = int(open_until) if open_until else None
        state = "closed" if until is None else "open" if now_ms < until else "half_open"
        shown.append(Destination(name, state, int(failures or 0), until))
    return shown
