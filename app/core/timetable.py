"""When a schedule's ticks fall: `cron` (5 fields, in an IANA time zone) or `every` seconds.

Cron expressions are parsed and stepped by cronsim, in the schedule's zone (zoneinfo). Chosen over
croniter because croniter fires a fixed local time twice on the autumn change (`30 1 * * *` in
New York runs at 05:30 and 06:30 UTC on the first Sunday of November), which the contract
forbids, while cronsim follows cron: a local time inside the spring-forward gap fires at the first
instant after the gap (`30 2 * * *` in Berlin runs at 03:00 CEST on the last Sunday of March). For
a local time that occurs twice, cronsim marks the second occurrence with `fold=1`; the contract
says such a time fires once (the first), so those ticks are skipped here, for every expression
(a `0 * * * *` timetable skips the repeated 02:00, as it would a second 02:00 on any other day).

`every` ticks are `anchor + k * every` (anchor: when the schedule was created or replaced), in
milliseconds, so they never drift and need no time zone.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

CRON_FIELDS = 5
MAX_CRON_CHARS = 200


class BadTimetable(ValueError):
    """A cron expression or time zone that cannot make a timetable; `field` names which."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; BadTimetable("timezone") if unknown."""
    try:
        if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadTimetable("timezone", f"Unknown IANA time zone {name!r}.") from None


def check_cron(expression: str) -> None:
    """BadTimetable("cron") unless `expression` is 5 cron fields cronsim accepts."""
    if len(expression) > MAX_CRON_CHARS:
        raise BadTimetable("cron", f"At most {MAX_CRON_CHARS} characters.")
    if len(expression.split()) != CRON_FIELDS:
        raise BadTimetable("cron", "Give 5 fields: minute hour day-of-month month day-of-week.")
    try:
        CronSim(expression.lower(), datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise BadTimetable("cron", f"{exc}.") from None


@dataclass(frozen=True)
class Timetable:
    """A schedule's ticks: `cron` in `timezone`, or every `every_ms` from `anchor_ms`."""

    cron: str | None = None
    timezone: str = "UTC"
    every_ms: int | None = None
    anchor_ms: int = 0

    def next_after(self, after_ms: int) -> int:
        """The first tick strictly after `after_ms` (ms since the epoch)."""
        if self.every_ms is not None:
            if after_ms < self.anchor_ms:
                return self.anchor_ms + self.every_ms
            return self.anchor_ms + ((after_ms - self.anchor_ms) // self.every_ms + 1) * self.every_ms
        start = datetime.fromtimestamp(after_ms / 1000, tz=zone(self.timezone))
        for tick in CronSim(self.cron.lower(), start):
            # cronsim starts from the start's second: a start with milliseconds may give it back.
            tick_ms = int(tick.timestamp() * 1000)
            if tick_ms > after_ms and not _repeated(tick):
                return tick_ms
        raise AssertionError("unreachable: cronsim iterates for ever")  # pragma: no cover

    def latest_at_or_before(self, at_ms: int, not_before_ms: int) -> int:
        """The latest tick in [not_before_ms, at_ms]; `not_before_ms` itself if none is later.
        Used to collapse a run of missed ticks into its latest one."""
        if self.every_ms is not None:
            if at_ms < self.anchor_ms:
                return not_before_ms
            latest = self.anchor_ms + ((at_ms - self.anchor_ms) // self.every_ms) * self.every_ms
            return max(latest, not_before_ms)
        # Search back from at_ms in windows doubling from a day, so a long downtime costs a few
        # cronsim steps, not one per missed tick.
        window = 86_400_000
        while True:
            start = max(not_before_ms, at_ms - window)
            latest = start if start == not_before_ms else None
            following = self.next_after(start)
            if following <= at_ms:
                latest = following
                while (following := self.next_after(latest)) <= at_ms:
                    latest = following
            if latest is not None:
                return latest
            window *= 2


def _repeated(tick: datetime) -> bool:
    """Whether `tick` is the second occurrence of a local time repeated by a DST change."""
    if not tick.fold:
        return False
    return tick.replace(fold=0).utcoffset() != tick.utcoffset()
