"""The virtual clock's controls: read it, move it ahead (HTQ_CLOCK=virtual, development and tests).

Advancing makes everything that came due happen as if that time had passed, promptly: the offset
grows in Redis (every process's `clock.now_ms()` follows within clock.OFFSET_REFRESH_S), then,
before answering, this process does at once what beat would do over the next second, in due order:
requests that workers hold for a later eta are published again without one (their old messages
are dropped at start), schedules run the latest tick they missed, the relay publishes what fell
due (the runs' requests too) and hands back lost attempts, batches
whose interval passed are taken, queues return expired locks and drop messages past retention,
and requests past their retention expire. Long polls see the new time at their next re-check.
"""
from __future__ import annotations

from app.core import clock
from app.core.attempts import Attempts
from app.core.batches import BatchForwarder
from app.core.errors import Conflict
from app.core.model import ms
from app.core.publish import Publisher
from app.core.queues import QueueService
from app.core.relay import RequestRelay
from app.core.schedules import ScheduleService
from app.storage import clock as store_clock
from app.storage import requests as store_requests
from app.storage.client import Store
from config import Settings

# In-flight requests published again per advance: the relay's recovery takes any beyond this.
RUSH_LIMIT = 10_000


def use_clock(settings: Settings, store: Store) -> None:
    """Put this process on the clock HTQ_CLOCK names (web and worker processes alike)."""
    if settings.clock == "virtual":
        clock.use_virtual(lambda: store_clock.offset(store))
    else:
        clock.use_real()


class VirtualClock:
    def __init__(self, store: Store, publisher: Publisher, settings: Settings, queues: QueueService,
                 schedules: ScheduleService):
        self.store = store
        self.publisher = publisher
        self.settings = settings
        self.queues = queues
        self.schedules = schedules

    @staticmethod
    def state() -> dict:
        return {"now": clock.to_rfc3339(clock.now_ms()), "virtual": clock.is_virtual()}

    def advance(self, seconds: float) -> dict:
        """Move the timetable `seconds` (> 0) ahead for every process; 409 on the real clock."""
        if not clock.is_virtual():
            raise Conflict("The clock is real: only a virtual clock (HTQ_CLOCK=virtual) can be advanced")
        clock.saw_offset(store_clock.advance(self.store, max(1, ms(seconds))))
        now = clock.now_ms()
        rushed = store_requests.rush(self.store, now_ms=now, grace_ms=self.settings.publish_grace_ms,
                                     limit=RUSH_LIMIT)
        self.publisher.deliver(rushed, now)
        self.schedules.tick()  # the latest tick each schedule missed (missed ticks collapse into one)
        relay = RequestRelay(self.store, self.publisher, self.settings,
                             Attempts(self.store, self.publisher, self.settings))
        relay.tick()
        BatchForwarder(self.store, self.publisher, self.settings).flush()
        self.queues.sweep()
        relay.expire()
        return {"now": clock.to_rfc3339(now)}
