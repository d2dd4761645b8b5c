"""The DST policy of ZonedCron (cron fire times in a zone), pinned and against a reference."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddeutil.workflow.errors import ScheduleError
from ddeutil.workflow.schedules.cron import CronExpression
from ddeutil.workflow.schedules.dst import ZonedCron

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NY = ZoneInfo("America/New_York")


def ts(when: datetime) -> int:
    return int((when - EPOCH).total_seconds())


def utc(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def between(cron: ZonedCron, after: int, until: int) -> list[int]:
    """Fire instants in ``(after, until]`` as UTC seconds, through ``ZonedCron.fire_times``."""
    return [ts(t) for t in cron.fire_times(utc(after), utc(until))]


def z(text: str) -> datetime:
    """``"2025-03-09 07:00"`` as aware UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def forward(cron: ZonedCron, start: datetime, count: int) -> list[datetime]:
    out, at = [], ts(start)
    for _ in range(count):
        at = cron.next_after(at)
        out.append(utc(at))
    return out


def backward(cron: ZonedCron, start: datetime, count: int) -> list[datetime]:
    out, at = [], ts(start)
    for _ in range(count):
        at = cron.prev_before(at)
        out.append(utc(at))
    return out


# ------------------------------------------------------------------ DST policy, pinned


@pytest.mark.parametrize(
    ("text", "zone", "start", "expected"),
    [
        # fixed time in the spring-forward gap: once, at the end of the gap (03:00 EDT)
        ("30 2 * * *", NY, "2025-03-08 12:00", ["2025-03-09 07:00", "2025-03-10 06:30"]),
        # several matching times inside one gap still run once
        ("0,15,30,45 2 * * *", NY, "2025-03-09 00:00", ["2025-03-09 07:00", "2025-03-10 06:00"]),
        ("0 2,3 * * *", NY, "2025-03-09 00:00", ["2025-03-09 07:00", "2025-03-10 06:00"]),
        # fixed time that occurs twice at fall-back: once, at the first occurrence
        ("30 1 * * *", NY, "2025-11-01 12:00", ["2025-11-02 05:30", "2025-11-03 06:30"]),
        ("0,30 1 * * *", NY, "2025-11-02 00:00", ["2025-11-02 05:00", "2025-11-02 05:30"]),
        # cronie's rule: a minute field starting with `*` follows elapsed time, so
        # both copies of 01:00-01:59 run ...
        (
            "*/30 1 * * *",
            NY,
            "2025-11-02 00:00",
            ["2025-11-02 05:00", "2025-11-02 05:30", "2025-11-02 06:00", "2025-11-02 06:30"],
        ),
        # ... and an hour step starting with `*` too: no 02:00 run in the gap
        (
            "0 */2 * * *",
            NY,
            "2025-03-09 04:00",
            ["2025-03-09 05:00", "2025-03-09 08:00", "2025-03-09 10:00"],
        ),
        # hour `*`: elapsed time, both copies of 01:00, nothing invented in the gap
        (
            "0 * * * *",
            NY,
            "2025-11-02 04:30",
            ["2025-11-02 05:00", "2025-11-02 06:00", "2025-11-02 07:00"],
        ),
        ("30 * * * *", NY, "2025-03-09 06:00", ["2025-03-09 06:30", "2025-03-09 07:30"]),
        (
            "*/30 * * * *",
            NY,
            "2025-11-02 05:00",
            ["2025-11-02 05:30", "2025-11-02 06:00", "2025-11-02 06:30"],
        ),
        # `0-23` does not start with `*`: fixed time, the repeated 01:00 runs once ...
        (
            "0 0-23 * * *",
            NY,
            "2025-11-02 04:30",
            ["2025-11-02 05:00", "2025-11-02 07:00", "2025-11-02 08:00"],
        ),
        # ... and the skipped 02:00 runs at 03:00 EDT, once with 03:00 itself
        (
            "0 0-23 * * *",
            NY,
            "2025-03-09 05:30",
            ["2025-03-09 06:00", "2025-03-09 07:00", "2025-03-09 08:00"],
        ),
        # a day whose midnight does not exist runs its midnight job at 01:00 local
        (
            "0 0 * * *",
            ZoneInfo("America/Sao_Paulo"),
            "2018-11-03 12:00",
            ["2018-11-04 03:00", "2018-11-05 02:00"],
        ),
        # ... and its repeated 23:00 hour at fall-back runs once
        (
            "30 23 * * *",
            ZoneInfo("America/Sao_Paulo"),
            "2019-02-16 12:00",
            ["2019-02-17 01:30", "2019-02-18 02:30"],
        ),
        # half-hour DST shift (Lord Howe: 02:00 -> 02:30)
        (
            "15 2 * * *",
            ZoneInfo("Australia/Lord_Howe"),
            "2025-10-04 12:00",
            ["2025-10-04 15:30", "2025-10-05 15:15"],
        ),
    ],
)
def test_dst_policy(text: str, zone: ZoneInfo, start: str, expected: list[str]) -> None:
    cron = ZonedCron(CronExpression.parse(text), zone)
    want = [z(t) for t in expected]
    assert forward(cron, z(start), len(want)) == want
    # the same instants walking back from just after the last one
    assert backward(cron, want[-1] + timedelta(seconds=1), len(want)) == want[::-1]


def test_cronie_wildcard_jobs_skip_the_gap_and_run_both_copies_of_the_repeated_hour() -> None:
    spring = ZonedCron(CronExpression.parse("* 2 * * *"), NY)
    day = (ts(z("2025-03-09 04:00")), ts(z("2025-03-10 04:00")))
    assert between(spring, *day) == []  # 02:00-02:59 EDT does not exist that day
    fall = ZonedCron(CronExpression.parse("*/15 1 * * *"), NY)
    times = between(fall, ts(z("2025-11-02 04:00")), ts(z("2025-11-03 04:00")))
    assert [f"{utc(t):%H:%M}" for t in times] == [
        "05:00", "05:15", "05:30", "05:45", "06:00", "06:15", "06:30", "06:45"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "fixed"),
    [
        ("30 1 * * *", True),
        ("0 0-23 * * *", True),
        ("0,30 0-23/1 * * *", True),
        ("0 9 L * 1#2", True),
        ("@daily", True),
        ("@weekly", True),
        ("* 2 * * *", False),
        ("*/15 1 * * *", False),
        ("0 */2 * * *", False),
        ("0 * * * *", False),
        ("@hourly", False),
    ],
)
def test_fixed_time_is_read_from_the_minute_and_hour_text_like_cronie(
    text: str, fixed: bool
) -> None:
    assert CronExpression.parse(text).fixed_time is fixed


def test_gap_fire_time_is_the_first_valid_local_instant() -> None:
    cron = ZonedCron(CronExpression.parse("30 2 * * *"), NY)
    (at,) = forward(cron, z("2025-03-09 00:00"), 1)
    assert at.astimezone(NY).strftime("%H:%M %Z") == "03:00 EDT"
    sao_paulo = ZoneInfo("America/Sao_Paulo")
    cron = ZonedCron(CronExpression.parse("0 0 * * *"), sao_paulo)
    (at,) = forward(cron, z("2018-11-04 00:00"), 1)
    assert at.astimezone(sao_paulo).strftime("%Y-%m-%d %H:%M") == "2018-11-04 01:00"


def test_a_year_of_hourly_fire_times_is_strictly_increasing_without_duplicates() -> None:
    cron = ZonedCron(CronExpression.parse("0 * * * *"), NY)
    start, end = ts(z("2025-01-01 00:00")), ts(z("2026-01-01 00:00"))
    times = between(cron, start, end)
    assert len(times) == 365 * 24  # one per elapsed hour, DST days included
    assert all(a < b for a, b in pairwise(times))
    assert [t - times[0] for t in times] == [3600 * i for i in range(len(times))]
    back = [cron.prev_before(end + 1)]
    while back[-1] > start + 3600:
        back.append(cron.prev_before(back[-1]))
    assert back[::-1] == times


def test_a_year_of_a_fixed_daily_time_runs_once_per_local_day() -> None:
    for text in ("30 1 * * *", "30 2 * * *", "0 9 * * *"):
        cron = ZonedCron(CronExpression.parse(text), NY)
        times = between(cron, ts(z("2025-01-01 12:00")), ts(z("2026-01-01 12:00")))
        local_days = [utc(t).astimezone(NY).date() for t in times]
        assert len(times) == 365, text
        assert len(set(local_days)) == 365, text
        assert all(a < b for a, b in pairwise(times))


# ---------------------------------------------- DST policy against a brute-force reference


def _reference(expr: CronExpression, zone: ZoneInfo, lo: datetime, hi: datetime) -> list[datetime]:
    """The policy spelt out minute by minute over UTC (slow, independent of ZonedCron)."""
    out: list[datetime] = []
    at = lo + timedelta(minutes=1)
    before = (at - timedelta(minutes=1)).astimezone(zone)
    while at <= hi:
        wall = at.astimezone(zone)
        fire = expr.matches(wall) and (not expr.fixed_time or wall.fold == 0)
        jump = wall.utcoffset() - before.utcoffset()  # type: ignore[operator]
        if expr.fixed_time and jump > timedelta(0):
            gap = before.replace(tzinfo=None) + timedelta(minutes=1)
            while gap < wall.replace(tzinfo=None):
                fire = fire or expr.matches(gap)
                gap += timedelta(minutes=1)
        if fire:
            out.append(at)
        before = wall
        at += timedelta(minutes=1)
    return out


TRANSITIONS = [
    ("America/New_York", "2025-03-09"),
    ("America/New_York", "2025-11-02"),
    ("Europe/London", "2025-03-30"),
    ("Europe/London", "2025-10-26"),
    ("America/Sao_Paulo", "2018-11-04"),
    ("America/Sao_Paulo", "2019-02-17"),
    ("Australia/Lord_Howe", "2025-04-06"),
    ("Australia/Lord_Howe", "2025-10-05"),
    ("Pacific/Chatham", "2025-04-06"),
    ("Pacific/Chatham", "2025-09-28"),
    ("Asia/Tehran", "2021-03-22"),
    ("Asia/Tehran", "2021-09-22"),
]
POLICY_EXPRESSIONS = [
    "30 2 * * *",
    "30 1 * * *",
    "0 0 * * *",
    "45 23 * * *",
    "0,30 2 * * *",
    "0 2,3 * * *",
    "*/20 1-3 * * *",
    "0 * * * *",
    "30 * * * *",
    "*/15 * * * *",
    "0 */2 * * *",
    "45 2 * * *",
]


def _windows() -> Iterator[tuple[str, datetime, datetime]]:
    for zone, day in TRANSITIONS:
        middle = z(f"{day} 00:00")
        yield zone, middle - timedelta(days=1), middle + timedelta(days=2)


@pytest.mark.parametrize(
    ("zone", "lo", "hi"), list(_windows()), ids=[f"{z}-{d}" for z, d in TRANSITIONS]
)
def test_policy_matches_the_minute_by_minute_reference(
    zone: str, lo: datetime, hi: datetime
) -> None:
    tz = ZoneInfo(zone)
    for text in POLICY_EXPRESSIONS:
        expr = CronExpression.parse(text)
        expected = _reference(expr, tz, lo, hi)
        cron = ZonedCron(expr, tz)
        got = [utc(t) for t in between(cron, ts(lo), ts(hi))]
        assert got == expected, text
        back: list[datetime] = []
        at = ts(hi) + 1
        while (at := cron.prev_before(at)) > ts(lo):
            back.append(utc(at))
        assert back[::-1] == expected, text


ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    text=st.sampled_from([*POLICY_EXPRESSIONS, "0 9 * * 1-5", "*/5 * * * *", "0 0 1 * *"]),
    zone=st.sampled_from(ZONES),
    start=st.integers(ts(z("2017-01-01 00:00")), ts(z("2027-01-01 00:00"))),
)
def test_next_and_prev_are_inverse_steps(text: str, zone: str, start: int) -> None:
    cron = ZonedCron(CronExpression.parse(text), ZoneInfo(zone))
    nxt = cron.next_after(start)
    prev = cron.prev_before(nxt)
    assert nxt > start
    assert prev <= start
    assert cron.next_after(prev) == nxt  # nothing fires in between
    assert cron.prev_before(prev + 1) == prev


# ---------------------------------------------------------------------- zones and range


def test_zone_segments_pin_transitions_to_the_second() -> None:
    cron = ZonedCron(CronExpression.parse("* * * * *"), NY)
    spring, fall = ts(z("2025-03-09 07:00")), ts(z("2025-11-02 06:00"))
    assert cron._timeline.segment(spring)[:3] == (spring, fall, -4 * 3600)
    assert cron._timeline.segment(spring - 1)[1:3] == (spring, -5 * 3600)
    assert cron._timeline.segment(fall - 1)[3:] == (-5 * 3600, -5 * 3600)


def test_zone_with_second_offsets_fires_on_wall_minutes() -> None:
    bangkok = ZoneInfo("Asia/Bangkok")  # local mean time +06:42:04 until 1920
    cron = ZonedCron(CronExpression.parse("0 0 * * *"), bangkok)
    (at,) = forward(cron, z("1900-01-01 00:00"), 1)
    local = at.astimezone(bangkok)
    assert (local.hour, local.minute, local.second) == (0, 0, 0)
    assert at.second == 56


def test_the_supported_range_ends_with_a_schedule_error() -> None:
    cron = ZonedCron(CronExpression.parse("0 0 1 1 *"), UTC)
    with pytest.raises(ScheduleError, match="no fire time before year 10000"):
        cron.next_after(ts(datetime(9999, 6, 1, tzinfo=UTC)))
    first = cron.prev_before(ts(datetime(1, 6, 1, tzinfo=UTC)))
    assert utc(first) == datetime(1, 1, 1, tzinfo=UTC)
    with pytest.raises(ScheduleError, match="supported years 1-9999"):
        cron.prev_before(first)
    with pytest.raises(ScheduleError, match="no fire time after year 1"):
        cron.expr.prev_wall(ts(datetime(1, 6, 1, tzinfo=UTC)) - 366 * 86_400)
    with pytest.raises(ScheduleError, match="no fire time before year 10000"):
        cron.expr.next_wall(ts(datetime(9999, 12, 31, tzinfo=UTC)) + 2 * 86_400)
    with pytest.raises(ScheduleError, match="no fire time after year 1"):
        CronExpression.parse("0 0 2 1 *").prev_wall(ts(datetime(1, 1, 1, 12, tzinfo=UTC)))
    with pytest.raises(ScheduleError, match="supported years"):
        cron._timeline.segment(ts(datetime(1, 1, 1, tzinfo=UTC)) - 86_400 * 10)


def test_the_memo_never_answers_for_an_earlier_instant() -> None:
    cron = ZonedCron(CronExpression.parse("0 * * * *"), UTC)
    assert utc(cron.next_after(ts(z("2025-01-01 10:30")))) == z("2025-01-01 11:00")
    assert utc(cron.next_after(ts(z("2025-01-01 10:45")))) == z("2025-01-01 11:00")
    assert utc(cron.next_after(ts(z("2025-01-01 08:10")))) == z("2025-01-01 09:00")
    assert utc(cron.next_after(ts(z("2025-01-01 11:00")))) == z("2025-01-01 12:00")


def test_zoned_crons_are_values() -> None:
    a = ZonedCron(CronExpression.parse("0 9 * * 1-5"), NY)
    b = ZonedCron(CronExpression.parse("0 9 * * 1-5"), NY)
    assert a == b
    assert hash(a) == hash(b)
    assert a != ZonedCron(CronExpression.parse("0 9 * * 1-5"), UTC)
    assert a != "0 9 * * 1-5"
    assert pickle.loads(pickle.dumps(a)) == a
    assert repr(a) == "ZonedCron('0 9 * * 1-5', America/New_York)"
