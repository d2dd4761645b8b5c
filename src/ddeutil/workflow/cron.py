"""Cron expressions and the daylight-saving policy of schedules.

Two layers live here:

* :class:`CronExpression` parses and validates five-field cron text and matches
  *wall-clock* minutes. It knows nothing about time zones.
* :class:`ZonedCron` reads an expression in one zone and turns matching wall-clock
  minutes into UTC instants. All arithmetic is done on integer UTC seconds; the zone
  is only used to find its constant-offset segments (between two transitions), inside
  which wall time and UTC differ by a fixed offset.

Syntax (Vixie cron): ``minute hour day-of-month month day-of-week`` with ``*``,
numbers, ranges ``a-b``, lists ``a,b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (from
``a`` to the end of the field), names ``JAN``-``DEC`` and ``SUN``-``SAT`` (any case),
``7`` for Sunday, and the macros ``@yearly`` (``@annually``), ``@monthly``,
``@weekly``, ``@daily`` (``@midnight``) and ``@hourly``. Seconds fields, ``?``,
``L``, ``W``, ``#`` and backwards ranges are rejected, as is an expression that can
never fire (``0 0 30 2 *``).

Day matching follows Vixie cron and cronie literally: when *both* day fields are
restricted, a day matches if *either* matches; otherwise both must. A day field is
restricted when its text does not start with ``*`` - so ``1-31`` is restricted while
``*/2`` is not (``0 0 */2 * MON`` runs on odd days that are Mondays).

Daylight-saving policy (cronie's, what VM operators expect):

* **Fixed wall-clock time** - the hour field does not cover all 24 hours (``30 1 * * *``,
  ``0 9 * * 1-5``, ``0 */2 * * *``, ``*/15 2 * * *``):

  - a matching time inside a spring-forward gap runs once, at the first valid instant
    after the gap (the transition itself): ``30 2 * * *`` in America/New_York on
    2025-03-09 runs at 03:00 EDT (07:00Z); several matching times in one gap still run
    once;
  - a matching time that occurs twice at fall-back runs once, at its first occurrence:
    ``30 1 * * *`` on 2025-11-02 runs at 01:30 EDT (05:30Z) only.

* **Elapsed time** - the hour field covers all 24 hours (``*``, ``*/1``, ``0-23``): the
  schedule follows the clock as it is lived. Wall times that do not exist are simply
  not reached, and both copies of a repeated hour run: ``0 * * * *`` on 2025-11-02 in
  New York runs at 05:00Z, 06:00Z and 07:00Z.

Either way successive fire times are strictly increasing in UTC and never repeat.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import cache, lru_cache
from typing import Any, NamedTuple

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from .errors import ScheduleError

__all__ = ["MACROS", "CronExpression", "ZonedCron"]

MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""The supported macros and the five fields each stands for."""

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_DAYS = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}
_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # Feb 29 exists


class _Field(NamedTuple):
    name: str
    low: int
    high: int
    names: dict[str, int]
    step_high: int  # where `a/n` stops: day-of-week `1/2` is MON,WED,FRI (not SUN again)


_FIELDS = (
    _Field("minute", 0, 59, {}, 59),
    _Field("hour", 0, 23, {}, 23),
    _Field("day-of-month", 1, 31, {}, 31),
    _Field("month", 1, 12, _MONTHS, 12),
    _Field("day-of-week", 0, 7, _DAYS, 6),
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY = 86_400
_MIN_ORDINAL = date.min.toordinal() + 2  # keep a margin for zone offsets
_MAX_ORDINAL = date.max.toordinal() - 2


class CronExpression:
    """A validated five-field cron expression, matched against wall-clock minutes.

    Build it with :meth:`parse`. ``str()`` gives the expression as written, with
    whitespace collapsed (macros in lower case). Two expressions are equal when their
    text is. Instances are immutable, hashable and shared (parsing is cached).

    Attributes:
        minutes, hours: The matching values, sorted.
        days, months, weekdays: The matching day-of-month, month and day-of-week
            (0 = Sunday) values.
        day_or: Both day fields are restricted, so a day matches if either does.
        fixed_time: The hour field does not cover all 24 hours, so the fixed
            wall-clock DST policy applies (see the module docstring).
    """

    __slots__ = (
        "_doms",
        "_from_weekday",
        "_text",
        "_to_weekday",
        "day_or",
        "days",
        "fixed_time",
        "hours",
        "minutes",
        "months",
        "weekdays",
    )

    _text: str
    _doms: tuple[int, ...]  # sorted day-of-month values
    _to_weekday: tuple[int, ...]  # [w]: days from weekday w to the next matching one
    _from_weekday: tuple[int, ...]  # [w]: days back from weekday w to a matching one
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_or: bool
    fixed_time: bool

    def __init__(self, text: str) -> None:
        """Parse ``text``; prefer :meth:`parse`, which caches.

        Raises:
            ScheduleError: the expression is invalid; the message names it and the reason.
        """
        if not isinstance(text, str):
            raise ScheduleError(f"a cron expression must be a string, got {type(text).__name__}")
        normalised = " ".join(text.split())
        if normalised.startswith("@"):
            normalised = normalised.lower()
        object.__setattr__(self, "_text", normalised)
        try:
            self._build(normalised)
        except ValueError as exc:
            raise ScheduleError(f"invalid cron expression {text!r}: {exc}") from None

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Return the (cached) expression for ``text``.

        Raises:
            ScheduleError: the expression is invalid; the message names it and the reason.
        """
        if not isinstance(text, str):
            return cls(text)
        return _parse_cached(text)

    def _build(self, text: str) -> None:
        if not text:
            raise ValueError("the expression is empty")
        if text.startswith("@"):
            if text not in MACROS:
                known = ", ".join(MACROS)
                raise ValueError(f"unknown macro {text!r}; use one of {known}")
            text = MACROS[text]
        parts = text.split(" ")
        if len(parts) != 5:
            hint = " (seconds and years are not supported)" if len(parts) in (6, 7) else ""
            raise ValueError(
                "expected 5 fields (minute hour day-of-month month day-of-week), "
                f"got {len(parts)}{hint}"
            )
        sets = [_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        minutes, hours, days, months, weekdays = sets
        if 7 in weekdays:
            weekdays = (weekdays - {7}) | {0}
        dom_star = parts[2].startswith("*")
        dow_star = parts[4].startswith("*")
        day_or = not dom_star and not dow_star
        if not day_or and not any(min(days) <= _MAX_DAYS[m] for m in months):
            raise ValueError(
                f"day-of-month {parts[2]!r} never occurs in month {parts[3]!r}, "
                "so the expression never fires"
            )
        for name, value in (
            ("minutes", tuple(sorted(minutes))),
            ("hours", tuple(sorted(hours))),
            ("days", frozenset(days)),
            ("months", frozenset(months)),
            ("weekdays", frozenset(weekdays)),
            ("day_or", day_or),
            ("fixed_time", len(hours) < 24),
            ("_doms", tuple(sorted(days))),
            ("_to_weekday", tuple(_distance(weekdays, w, 1) for w in range(7))),
            ("_from_weekday", tuple(_distance(weekdays, w, -1) for w in range(7))),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"CronExpression({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CronExpression):
            return self._text == other._text
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (CronExpression.parse, (self._text,))

    # ------------------------------------------------------------------ matching

    def matches(self, wall: datetime) -> bool:
        """Whether the wall-clock minute of ``wall`` matches (its tzinfo is ignored)."""
        return (
            wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.month in self.months
            and self._day_ok(wall.day, wall.toordinal())
        )

    def _day_ok(self, day: int, ordinal: int) -> bool:
        dom = day in self.days
        dow = ordinal % 7 in self.weekdays  # ordinal 1 (0001-01-01) is a Monday
        return (dom or dow) if self.day_or else (dom and dow)

    def next_wall(self, lo: int) -> int:
        """The first matching wall-clock minute at or after ``lo``.

        Wall times are integer seconds since 1970-01-01 00:00 on the wall clock.

        Raises:
            ScheduleError: no match before the end of year 9999.
        """
        q, r = divmod(lo, 60)
        if r:
            q += 1
        days, mod = divmod(q, 1440)
        h, m = divmod(mod, 60)
        d = self._date(days, "before year 10000")
        year, month, day = d.year, d.month, d.day
        first = d.toordinal() - day  # ordinal of the day before the 1st
        while True:
            if month in self.months:
                dim = _days_in_month(year, month)
                while (found := self._next_day(first, day, dim)) != 0:
                    if found != day:
                        day, h, m = found, 0, 0
                    minute = self._next_minute(h, m)
                    if minute is not None:
                        return ((first + day - _EPOCH_ORDINAL) * 1440 + minute) * 60
                    day, h, m = day + 1, 0, 0
            month, day, h, m = month + 1, 1, 0, 0
            if month == 13:
                year, month = year + 1, 1
                if year > 9999:
                    raise self._exhausted("before year 10000")
            first = date(year, month, 1).toordinal() - 1

    def prev_wall(self, hi: int) -> int:
        """The last matching wall-clock minute at or before ``hi`` (see :meth:`next_wall`).

        Raises:
            ScheduleError: no match after the start of year 1.
        """
        days, mod = divmod(hi // 60, 1440)
        h, m = divmod(mod, 60)
        d = self._date(days, "after year 1")
        year, month, day = d.year, d.month, d.day
        first = d.toordinal() - day
        while True:
            if month in self.months:
                while (found := self._prev_day(first, day)) != 0:
                    if found != day:
                        day, h, m = found, 23, 59
                    minute = self._prev_minute(h, m)
                    if minute is not None:
                        return ((first + day - _EPOCH_ORDINAL) * 1440 + minute) * 60
                    day, h, m = day - 1, 23, 59
            month, h, m = month - 1, 23, 59
            if month == 0:
                year, month = year - 1, 12
                if year < 1:
                    raise self._exhausted("after year 1")
            day = _days_in_month(year, month)
            first = date(year, month, 1).toordinal() - 1

    def _date(self, days: int, bound: str) -> date:
        ordinal = days + _EPOCH_ORDINAL
        if not 1 <= ordinal <= date.max.toordinal():
            raise self._exhausted(bound)
        return date.fromordinal(ordinal)

    def _exhausted(self, bound: str) -> ScheduleError:
        return ScheduleError(f"cron expression {self._text!r} has no fire time {bound}")

    def _next_day(self, first: int, day: int, dim: int) -> int:
        """First matching day of the month at or after ``day`` (0: none).

        ``first + day`` is the day's ordinal. Both day fields are searched directly
        (bisection in day-of-month, a weekday table), so a sparse day costs no scan.
        """
        doms, skip = self._doms, self._to_weekday
        while day <= dim:
            i = bisect_left(doms, day)
            by_dom = doms[i] if i < len(doms) else 99
            by_dow = day + skip[(first + day) % 7]
            if self.day_or:
                day = min(by_dom, by_dow)
                return day if day <= dim else 0
            if by_dom == by_dow:
                return by_dom if by_dom <= dim else 0
            day = max(by_dom, by_dow)
        return 0

    def _prev_day(self, first: int, day: int) -> int:
        """Last matching day of the month at or before ``day`` (0: none)."""
        doms, skip = self._doms, self._from_weekday
        while day >= 1:
            i = bisect_right(doms, day) - 1
            by_dom = doms[i] if i >= 0 else 0
            by_dow = day - skip[(first + day) % 7]
            if self.day_or:
                return max(by_dom, by_dow, 0)
            if by_dom == by_dow:
                return max(by_dom, 0)
            day = min(by_dom, by_dow)
        return 0

    def _next_minute(self, h: int, m: int) -> int | None:
        """First matching minute of the day at or after ``h:m``, as minutes since 00:00."""
        hours, minutes = self.hours, self.minutes
        i = bisect_left(hours, h)
        if i == len(hours):
            return None
        if hours[i] == h:
            j = bisect_left(minutes, m)
            if j < len(minutes):
                return h * 60 + minutes[j]
            i += 1
            if i == len(hours):
                return None
        return hours[i] * 60 + minutes[0]

    def _prev_minute(self, h: int, m: int) -> int | None:
        """Last matching minute of the day at or before ``h:m``, as minutes since 00:00."""
        hours, minutes = self.hours, self.minutes
        i = bisect_right(hours, h) - 1
        if i < 0:
            return None
        if hours[i] == h:
            j = bisect_right(minutes, m) - 1
            if j >= 0:
                return h * 60 + minutes[j]
            i -= 1
            if i < 0:
                return None
        return hours[i] * 60 + minutes[-1]

    # ------------------------------------------------------------------ pydantic

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _coerce, serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "description": "five-field cron expression or @macro"}


def _distance(weekdays: set[int], start: int, direction: int) -> int:
    """Days from weekday ``start`` to the nearest one in ``weekdays``, going ``direction``."""
    return next(k for k in range(7) if (start + direction * k) % 7 in weekdays)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return _MAX_DAYS[month]


def _coerce(value: Any) -> CronExpression:
    if isinstance(value, CronExpression):
        return value
    return CronExpression.parse(value)


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> CronExpression:
    return CronExpression(text)


def _parse_field(text: str, spec: _Field) -> set[int]:
    """The set of values ``text`` selects in one field; ValueError with the reason."""
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"{spec.name}: empty item in {text!r}")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit():
                raise ValueError(f"{spec.name}: step {step_text!r} in {item!r} is not a number")
            step = int(step_text)
            if step < 1:
                raise ValueError(f"{spec.name}: step {step} in {item!r} must be at least 1")
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, spec, item), _value(last, spec, item)
            if low > high:
                raise ValueError(f"{spec.name}: range {item!r} goes backwards")
        else:
            low = _value(base, spec, item)
            high = max(spec.step_high, low) if slash else low
        values.update(range(low, high + 1, step))
    return values


def _value(text: str, spec: _Field, item: str) -> int:
    if text.isdigit():
        value = int(text)
    elif text.upper() in spec.names:
        return spec.names[text.upper()]
    elif text.isalpha() and spec.names:
        raise ValueError(f"{spec.name}: unknown name {text!r} in {item!r}")
    else:
        raise ValueError(f"{spec.name}: cannot read {text!r} in {item!r}")
    if not spec.low <= value <= spec.high:
        raise ValueError(f"{spec.name}: {value} is out of range {spec.low}-{spec.high}")
    return value


# ----------------------------------------------------------------------------- zones


class _Year(NamedTuple):
    starts: tuple[int, ...]  # segment starts; starts[0] is the year's first second (UTC)
    offsets: tuple[int, ...]  # UTC offset (seconds) from each start
    end: int  # first second of the next year
    before: int  # offset just before the year
    after: int  # offset at ``end``


class _Timeline:
    """The constant-offset segments of one zone, built per UTC year and cached.

    A year is probed once a day and every offset change is pinned to the second by
    bisection. Offset changes in tzdata are at least four days apart (checked for every
    zone since 1900), so daily probes see each of them. Year boundaries split segments
    too; they behave as transitions that change nothing.
    """

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._years: dict[int, _Year] = {}
        self._last: _Year | None = None
        self._lock = threading.Lock()

    def offset(self, ts: int) -> int:
        """UTC offset in seconds at instant ``ts`` (UTC seconds)."""
        ts = min(
            max(ts, (_MIN_ORDINAL - _EPOCH_ORDINAL) * _DAY), (_MAX_ORDINAL - _EPOCH_ORDINAL) * _DAY
        )
        off = (_EPOCH + timedelta(seconds=ts)).astimezone(self.zone).utcoffset()
        return 0 if off is None else off.days * _DAY + off.seconds

    def segment(self, ts: int) -> tuple[int, int, int, int, int]:
        """``(start, end, offset, offset_before, offset_after)`` of the segment holding ``ts``."""
        year = self._last
        if year is None or not year.starts[0] <= ts < year.end:
            ordinal = ts // _DAY + _EPOCH_ORDINAL
            if not _MIN_ORDINAL <= ordinal <= _MAX_ORDINAL:
                raise ScheduleError("instant outside the supported years 1-9999")
            year = self._year(date.fromordinal(ordinal).year)
            self._last = year
        starts, offsets = year.starts, year.offsets
        i = bisect_right(starts, ts) - 1
        before = offsets[i - 1] if i else year.before
        if i + 1 < len(starts):
            return starts[i], starts[i + 1], offsets[i], before, offsets[i + 1]
        return starts[i], year.end, offsets[i], before, year.after

    def _year(self, y: int) -> _Year:
        found = self._years.get(y)
        if found is None:
            with self._lock:
                found = self._years.get(y)
                if found is None:
                    found = self._years[y] = self._probe(y)
        return found

    def _probe(self, y: int) -> _Year:
        start = (date(y, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY
        end = start + (366 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 365) * _DAY
        offset = self.offset
        starts, offsets = [start], [offset(start)]
        lo, lo_off = start, offsets[0]
        while lo < end:
            hi = min(lo + _DAY, end)
            hi_off = offset(hi)
            if hi_off != lo_off:
                a, b = lo, hi  # offset(a) == lo_off != offset(b)
                while b - a > 1:
                    mid = (a + b) // 2
                    if offset(mid) == lo_off:
                        a = mid
                    else:
                        b = mid
                if b < end:
                    starts.append(b)
                    offsets.append(hi_off)
            lo, lo_off = hi, hi_off
        return _Year(tuple(starts), tuple(offsets), end, offset(start - 1), offset(end))


@cache
def _timeline(zone: tzinfo) -> _Timeline:
    return _Timeline(zone)


class ZonedCron:
    """A cron expression read in one zone: fire instants as integer UTC seconds.

    Implements the DST policy of the module docstring. Instances are cheap and safe to
    share between threads; each remembers its last answer, so repeated "what fires
    after T" questions for a moving T (a scheduler tick) cost a comparison until the
    next fire time is passed.

    Args:
        expr: The expression.
        zone: The zone whose wall clock the fields are matched against.
    """

    __slots__ = ("_memo", "_timeline", "expr", "zone")

    def __init__(self, expr: CronExpression, zone: tzinfo) -> None:
        self.expr = expr
        self.zone = zone
        self._timeline = _timeline(zone)
        self._memo = (1, 0)  # (lo, nxt): the first fire after any t in [lo, nxt) is nxt

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ZonedCron):
            return self.expr == other.expr and self.zone == other.zone
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.expr, self.zone))

    def __reduce__(self) -> tuple[Any, ...]:
        return (ZonedCron, (self.expr, self.zone))

    def __repr__(self) -> str:
        return f"ZonedCron({str(self.expr)!r}, {self.zone!s})"

    def next_after(self, ts: int) -> int:
        """The first fire instant strictly after ``ts`` (UTC seconds)."""
        lo, nxt = self._memo
        if lo <= ts < nxt:
            return nxt
        nxt = self._next_after(ts)
        self._memo = (ts, nxt)
        return nxt

    def between(self, after: int, until: int) -> list[int]:
        """Every fire instant in ``(after, until]``, increasing."""
        found = []
        at = self.next_after(after)
        while at <= until:
            found.append(at)
            at = self.next_after(at)
        return found

    def _next_after(self, ts: int) -> int:
        expr, fixed = self.expr, self.expr.fixed_time
        segment = self._timeline.segment
        a, b, o, op, on = segment(ts)
        lo = ts + o + 1
        cached_lo, cached_w = 1, 0  # next_wall(x) == cached_w for x in [cached_lo, cached_w]
        while True:
            if fixed and op > o and lo < a + op:
                lo = a + op  # fall-back: these wall times already ran in the first copy
            if cached_lo <= lo <= cached_w:
                w = cached_w
            else:
                w = cached_w = expr.next_wall(lo)
                cached_lo = lo
            if w < b + o:
                return w - o
            if fixed and on > o and w < b + on:
                return b  # a matching time in the spring-forward gap runs at its end
            a, b, o, op, on = segment(b)
            lo = a + o

    def prev_before(self, ts: int) -> int:
        """The last fire instant strictly before ``ts`` (UTC seconds)."""
        expr, fixed = self.expr, self.expr.fixed_time
        segment = self._timeline.segment
        x = ts - 1
        a, _, o, op, _ = segment(x)
        hi = x + o
        cached_hi, cached_w = 0, 1  # prev_wall(x) == cached_w for x in [cached_w, cached_hi]
        while True:
            floor = a + op if fixed and op > o else a + o
            if cached_w <= hi <= cached_hi:
                w = cached_w
            else:
                w = cached_w = expr.prev_wall(hi)
                cached_hi = hi
            if w >= floor:
                return w - o
            if fixed and o > op and w >= a + op:
                return a  # the gap before this segment held a matching time
            x = a - 1
            a, _, o, op, _ = segment(x)
            hi = x + o
