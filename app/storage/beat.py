"""Storage of beat's tick: when a worker last ran it, and how many ran."""
from __future__ import annotations

from typing import NamedTuple

from app.storage import keys
from app.storage.client import Store


class Ticks(NamedTuple):
    last_tick_ms: int  # 0 when none ever ran
    ticks: int


def record_tick(store: Store, *, now_ms: int) -> None:
    """One MULTI: the tick's time and the count."""
    pipe = store.pipeline(transaction=True)
    pipe.hset(keys.beat(), "last_tick_ms", now_ms)
    pipe.hincrby(keys.beat(), "ticks", 1)
    pipe.execute()


def ticks(store: Store) -> Ticks:
    last, count = store.redis.hmget(keys.beat(), "last_tick_ms", "ticks")
    return Ticks(int(last or 0), int(count or 0))
