"""Cron and interval timetables: DST both ways in two zones, Feb 29, steps across hours,
day-of-month with day-of-week, collapse of missed ticks, and what is refused."""
from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.clock import from_rfc3339 as at
from app.core.clock import to_rfc3339
from app.core.timetable import BadTimetable, Timetable, check_cron, zone


def ticks(table: Timetable, start: str, count: int) -> list[str]:
    out, now = [], at(start)
    for _ in range(count):
        now = table.next_after(now)
        out.append(to_rfc3339(now))
    return out


@pytest.mark.parametrize(("tz", "cron", "start", "expected"), [
    # Spring forward: 02:30 does not exist; it runs at the first instant after the gap (03:00 local).
    ("Europe/Berlin", "30 2 * * *", "2026-03-28T12:00:00Z",
     ["2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z"]),
    ("America/New_York", "30 2 * * *", "2026-03-07T12:00:00Z",
     ["2026-03-08T07:00:00.000Z", "2026-03-09T06:30:00.000Z"]),
    # Fall back: 02:30 (Berlin) and 01:30 (New York) occur twice; each runs once, the first time.
    ("Europe/Berlin", "30 2 * * *", "2026-10-24T12:00:00Z",
     ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"]),
    ("America/New_York", "30 1 * * *", "2026-10-31T12:00:00Z",
     ["2026-11-01T05:30:00.000Z", "2026-11-02T06:30:00.000Z"]),
    # Hourly across the fall-back: the repeated 02:00 (Berlin) runs once.
    ("Europe/Berlin", "0 * * * *", "2026-10-24T22:30:00Z",
     ["2026-10-24T23:00:00.000Z", "2026-10-25T00:00:00.000Z", "2026-10-25T02:00:00.000Z"]),
    # Hourly across the spring-forward: 02:00 does not exist, 03:00 comes an hour after 01:00.
    ("America/New_York", "0 * * * *", "2026-03-08T05:30:00Z",
     ["2026-03-08T06:00:00.000Z", "2026-03-08T07:00:00.000Z", "2026-03-08T08:00:00.000Z"]),
])
def test_dst_gap_runs_after_it_and_repeated_time_runs_once(tz, cron, start, expected):
    assert ticks(Timetable(cron=cron, timezone=tz), start, len(expected)) == expected


def test_feb_29_runs_only_in_leap_years():
    assert ticks(Timetable(cron="0 12 29 feb *"), "2026-01-01T00:00:00Z", 2) == [
        "2028-02-29T12:00:00.000Z", "2032-02-29T12:00:00.000Z"]


def test_step_of_7_restarts_each_hour():
    assert ticks(Timetable(cron="*/7 * * * *"), "2026-01-01T00:50:00Z", 4) == [
        "2026-01-01T00:56:00.000Z", "2026-01-01T01:00:00.000Z", "2026-01-01T01:07:00.000Z",
        "2026-01-01T01:14:00.000Z"]


def test_day_of_month_and_day_of_week_together_mean_either():
    # January 2026: Fridays are the 2nd, 9th, 16th...; the 13th is a Tuesday.
    assert ticks(Timetable(cron="0 0 13 * fri"), "2026-01-01T00:00:00Z", 4) == [
        "2026-01-02T00:00:00.000Z", "2026-01-09T00:00:00.000Z", "2026-01-13T00:00:00.000Z",
        "2026-01-16T00:00:00.000Z"]


def test_names_ranges_and_lists():
    assert ticks(Timetable(cron="15 9,17 * jan-feb MON-wed"), "2026-01-04T00:00:00Z", 3) == [
        "2026-01-05T09:15:00.000Z", "2026-01-05T17:15:00.000Z", "2026-01-06T09:15:00.000Z"]


def test_every_counts_from_its_anchor():
    table = Timetable(every_ms=60_000, anchor_ms=at("2026-01-01T00:00:10Z"))
    assert ticks(table, "2026-01-01T00:00:10Z", 2) == ["2026-01-01T00:01:10.000Z", "2026-01-01T00:02:10.000Z"]
    assert to_rfc3339(table.next_after(at("2026-01-01T00:01:09.999Z"))) == "2026-01-01T00:01:10.000Z"


def test_latest_missed_tick_is_found_far_behind():
    table = Timetable(cron="0 0 29 2 *")
    assert to_rfc3339(table.latest_at_or_before(at("2031-12-01T00:00:00Z"), at("2026-01-01T00:00:00Z"))) \
        == "2028-02-29T00:00:00.000Z"
    minutely = Timetable(cron="* * * * *")
    assert to_rfc3339(minutely.latest_at_or_before(at("2026-06-01T10:00:30Z"), at("2026-01-01T00:00:00Z"))) \
        == "2026-06-01T10:00:00.000Z"
    every = Timetable(every_ms=1000, anchor_ms=0)
    assert every.latest_at_or_before(10_500, 3000) == 10_000


@pytest.mark.parametrize("cron", ["* * * *", "* * * * * *", "61 * * * *", "* 24 * * *", "0 0 31 2 *",
                                  "@hourly", "*/0 * * * *", "0 0 * * funday", "x" * 201])
def test_bad_cron_names_the_field(cron):
    with pytest.raises(BadTimetable) as caught:
        check_cron(cron)
    assert caught.value.field == "cron"


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "Europe/" + "x" * 70])
def test_unknown_zone_names_the_field(name):
    with pytest.raises(BadTimetable) as caught:
        zone(name)
    assert caught.value.field == "timezone"


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "UTC"]
# The 2026 DST changes of those zones (UTC), both directions.
CHANGES_S = [at(t) // 1000 for t in ("2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z", "2026-03-08T07:00:00Z",
                                      "2026-11-01T06:00:00Z", "2026-04-04T16:00:00Z", "2026-10-03T16:00:00Z")]


@settings(max_examples=60, deadline=None)
@given(tz=st.sampled_from(ZONES), minute_step=st.sampled_from([1, 7, 15, 30]), hour=st.sampled_from(["*", "1-3"]),
       change_s=st.sampled_from(CHANGES_S), before_s=st.integers(0, 6 * 3600))
def test_ticks_increase_and_no_local_time_runs_twice(tz, minute_step, hour, change_s, before_s):
    """Property, across DST changes in both directions: ticks strictly increase, each is a time the
    expression names in the zone (or the first instant after a gap), and no local time repeats."""
    table = Timetable(cron=f"*/{minute_step} {hour} * * *", timezone=tz)
    local_times, previous = set(), (change_s - before_s) * 1000
    for _ in range(300):
        tick = table.next_after(previous)
        assert tick > previous
        local = datetime.fromtimestamp(tick / 1000, tz=zone(tz))
        wall = local.replace(tzinfo=None)
        assert wall not in local_times
        local_times.add(wall)
        assert local.second == 0 and (local.minute % minute_step == 0 or local.minute == 0)
        previous = tick
