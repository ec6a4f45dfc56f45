"""When a started htq is ready: its web server answers, its worker is registered as live (it
consumes from the broker), and beat's tick has run on a worker since the start (beat is up, and
its queue is consumed). `htq run` prints its banner only then, so the first request a user sends
after it is delivered at once, not after the worker's start."""
from __future__ import annotations

import time
from collections.abc import Callable

import redis
import requests

from app.core.workers import Workers
from app.storage import beat as store_beat
from app.storage.client import Store

POLL_S = 0.1


class NotReady(Exception):
    """A component did not come up in time, or stopped while starting."""


def web_answers(base_url: str) -> bool:
    try:
        return requests.get(base_url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def worker_is_live(store: Store, pid: int) -> bool:
    """The worker of process `pid` heartbeats (from its worker_ready signal on)."""
    return any(worker["pid"] == pid for worker in Workers(store).live())


def ticked_since(store: Store, since_ms: int) -> bool:
    return store_beat.ticks(store).last_tick_ms >= since_ms


def wait_ready(base_url: str, store: Store, worker_pid: int, since_ms: int, timeout_s: float,
               stopped: Callable[[], str | None]) -> None:
    """Until web, worker and beat are all up; NotReady when the time is up or `stopped()` names
    a reason to give up (a component exited, a signal came)."""
    checks = {"web": lambda: web_answers(base_url), "worker": lambda: worker_is_live(store, worker_pid),
              "beat": lambda: ticked_since(store, since_ms)}
    deadline = time.monotonic() + timeout_s
    while checks:
        for name, check in list(checks.items()):
            try:
                if check():
                    del checks[name]
            except redis.RedisError:
                pass  # not reachable yet
        reason = stopped()
        if reason:
            raise NotReady(reason)
        if checks and time.monotonic() > deadline:
            raise NotReady(f"not ready after {timeout_s:g} s: {', '.join(checks)}")
        if checks:
            time.sleep(POLL_S)
