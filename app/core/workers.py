"""Live workers. Each worker process heartbeats from a thread of its own (not from a task that
may wait behind others) and records the attempts it holds: task messages it received and has not
run, attempts it runs. One that stops heartbeating is dead within DEAD_AFTER_S, and the relay
hands what it held to another worker at once, instead of waiting for a lease or a publish grace."""
from __future__ import annotations

from collections.abc import Callable

from app.core import clock
from app.core.model import ms
from app.storage import workers as store_workers
from app.storage.client import Store
from app.storage.requests import Overdue

HEARTBEAT_EVERY_S = 2.0
# Three heartbeats missed and a bit: the relay, every second, notices a dead worker within 10 s.
DEAD_AFTER_S = 7.0
REAP_LIMIT = 100  # dead workers handed back per relay tick
# A live worker's hold on an unstarted attempt counts for this long: longer means the task message
# was dropped without a start (a task that failed before its claim), and the work is published again.
HOLD_VALID_S = 300.0


class Workers:
    def __init__(self, store: Store, clock_ms: Callable[[], int] = clock.real_ms):
        """Liveness is the system's time (`clock.real_ms`), also on a virtual clock: advancing the
        timetable does not make a live worker's heartbeat or hold old."""
        self.store = store
        self.now_ms = clock_ms

    def alive_after_ms(self) -> int:
        """A worker whose last heartbeat is not later than this is dead."""
        return self.now_ms() - ms(DEAD_AFTER_S)

    def held_after_ms(self) -> int:
        """A hold taken before this is stale."""
        return self.now_ms() - ms(HOLD_VALID_S)

    def heartbeat(self, name: str, host: str, pid: int, started_ms: int) -> None:
        store_workers.heartbeat(self.store, name, host=host, pid=pid, started_ms=started_ms, now_ms=self.now_ms())

    def hold(self, name: str, items: list[tuple[str, int]]) -> int:
        """`name` received these (request id, attempt) items in a task message."""
        return store_workers.hold(self.store, name, items, now_ms=self.now_ms())

    def hold_batches(self, name: str, batch: str, items: list[tuple[str, int]]) -> int:
        """`name` received these (batch id, attempt) items of the batch `batch` in a task message."""
        return store_workers.hold_batches(self.store, name, batch, items, now_ms=self.now_ms())

    def release_held(self, name: str) -> tuple[int, int]:
        """`name` no longer holds what it has not started (it lost its task messages): how many
        requests and batches it let go.

        Confirmed by replicas when HTQ_REDIS_MIN_REPLICAS asks for it: the broker connection
        drops when its Redis fails over, and a release written on a master that is then replaced
        (or on a stale one the Sentinels still named) would be undone, leaving the work held by a
        live worker that no longer has it, for HOLD_VALID_S. Unconfirmed, it raises, and the
        worker tries again at its next heartbeat."""
        requests = store_workers.release(self.store, name, store_workers.held(self.store, name), durable=True)
        batches = store_workers.release_batches(self.store, name, store_workers.held_batches(self.store, name),
                                                now_ms=self.now_ms(), durable=True)
        return requests, batches

    def dead(self) -> list[str]:
        return store_workers.dead(self.store, alive_after_ms=self.alive_after_ms(), limit=REAP_LIMIT)

    def reap(self, name: str, grace_ms: int, republish: bool = True) -> Overdue:
        """Forget a stopped worker; what it held, to publish again (unless it put its task
        messages back itself: `republish` False) or to settle as lost."""
        return store_workers.reap(self.store, name, now_ms=self.now_ms(), grace_ms=grace_ms, republish=republish)

    def live(self) -> list[dict]:
        """The contract's worker resources, by name."""
        return [{"name": info.name, "host": info.host, "pid": info.pid,
                 "started_at": clock.to_rfc3339(info.started_ms), "last_seen_at": clock.to_rfc3339(info.last_seen_ms)}
                for info in store_workers.live(self.store, alive_after_ms=self.alive_after_ms())]
