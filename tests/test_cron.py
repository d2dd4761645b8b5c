"""Cron expressions (syntax, matching) and the DST policy of ZonedCron, pinned."""

from __future__ import annotations

import pickle
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ddeutil.workflow.cron import MACROS, CronExpression, ZonedCron
from ddeutil.workflow.errors import ConfigError, ScheduleError

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NY = ZoneInfo("America/New_York")
ALL_MINUTES = tuple(range(60))
ALL_HOURS = tuple(range(24))


def ts(when: datetime) -> int:
    return int((when - EPOCH).total_seconds())


def utc(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


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


# ------------------------------------------------------------------------------ syntax


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("*/5 * * * *", (tuple(range(0, 60, 5)), ALL_HOURS, range(1, 32), range(1, 13), range(7))),
        ("0 9 * * 1-5", ((0,), (9,), range(1, 32), range(1, 13), range(1, 6))),
        ("0 9 * * MON-FRI", ((0,), (9,), range(1, 32), range(1, 13), range(1, 6))),
        ("0 9 * * mon-fri", ((0,), (9,), range(1, 32), range(1, 13), range(1, 6))),
        ("15,45 1-3 1,15 JAN,jul *", ((15, 45), (1, 2, 3), (1, 15), (1, 7), range(7))),
        (
            "0-10/5 */6 */10 */4 *",
            ((0, 5, 10), (0, 6, 12, 18), (1, 11, 21, 31), (1, 5, 9), range(7)),
        ),
        ("5/20 22/1 * * *", ((5, 25, 45), (22, 23), range(1, 32), range(1, 13), range(7))),
        ("0 0 * * 7", ((0,), (0,), range(1, 32), range(1, 13), (0,))),
        ("0 0 * * 5-7", ((0,), (0,), range(1, 32), range(1, 13), (0, 5, 6))),
        ("0 0 * * 1/2", ((0,), (0,), range(1, 32), range(1, 13), (1, 3, 5))),
        ("0 0 * * */3", ((0,), (0,), range(1, 32), range(1, 13), (0, 3, 6))),
        ("0 0 * * 7/2", ((0,), (0,), range(1, 32), range(1, 13), (0,))),
        ("0 0 * * SUN,sat", ((0,), (0,), range(1, 32), range(1, 13), (0, 6))),
        ("59 23 31 DEC *", ((59,), (23,), (31,), (12,), range(7))),
        ("*/90 * * * *", ((0,), ALL_HOURS, range(1, 32), range(1, 13), range(7))),
        ("0 0 29 2 *", ((0,), (0,), (29,), (2,), range(7))),
    ],
)
def test_fields_expand_to_the_values_they_select(
    text: str, fields: tuple[tuple[int, ...], tuple[int, ...], Any, Any, Any]
) -> None:
    minutes, hours, days, months, weekdays = fields
    expr = CronExpression.parse(text)
    assert expr.minutes == minutes
    assert expr.hours == hours
    assert expr.days == frozenset(days)
    assert expr.months == frozenset(months)
    assert expr.weekdays == frozenset(weekdays)


@pytest.mark.parametrize(
    ("macro", "same_as"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_macros_stand_for_their_five_fields(macro: str, same_as: str) -> None:
    expr, plain = CronExpression.parse(macro), CronExpression.parse(same_as)
    fields = ("minutes", "hours", "days", "months", "weekdays", "day_or", "fixed_time")
    assert [getattr(expr, f) for f in fields] == [getattr(plain, f) for f in fields]
    assert str(expr) == macro
    assert set(MACROS) == {
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    }


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("*/5 * * * *", "*/5 * * * *"),
        ("  */5   *\t* * *  ", "*/5 * * * *"),
        ("0 9 * * mon-FRI", "0 9 * * mon-FRI"),
        ("@Daily", "@daily"),
        (" @HOURLY ", "@hourly"),
    ],
)
def test_str_is_the_expression_as_written_with_whitespace_collapsed(
    text: str, written: str
) -> None:
    assert str(CronExpression.parse(text)) == written


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("61 * * * *", "minute: 61 is out of range 0-59"),
        ("* 24 * * *", "hour: 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month: 0 is out of range 1-31"),
        ("0 0 32 * *", "day-of-month: 32 is out of range 1-31"),
        ("0 0 * 13 *", "month: 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week: 8 is out of range 0-7"),
        ("*/0 * * * *", "minute: step 0 in '*/0' must be at least 1"),
        ("0 */0 * * *", "hour: step 0"),
        ("*/x * * * *", "minute: step 'x' in '*/x' is not a number"),
        ("*/ * * * *", "minute: step ''"),
        ("* * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6"),
        ("0 0 1 1 * 2030", "seconds and years are not supported"),
        ("* * * *", "got 4"),
        ("garbage", "got 1"),
        ("", "the expression is empty"),
        ("   ", "the expression is empty"),
        ("@reboot", "unknown macro '@reboot'"),
        ("@every_5m", "unknown macro"),
        ("5-2 * * * *", "minute: range '5-2' goes backwards"),
        ("0 0 * * SAT-MON", "day-of-week: range 'SAT-MON' goes backwards"),
        ("0 0 * * FUN", "day-of-week: unknown name 'FUN'"),
        ("0 0 * FOO *", "month: unknown name 'FOO'"),
        ("MON * * * *", "minute: cannot read 'MON'"),
        ("1,,2 * * * *", "minute: empty item in '1,,2'"),
        ("-5 * * * *", "minute: cannot read ''"),
        ("? * * * *", "minute: cannot read '?'"),
        ("0 0 L * *", "day-of-month: cannot read 'L'"),
        ("0 0 * * 1#2", "day-of-week: cannot read '1#2'"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("0 0 31 FEB-APR/2 *", "never fires"),
    ],
)
def test_invalid_expressions_name_the_expression_and_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ScheduleError) as info:
        CronExpression.parse(text)
    assert isinstance(info.value, ConfigError)
    assert repr(text) in str(info.value)
    assert reason in str(info.value)


@pytest.mark.parametrize("value", [None, 5, ["*/5", "*"]])
def test_a_non_string_is_not_an_expression(value: object) -> None:
    with pytest.raises(ScheduleError, match="must be a string"):
        CronExpression.parse(value)  # type: ignore[arg-type]


def test_a_day_that_exists_only_in_leap_years_is_valid_and_found() -> None:
    cron = ZonedCron(CronExpression.parse("0 0 29 2 *"), UTC)
    assert forward(cron, z("2025-01-01 00:00"), 2) == [z("2028-02-29 00:00"), z("2032-02-29 00:00")]
    assert backward(cron, z("2028-02-29 00:00"), 1) == [z("2024-02-29 00:00")]


def test_expressions_are_values() -> None:
    a = CronExpression.parse("*/5 * * * *")
    assert a is CronExpression.parse("*/5 * * * *")  # parsing is cached
    assert a == CronExpression("*/5  * * * *")
    assert a != CronExpression.parse("*/10 * * * *")
    assert a != "*/5 * * * *"
    assert len({a, CronExpression("*/5 * * * *")}) == 1
    assert pickle.loads(pickle.dumps(a)) == a
    assert repr(a) == "CronExpression('*/5 * * * *')"
    with pytest.raises(AttributeError, match="immutable"):
        a.hours = (1,)  # type: ignore[misc]


# ---------------------------------------------------------------------- day matching


JANUARY_2025_SUNDAYS = [5, 12, 19, 26]  # 2025-01-01 is a Wednesday
JANUARY_2025_MONDAYS = [6, 13, 20, 27]
JANUARY_2025_EVEN_WEEKDAYS = [2, 4, 5, 7, 9, 11, 12, 14, 16, 18, 19, 21, 23, 25, 26, 28, 30]


@pytest.mark.parametrize(
    ("text", "day_or", "days"),
    [
        # both restricted: a day matches if either field does (Vixie cron)
        ("0 0 1,15 * MON", True, sorted([1, 15, *JANUARY_2025_MONDAYS])),
        ("0 0 1,4 * 0,2,4,6", True, sorted({1, 4, *JANUARY_2025_EVEN_WEEKDAYS})),
        ("0 0 1-31 * MON", True, list(range(1, 32))),  # restricted by its text: OR
        ("0 0 1 * SUN", True, [1, *JANUARY_2025_SUNDAYS]),
        # one field `*`: both must match (the `*` one always does)
        ("0 0 1,15 * *", False, [1, 15]),
        ("0 0 * * MON", False, JANUARY_2025_MONDAYS),
        # Vixie quirk: a day field starting with `*` is not restricted, so it is AND
        ("0 0 */2 * MON", False, [13, 27]),
        ("0 0 1,4 * */2", False, [4]),
    ],
)
def test_day_of_month_and_day_of_week_combine_like_vixie_cron(
    text: str, day_or: bool, days: list[int]
) -> None:
    expr = CronExpression.parse(text)
    assert expr.day_or is day_or
    cron = ZonedCron(expr, UTC)
    got = cron.between(ts(z("2024-12-31 12:00")), ts(z("2025-01-31 23:59")))
    assert [utc(t).day for t in got] == days


@pytest.mark.parametrize(
    "text",
    [
        "0 0 31 * */3",  # AND: the 31st, when it is a Sunday, Wednesday or Saturday
        "0 0 29,30 * */2",
        "0 0 */10 * 1",
        "0 0 13 * 5",  # OR: every 13th and every Friday
        "0 0 31 1,3,5,7 SUN",
        "0 0 1-7 * */7",
        "30 23 31 * *",
    ],
)
def test_day_search_agrees_with_day_by_day_matching(text: str) -> None:
    expr = CronExpression.parse(text)
    cron = ZonedCron(expr, UTC)
    start, end = z("2023-01-01 00:00"), z("2029-01-01 00:00")
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    walls = [d.replace(hour=expr.hours[0], minute=expr.minutes[0]) for d in days]
    expected = [wall for wall in walls if expr.matches(wall)]
    assert [utc(t) for t in cron.between(ts(start) - 1, ts(end + timedelta(days=1)))] == expected
    for probe in days:  # a search starting on every day of the window
        i = bisect_right(expected, probe)
        if i < len(expected):  # a fresh instance: no memo from the previous probe
            assert utc(ZonedCron(expr, UTC).next_after(ts(probe))) == expected[i], probe
        j = bisect_left(expected, probe)
        if j > 0:
            assert utc(cron.prev_before(ts(probe))) == expected[j - 1], probe


def test_matches_reads_wall_clock_fields() -> None:
    expr = CronExpression.parse("30 9 1 * MON")
    assert expr.matches(datetime(2025, 1, 1, 9, 30))  # day 1 (a Wednesday)
    assert expr.matches(datetime(2025, 1, 6, 9, 30))  # a Monday
    assert not expr.matches(datetime(2025, 1, 7, 9, 30))
    assert not expr.matches(datetime(2025, 1, 6, 9, 31))
    assert expr.matches(datetime(2025, 1, 6, 9, 30, tzinfo=NY))


# -------------------------------------------------------------- agreement with croniter


def _field(low: int, high: int, step_high: int | None = None) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    # croniter misreads `7/n` in day-of-week, so `a/n` starts stay in 0-6 there
    start = st.integers(low, step_high or high)
    step = st.integers(1, high - low + 2)
    # croniter reads a one-value range such as `3-3` as `*`, so endpoints differ
    rng = st.tuples(value, value).filter(lambda p: p[0] != p[1]).map(lambda p: f"{min(p)}-{max(p)}")
    item = st.one_of(
        value.map(str),
        rng,
        st.tuples(rng, step).map(lambda p: f"{p[0]}/{p[1]}"),
        st.tuples(start, step).map(lambda p: f"{p[0]}/{p[1]}"),
    )
    return st.one_of(
        st.just("*"),
        step.map(lambda s: f"*/{s}"),
        st.lists(item, min_size=1, max_size=3).map(",".join),
    )


EXPRESSIONS = st.tuples(
    _field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12), _field(0, 7, 6)
).map(" ".join)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    text=EXPRESSIONS,
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
)
def test_fire_times_in_utc_agree_with_croniter(text: str, start: datetime) -> None:
    try:
        expr = CronExpression.parse(text)
    except ScheduleError:
        assume(False)
        raise
    _, _, dom, _, dow = text.split()
    # croniter reads `*/n` in a day field as restricted; Vixie cron (and we) do not
    assume(not (dom != "*" and dom.startswith("*") and dow != "*"))
    assume(not (dow != "*" and dow.startswith("*") and dom != "*"))
    start = start.replace(microsecond=0, tzinfo=UTC)  # On handles sub-second bounds
    reference = croniter(text, start)
    expected = [reference.get_next(datetime) for _ in range(8)]
    assert forward(ZonedCron(expr, UTC), start, 8) == expected
    reference = croniter(text, start)
    expected = [reference.get_prev(datetime) for _ in range(8)]
    assert backward(ZonedCron(expr, UTC), start, 8) == expected


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
        (
            "*/30 1 * * *",
            NY,
            "2025-11-02 00:00",
            ["2025-11-02 05:00", "2025-11-02 05:30", "2025-11-03 06:00"],
        ),
        # a restricted step in the hour field is fixed wall-clock time too
        (
            "0 */2 * * *",
            NY,
            "2025-03-09 04:00",
            ["2025-03-09 05:00", "2025-03-09 07:00", "2025-03-09 08:00"],
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
        (
            "0 0-23 * * *",
            NY,
            "2025-11-02 04:30",
            ["2025-11-02 05:00", "2025-11-02 06:00", "2025-11-02 07:00"],
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
    times = cron.between(start, end)
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
        times = cron.between(ts(z("2025-01-01 12:00")), ts(z("2026-01-01 12:00")))
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
        got = [utc(t) for t in cron.between(ts(lo), ts(hi))]
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
