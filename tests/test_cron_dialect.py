"""The cron dialect: ASCII only, Sunday-ending day-of-week ranges, and L / W / # days.

The month-dependent day tokens are checked three ways: pinned examples, a naive
day-by-day reading of each token run through the minute-by-minute DST reference of
test_dst (in several zones), and cronsim (in UTC) for the tokens it implements.
"""

from __future__ import annotations

import calendar
import sys
import unicodedata
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddeutil.workflow.errors import ScheduleError
from ddeutil.workflow.schedules.cron import CronExpression, ZonedCron
from ddeutil.workflow.schedules.cron_days import MONTH_LENGTHS
from ddeutil.workflow.schedules.on import On
from test_dst import _reference, backward, between, forward, ts, utc, z

UTC = timezone.utc

# ---------------------------------------------------------------------------- ASCII only


def _foreign_characters() -> tuple[list[str], list[str]]:
    """Every Unicode digit-like and space-like character that is not ASCII 0-9, space, tab."""
    digits, spaces = [], []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if char in "0123456789 \t":
            continue
        if (
            unicodedata.category(char) == "Nd"
            or char.isdigit()
            or char.isdecimal()
            or char.isnumeric()
        ):
            digits.append(char)
        elif char.isspace():
            spaces.append(char)
    return digits, spaces


DIGITS, SPACES = _foreign_characters()
BASE = ["5", "1", "2", "3", "4"]  # "5 1 2 3 4"


def _placements(char: str) -> Iterator[tuple[str, int]]:
    """``char`` in every field, as every separator, leading and trailing; its 1-based position."""
    for field in range(5):
        parts = list(BASE)
        parts[field] = char if field % 2 else f"1{char}"
        text = " ".join(parts)
        yield text, text.index(char) + 1
    for gap in range(4):
        text = " ".join(BASE[: gap + 1]) + char + " ".join(BASE[gap + 1 :])
        yield text, text.index(char) + 1
    yield char + "5 1 2 3 4", 1
    yield "5 1 2 3 4" + char, 10


def test_the_unicode_classes_are_not_empty() -> None:
    assert len(DIGITS) > 1000  # Nd alone is 600+ in every supported Python
    assert {"\u0665", "\uff15", "\u00b2", "\u2155"} <= set(DIGITS)
    assert {"\u00a0", "\u0085", "\u2003", "\u3000", "\n", "\r", "\x0b", "\x0c"} <= set(SPACES)


@pytest.mark.parametrize("chars", [DIGITS, SPACES], ids=["digits-and-numerics", "whitespace"])
def test_every_unicode_digit_and_space_is_rejected_everywhere(chars: list[str]) -> None:
    for char in chars:
        for text, position in _placements(char):
            with pytest.raises(ScheduleError) as info:
                CronExpression(text)
            message = str(info.value)
            assert f"character U+{ord(char):04X}" in message, (text, message)
            assert f"at position {position} is not allowed" in message, (text, message)
            assert "use ASCII digits and spaces" in message


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("\u0665 * * * *", "character U+0665 (ARABIC-INDIC DIGIT FIVE) at position 1"),
        ("0\u00a00 * * *", "character U+00A0 (NO-BREAK SPACE) at position 2 is not allowed"),
        ("\uff10 0 * * *", "character U+FF10 (FULLWIDTH DIGIT ZERO) at position 1"),
        ("0 0 * * *\u0085", "character U+0085 at position 10"),
        ("0 0 * * *\u00a0", "character U+00A0 (NO-BREAK SPACE) at position 10"),
        ("0 0 * * *\n", "character U+000A at position 10"),
        ("0 0 * * MON\u00ad", "character U+00AD (SOFT HYPHEN) at position 12"),
        ("@daily\u2003", "character U+2003 (EM SPACE) at position 7"),
        ("0 0 * * \ud800", "character U+D800 at position 9"),
    ],
)
def test_a_foreign_character_is_named_with_its_position(text: str, reason: str) -> None:
    with pytest.raises(ScheduleError) as info:
        CronExpression.parse(text)
    assert reason in str(info.value)
    assert repr(text) in str(info.value)


def test_ascii_spaces_and_tabs_still_separate_fields() -> None:
    assert str(CronExpression.parse("\t0 9\t* *  mon-fri ")) == "0 9 * * mon-fri"


def test_a_schedule_template_names_the_key_of_a_foreign_character() -> None:
    with pytest.raises(ScheduleError) as info:
        On.parse({"cron": "0\u00a09 * * *", "timezone": "UTC"})
    assert info.value.key == "cron"
    assert "U+00A0 (NO-BREAK SPACE)" in str(info.value)


# ------------------------------------------------------- day-of-week ranges ending in 0


@pytest.mark.parametrize(
    ("text", "weekdays"),
    [
        ("0 0 * * SAT-SUN", {6, 0}),
        ("0 0 * * sat-sun", {6, 0}),
        ("0 0 * * MON-SUN", {1, 2, 3, 4, 5, 6, 0}),
        ("0 0 * * 5-0", {5, 6, 0}),
        ("0 0 * * FRI-0", {5, 6, 0}),
        ("0 0 * * 1-0/2", {1, 3, 5, 0}),
        ("0 0 * * 6-SUN,3", {6, 0, 3}),
        ("0 0 * * 0-0", {0}),
        ("0 0 * * SUN-SUN", {0}),
    ],
)
def test_a_day_of_week_range_ending_in_sunday_ends_in_7(text: str, weekdays: set[int]) -> None:
    expr = CronExpression.parse(text)
    assert expr.weekdays == frozenset(weekdays)
    cron = ZonedCron(expr, UTC)
    got = {
        utc(t).isoweekday() % 7
        for t in between(cron, ts(z("2025-01-01 00:00")), ts(z("2025-01-15 00:00")))
    }
    assert got == weekdays


@pytest.mark.parametrize("text", ["0 0 * * SAT-MON", "0 0 * * 6-1", "0 0 * * 3-2/2"])
def test_other_backwards_day_of_week_ranges_are_still_rejected(text: str) -> None:
    with pytest.raises(ScheduleError, match="goes backwards"):
        CronExpression.parse(text)


# ----------------------------------------------------------------- L / W / #: pinned


def days_of(text: str, start: str, count: int) -> list[str]:
    cron = ZonedCron(CronExpression.parse(text), UTC)
    return [f"{t:%Y-%m-%d %a}" for t in forward(cron, z(start), count)]


@pytest.mark.parametrize(
    ("text", "start", "days"),
    [
        ("0 9 L * *", "2024-01-01", ["2024-01-31 Wed", "2024-02-29 Thu", "2024-03-31 Sun"]),
        ("0 9 L-3 * *", "2025-01-01", ["2025-01-28 Tue", "2025-02-25 Tue", "2025-03-28 Fri"]),
        ("0 9 L-30 * *", "2025-01-02", ["2025-03-01 Sat", "2025-05-01 Thu", "2025-07-01 Tue"]),
        # 1W: the 1st is a Saturday in February 2025 -> Monday the 3rd (never the 31st before)
        ("0 9 1W * *", "2025-01-02", ["2025-02-03 Mon", "2025-03-03 Mon", "2025-04-01 Tue"]),
        # 31W: Sunday 2025-08-31 -> Friday the 29th; months without a 31st are skipped
        ("0 9 31W * *", "2025-07-01", ["2025-07-31 Thu", "2025-08-29 Fri", "2025-10-31 Fri"]),
        ("0 9 15W * *", "2025-02-01", ["2025-02-14 Fri", "2025-03-14 Fri", "2025-04-15 Tue"]),
        ("0 9 16W * *", "2025-03-01", ["2025-03-17 Mon", "2025-04-16 Wed", "2025-05-16 Fri"]),
        ("0 9 LW * *", "2025-05-01", ["2025-05-30 Fri", "2025-06-30 Mon", "2025-07-31 Thu"]),
        ("0 9 lw * *", "2025-08-01", ["2025-08-29 Fri", "2025-09-30 Tue", "2025-10-31 Fri"]),
        ("0 9 * * 5L", "2025-01-01", ["2025-01-31 Fri", "2025-02-28 Fri", "2025-03-28 Fri"]),
        ("0 9 * * 7L", "2025-01-01", ["2025-01-26 Sun", "2025-02-23 Sun", "2025-03-30 Sun"]),
        ("0 9 * * MON#2", "2025-01-01", ["2025-01-13 Mon", "2025-02-10 Mon", "2025-03-10 Mon"]),
        ("0 9 * * 1#5", "2025-01-01", ["2025-03-31 Mon", "2025-06-30 Mon", "2025-09-29 Mon"]),
        ("0 9 * 2 sat#5", "2020-01-01", ["2020-02-29 Sat", "2048-02-29 Sat"]),
        # lists, as cronsim reads them
        ("0 9 1,L * *", "2025-01-30", ["2025-01-31 Fri", "2025-02-01 Sat", "2025-02-28 Fri"]),
        ("0 9 L,LW * *", "2025-05-01", ["2025-05-30 Fri", "2025-05-31 Sat", "2025-06-30 Mon"]),
        ("0 9 15W,L-1 * *", "2025-03-01", ["2025-03-14 Fri", "2025-03-30 Sun", "2025-04-15 Tue"]),
        (
            "0 9 * * MON#1,FRI#3",
            "2025-01-01",
            ["2025-01-06 Mon", "2025-01-17 Fri", "2025-02-03 Mon"],
        ),
        ("0 9 * * 5L,1", "2025-01-25", ["2025-01-27 Mon", "2025-01-31 Fri", "2025-02-03 Mon"]),
        # both day fields restricted: either matches (Vixie cron), tokens included
        ("0 9 L * MON", "2025-01-26", ["2025-01-27 Mon", "2025-01-31 Fri", "2025-02-03 Mon"]),
        ("0 9 13 * 5L", "2025-01-01", ["2025-01-13 Mon", "2025-01-31 Fri", "2025-02-13 Thu"]),
        # a day field starting with `*` is unrestricted: both must match
        ("0 9 */2 * 5L", "2025-01-01", ["2025-01-31 Fri", "2025-04-25 Fri", "2025-06-27 Fri"]),
        ("0 9 L * */2", "2025-01-01", ["2025-05-31 Sat", "2025-07-31 Thu", "2025-08-31 Sun"]),
    ],
)
def test_month_dependent_day_tokens(text: str, start: str, days: list[str]) -> None:
    assert days_of(text, f"{start} 00:00", len(days)) == days
    # the same days walking back from just after the last one
    cron = ZonedCron(CronExpression.parse(text), UTC)
    last = datetime.strptime(days[-1][:10], "%Y-%m-%d").replace(hour=9, tzinfo=UTC)
    got = backward(cron, last + timedelta(seconds=1), len(days))
    assert [f"{t:%Y-%m-%d %a}" for t in got[::-1]] == days


def test_tokens_count_as_restricted_and_are_not_plain_values() -> None:
    expr = CronExpression.parse("0 9 L * MON#2")
    assert expr.day_or
    assert expr.days == frozenset()
    assert expr.weekdays == frozenset()
    assert expr.matches(datetime(2025, 1, 31, 9, 0))
    assert expr.matches(datetime(2025, 1, 13, 9, 0))
    assert not expr.matches(datetime(2025, 1, 6, 9, 0))
    assert not CronExpression.parse("0 9 L * *").day_or


def test_every_month_shape_occurs_in_the_400_year_cycle() -> None:
    # the load-time "never fires" check relies on it (e.g. a 29-day February on a Saturday)
    seen: dict[int, set[tuple[int, int]]] = {m: set() for m in range(1, 13)}
    for year in range(2000, 2400):
        for month in range(1, 13):
            first_weekday = (date(year, month, 1).isoweekday()) % 7
            seen[month].add((calendar.monthrange(year, month)[1], first_weekday))
    for month, shapes in seen.items():
        assert shapes == {(length, w) for length in MONTH_LENGTHS[month] for w in range(7)}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0 0 L/2 * *", "day-of-month: a step cannot follow 'L' in 'L/2'"),
        ("0 0 LW/2 * *", "day-of-month: a step cannot follow 'LW' in 'LW/2'"),
        ("0 0 15W/2 * *", "day-of-month: a step cannot follow '15W' in '15W/2'"),
        ("0 0 L-3/2 * *", "day-of-month: a step cannot follow 'L-3'"),
        ("0 0 * * 5L/2", "day-of-week: a step cannot follow '5L' in '5L/2'"),
        ("0 0 * * MON#2/2", "day-of-week: a step cannot follow 'MON#2'"),
        ("0 0 32W * *", "day-of-month: 32 in '32W' is out of range 1-31"),
        ("0 0 0W * *", "day-of-month: 0 in '0W' is out of range 1-31"),
        ("0 0 L-31 * *", "day-of-month: 31 in 'L-31' is out of range 1-30"),
        ("0 0 L-0 * *", "day-of-month: 0 in 'L-0' is out of range 1-30"),
        ("0 0 * * MON#6", "day-of-week: 6 in 'MON#6' is out of range 1-5"),
        ("0 0 * * 1#0", "day-of-week: 0 in '1#0' is out of range 1-5"),
        ("0 0 * * 8#1", "day-of-week: 8 in '8#1' is out of range 0-7"),
        ("0 0 * * 8L", "day-of-week: 8 in '8L' is out of range 0-7"),
        ("0 0 * * FUN#1", "day-of-week: unknown name 'FUN'"),
        ("0 0 * * 1W", "day-of-week: 'W' (nearest weekday) belongs in day-of-month"),
        ("0 0 * * W", "day-of-week: 'W' (nearest weekday) belongs in day-of-month"),
        ("0 0 * * LW", "day-of-week: 'W' (nearest weekday) belongs in day-of-month"),
        ("0 0 * * L", "day-of-week: 'L' follows a day number 0-7"),
        ("0 0 * * FRIL", "'5L' is the last Friday of the month), not 'FRIL'"),
        ("0 0 1#2 * *", "day-of-month: '#' (n#k, the k-th weekday n) belongs in day-of-week"),
        ("0 0 5L * *", "day-of-month: cannot read '5L'"),
        ("0 0 1-L * *", "day-of-month: cannot read 'L' in '1-L'"),
        ("0 0 * * 1-5L", "day-of-week: cannot read '5L' in '1-5L'"),
        ("0 0 * * 1-5#2", "day-of-week: cannot read '5#2'"),
        ("0 L * * *", "hour: cannot read 'L'"),
        ("0 0 * L *", "month: unknown name 'L'"),
        # never fires: no month of any year has such a day
        ("0 0 L-30 2 *", "no day matches day-of-month 'L-30' and day-of-week '*' in month '2'"),
        ("0 0 L-29 2 *", "never fires"),
        ("0 0 30W 2 *", "never fires"),
        ("0 0 L-30 4,6,9,11 *", "never fires"),
        ("0 0 15W * */7", "never fires"),  # a weekday that is a Sunday
        ("0 0 LW * */7", "never fires"),
    ],
)
def test_invalid_token_combinations_name_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ScheduleError) as info:
        CronExpression.parse(text)
    assert reason in str(info.value)
    assert repr(text) in str(info.value)


def test_long_expressions_are_bounded() -> None:
    many = ",".join(["L", "LW", "15W"] * 100)  # 899 characters, three distinct rules
    expr = CronExpression.parse(f"0 0 {many} * *")
    assert days_of(str(expr), "2025-01-01 00:00", 2) == ["2025-01-15 Wed", "2025-01-31 Fri"]
    too_long = "0 0 " + ",".join(["1"] * 499) + " * *"
    with pytest.raises(ScheduleError, match="the expression is 1005 characters long; at most 1000"):
        CronExpression.parse(too_long)
    with pytest.raises(ScheduleError) as info:
        CronExpression.parse("0 0 " + "1" * 5000 + "W * *")  # no 5000-digit int() either
    assert str(info.value) == (
        f"invalid cron expression {('0 0 ' + '1' * 56)!r}... (5009 characters): "
        "the expression is 5009 characters long; at most 1000"
    )


@pytest.mark.parametrize("text", ["0 0 L-28 2 *", "0 0 * 2 6#5", "0 0 29W 2 *", "0 0 L * 0"])
def test_a_token_that_fits_some_month_is_valid(text: str) -> None:
    CronExpression.parse(text)


# ------------------------------------------- against a naive reading, through the DST policy


NAMES = {n: i for i, n in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}


def _number(text: str) -> int:
    return NAMES[text.upper()] if text.upper() in NAMES else int(text)


def _plain(item: str, value: int, low: int, high: int) -> bool:
    """``*``, ``*/n``, ``a``, ``a-b``: the plain items the tests generate."""
    base, _, step = item.partition("/")
    if base == "*":
        first, last = low, high
    elif "-" in base:
        first, last = (_number(p) for p in base.split("-"))
    else:
        first = last = _number(base)
    return value in range(first, last + 1, int(step or 1))


def _weekdays_in(d: date) -> list[int]:
    last = calendar.monthrange(d.year, d.month)[1]
    return [day for day in range(1, last + 1) if d.replace(day=day).isoweekday() <= 5]


def _dom_item(item: str, d: date) -> bool:
    last = calendar.monthrange(d.year, d.month)[1]
    item = item.upper()
    if item == "L":
        return d.day == last
    if item.startswith("L-"):
        return d.day == last - int(item[2:])
    if item == "LW":
        return d.day == max(_weekdays_in(d))
    if item.endswith("W"):
        n = int(item[:-1])
        return n <= last and d.day == min(_weekdays_in(d), key=lambda day: abs(day - n))
    return _plain(item, d.day, 1, 31)


def _dow_item(item: str, d: date) -> bool:
    weekday = d.isoweekday() % 7
    last = calendar.monthrange(d.year, d.month)[1]
    if item.upper().endswith("L"):
        return weekday == int(item[:-1]) % 7 and d.day + 7 > last
    if "#" in item:
        day, nth = item.split("#")
        return weekday == _number(day) % 7 and (d.day - 1) // 7 + 1 == int(nth)
    return any(_plain(item, value, 0, 7) for value in (weekday, weekday + 7))


class NaiveCron:
    """The five fields read naively, one wall-clock minute at a time (for the reference)."""

    def __init__(self, text: str) -> None:
        self.fields = text.split()
        self.fixed_time = not any(f.startswith("*") for f in self.fields[:2])
        self._days: dict[date, bool] = {}

    def matches(self, wall: datetime) -> bool:
        minute, hour = self.fields[:2]
        return (
            any(_plain(i, wall.minute, 0, 59) for i in minute.split(","))
            and any(_plain(i, wall.hour, 0, 23) for i in hour.split(","))
            and self._day(wall.date())
        )

    def _day(self, d: date) -> bool:
        found = self._days.get(d)
        if found is None:
            dom, _, dow = self.fields[2:]
            by_dom = any(_dom_item(i, d) for i in dom.split(","))
            by_dow = any(_dow_item(i, d) for i in dow.split(","))
            either = not dom.startswith("*") and not dow.startswith("*")
            found = self._days[d] = (by_dom or by_dow) if either else (by_dom and by_dow)
        return found


WINDOWS = [  # a month holding a transition (Asia/Kolkata has none)
    ("America/New_York", "2025-03-09"),
    ("America/New_York", "2025-11-02"),
    ("Europe/London", "2025-03-30"),
    ("Europe/London", "2025-10-26"),
    ("America/Sao_Paulo", "2018-11-04"),
    ("America/Sao_Paulo", "2019-02-17"),
    ("Australia/Lord_Howe", "2025-04-06"),
    ("Australia/Lord_Howe", "2025-10-05"),
    ("Asia/Kolkata", "2024-02-29"),
]
TIMES = ["30 2", "0 1", "*/20 1", "0 *", "45 23", "0 0", "15 1-3", "* 2"]


def _token(kind: str, day: date) -> st.SearchStrategy[str]:
    """A token of ``kind``, often one aimed at ``day`` (the transition) or its neighbours."""
    last = calendar.monthrange(day.year, day.month)[1]
    near = st.integers(max(1, day.day - 2), min(last, day.day + 2))
    weekday = day.isoweekday() % 7
    nth = (day.day - 1) // 7 + 1
    name = st.sampled_from([str(weekday), str(weekday or 7), "SUN", "mon", "5", "sat"])
    if kind == "L":
        return st.sampled_from(["L", "l"])
    if kind == "L-n":
        return near.filter(lambda n: n < last).map(lambda n: f"L-{last - n}") | st.integers(
            1, 30
        ).map(lambda n: f"L-{n}")
    if kind == "nW":
        return near.map(lambda n: f"{n}W") | st.integers(1, 31).map(lambda n: f"{n}w")
    if kind == "LW":
        return st.sampled_from(["LW", "lw"])
    if kind == "nL":
        return st.sampled_from([f"{weekday}L", f"{weekday or 7}L"]) | st.integers(0, 7).map(
            lambda n: f"{n}L"
        )
    return name.map(lambda n: f"{n}#{nth}") | st.tuples(name, st.integers(1, 5)).map(
        lambda p: f"{p[0]}#{p[1]}"
    )


DOM_SHAPES = ["{t} {x} * *", "{t} 1,{x} * *", "{t} {x} * MON", "{t} {x} * */2"]
DOW_SHAPES = ["{t} * * {x}", "{t} * * {x},3", "{t} 13 * {x}", "{t} */2 * {x}"]


@pytest.mark.parametrize("kind", ["L", "L-n", "nW", "LW", "nL", "n#k"])
@settings(max_examples=12, deadline=None, derandomize=True)
@given(window=st.sampled_from(WINDOWS), time=st.sampled_from(TIMES), data=st.data())
def test_each_token_agrees_with_a_naive_reading_across_transitions(
    kind: str, window: tuple[str, str], time: str, data: st.DataObject
) -> None:
    zone, day_text = window
    day = date.fromisoformat(day_text)
    token = data.draw(_token(kind, day), label="token")
    shapes = DOW_SHAPES if kind in ("nL", "n#k") else DOM_SHAPES
    text = data.draw(st.sampled_from(shapes), label="shape").format(t=time, x=token)
    expr = CronExpression.parse(text)  # every shape here fires in some month
    lo = datetime(day.year, day.month, 1, tzinfo=UTC) - timedelta(days=1)
    hi = lo + timedelta(days=calendar.monthrange(day.year, day.month)[1] + 2)
    expected = _reference(NaiveCron(text), ZoneInfo(zone), lo, hi)  # type: ignore[arg-type]
    cron = ZonedCron(expr, ZoneInfo(zone))
    assert [utc(t) for t in between(cron, ts(lo), ts(hi))] == expected, text
    back: list[datetime] = []
    at = ts(hi) + 1
    while (at := cron.prev_before(at)) > ts(lo):
        back.append(utc(at))
    assert back[::-1] == expected, text


@pytest.mark.parametrize("text", ["0 9 L-3 * *", "0 9 15W * *", "0 9 1W,L-30 * *", "0 9 31W * 2#1"])
def test_tokens_cronsim_lacks_agree_with_the_naive_reading_for_years(text: str) -> None:
    naive = NaiveCron(text)
    start = date(2023, 1, 1)
    walls = [
        datetime.combine(start + timedelta(days=i), datetime.min.time()).replace(hour=9)
        for i in range(366 * 6)
    ]
    expected = [wall.replace(tzinfo=UTC) for wall in walls if naive.matches(wall)]
    cron = ZonedCron(CronExpression.parse(text), UTC)
    got = forward(cron, datetime(2022, 12, 31, tzinfo=UTC), len(expected))
    assert got == expected


# ----------------------------------------------------------------- against cronsim, UTC


CRONSIM_EXPRESSIONS = [
    "0 9 L * *",
    "0 9 LW * *",
    "0 9 * * 5L",
    "0 9 * * MON#2",
    "30 18 1,L * *",
    "0 0 L,LW * *",
    "0 12 * * MON#1,FRI#3",
    "0 9 L * 5L",
    "0 9 */2 * 0L",
    "0 9 L * MON-FRI",
    "15 6 * * 7L",
    "15 6 * * 7#1,3",
    "0 0 LW 2,3 *",
    "0 0 * * 1#5",
]


@pytest.mark.parametrize("text", CRONSIM_EXPRESSIONS)
@pytest.mark.parametrize("start", ["2000-01-01 00:00", "2023-06-15 09:00", "2031-12-31 23:59"])
def test_tokens_agree_with_cronsim_for_200_fire_times(text: str, start: str) -> None:
    cronsim = pytest.importorskip("cronsim")
    cron = ZonedCron(CronExpression.parse(text), UTC)
    reference = cronsim.CronSim(text, z(start))
    assert forward(cron, z(start), 200) == [next(reference) for _ in range(200)]
    reference = cronsim.CronSim(text, z(start), reverse=True)
    assert backward(cron, z(start), 200) == [next(reference) for _ in range(200)]


_DOM_ITEMS = st.one_of(st.sampled_from(["L", "LW", "l", "lw"]), st.integers(1, 31).map(str))
_DOW_ITEMS = st.one_of(
    st.integers(0, 7).map(lambda n: f"{n}L"),
    st.tuples(st.sampled_from(["0", "1", "5", "7", "SUN", "Mon", "fri"]), st.integers(1, 5)).map(
        lambda p: f"{p[0]}#{p[1]}"
    ),
    st.integers(0, 6).map(str),
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    dom=st.one_of(st.just("*"), st.lists(_DOM_ITEMS, min_size=1, max_size=3).map(",".join)),
    dow=st.one_of(st.just("*"), st.lists(_DOW_ITEMS, min_size=1, max_size=3).map(",".join)),
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
)
def test_random_token_lists_agree_with_cronsim(
    minute: int, hour: int, dom: str, dow: str, start: datetime
) -> None:
    cronsim = pytest.importorskip("cronsim")
    text = f"{minute} {hour} {dom} * {dow}"
    start = start.replace(second=0, microsecond=0, tzinfo=UTC)
    cron = ZonedCron(CronExpression.parse(text), UTC)
    reference = cronsim.CronSim(text, start)
    assert forward(cron, start, 12) == [next(reference) for _ in range(12)], text
    reference = cronsim.CronSim(text, start, reverse=True)
    assert backward(cron, start, 12) == [next(reference) for _ in range(12)], text


@pytest.mark.parametrize(
    ("cron", "valid"),
    [
        ("0 9 L * *", True),
        ("0 9 15W * MON#2", True),
        ("H H(1-4) * * *", True),
        ("0\u00a00 * * *", False),
        ("\u0665 * * * *", False),
        ("0 0 * * *" + " " * 1000, False),
    ],
)
def test_the_conf_schema_takes_the_cron_text_the_parser_takes(cron: str, valid: bool) -> None:
    """Editors flag a foreign character as they type, as loading the conf would."""
    jsonschema = pytest.importorskip("jsonschema")
    from ddeutil.workflow.engine.conf_schema import yaml_schema

    schema = yaml_schema()
    template = {"nightly": {"type": "on.On", "cron": cron}}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(template))
    assert (not errors) is valid, errors
