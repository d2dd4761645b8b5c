"""Cron expressions: syntax, day matching, and fire times in UTC against croniter."""

from __future__ import annotations

import pickle
from bisect import bisect_left, bisect_right
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ddeutil.workflow.errors import ConfigError, ScheduleError
from ddeutil.workflow.schedules.cron import MACROS, CronExpression, ZonedCron

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NY = ZoneInfo("America/New_York")
ALL_HOURS = tuple(range(24))


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
        ("0 0 L-0 * *", "day-of-month: 0 in 'L-0' is out of range 1-30"),
        ("0 0 * * 1#0", "day-of-week: 0 in '1#0' is out of range 1-5"),
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
        a.hours = (1,)


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
    got = between(cron, ts(z("2024-12-31 12:00")), ts(z("2025-01-31 23:59")))
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
    assert [utc(t) for t in between(cron, ts(start) - 1, ts(end + timedelta(days=1)))] == expected
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
