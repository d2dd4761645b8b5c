"""Cron expressions: five-field cron text, parsed, validated and matched.

:class:`CronExpression` parses and validates five-field cron text and matches
*wall-clock* minutes. It knows nothing about time zones: reading an expression in a
zone, and what a schedule does when daylight saving skips or repeats an hour, is
:class:`~ddeutil.workflow.schedules.dst.ZonedCron` (re-exported here).

Syntax (Vixie cron): ``minute hour day-of-month month day-of-week`` with ``*``,
numbers, ranges ``a-b``, lists ``a,b``, steps ``*/n``, ``a-b/n`` and ``a/n`` (from
``a`` to the end of the field), names ``JAN``-``DEC`` and ``SUN``-``SAT`` (any case),
``7`` for Sunday, and the macros ``@yearly`` (``@annually``), ``@monthly``,
``@weekly``, ``@daily`` (``@midnight``) and ``@hourly``. A day-of-week range that ends
in Sunday (``0`` or ``SUN``) ends in ``7``, as in cronie: ``SAT-SUN``, ``5-0``,
``1-0/2``. The text is ASCII: digits are ``0``-``9`` and fields are separated by
spaces and tabs; any other character (a Unicode digit, a no-break space, a newline)
is rejected with its code point and position.

Extensions (Quartz and cronsim spelling; they only change which *days* match):

* day-of-month ``L`` (the last day of the month), ``L-n`` (``n`` days before it,
  ``n`` 1-30), ``nW`` (the weekday, Monday to Friday, nearest day ``n`` within the
  same month: ``1W`` on a Saturday is Monday the 3rd, ``31W`` on a Sunday is Friday
  the 29th; no match in a month without day ``n``) and ``LW`` (the last weekday);
* day-of-week ``nL`` (the last weekday ``n`` of the month, ``n`` a number 0-7:
  ``5L`` is the last Friday) and ``n#k`` (the ``k``-th weekday ``n``, ``k`` 1-5,
  ``n`` a number or a name: ``MON#2``).

They may appear in lists (``1,L``, ``MON#1,FRI#3``) and count as restricting their
field. A step or a range on them (``L/2``, ``1-L``), ``W`` or ``L`` alone in
day-of-week, ``#`` in day-of-month, seconds fields and ``?`` are rejected, as is an
expression that can never fire (``0 0 30 2 *``, ``0 0 L-30 2 *``).

Day matching follows Vixie cron and cronie literally: when *both* day fields are
restricted, a day matches if *either* matches; otherwise both must. A day field is
restricted when its text does not start with ``*`` - so ``1-31`` is restricted while
``*/2`` is not (``0 0 */2 * MON`` runs on odd days that are Mondays).

An expression whose minute and hour fields both do not start with ``*`` has a *fixed
wall-clock time* (:attr:`CronExpression.fixed_time`, cronie's rule, read from the
text as cronie does: ``0 0-23 * * *`` is fixed, ``0 */2 * * *`` is not); the DST
policy of :mod:`.dst` keys on it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import ScheduleError
from .cron_days import MONTH_LENGTHS, DayRule, day_table, parse_day_rule
from .dst import ZonedCron

if TYPE_CHECKING:  # pydantic is imported by the models that use the type, not here
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

__all__ = ["MACROS", "MAX_LENGTH", "CronExpression", "ZonedCron", "foreign_character"]

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

MAX_LENGTH = 1000
"""The longest expression accepted (whitespace collapsed), so parsing stays bounded."""

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

_DAY_FIELDS = ("day-of-month", "day-of-week")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class CronExpression:
    """A validated five-field cron expression, matched against wall-clock minutes.

    Build it with :meth:`parse`. ``str()`` gives the expression as written, with
    whitespace collapsed (macros in lower case). Two expressions are equal when their
    text is. Instances are immutable, hashable and shared (parsing is cached).

    Attributes:
        minutes, hours: The matching values, sorted.
        days, months, weekdays: The matching day-of-month, month and day-of-week
            (0 = Sunday) values; ``L``, ``W`` and ``#`` tokens are not among them
            (see :mod:`.cron_days`).
        day_or: Both day fields are restricted, so a day matches if either does.
        fixed_time: Neither the minute nor the hour field starts with ``*`` (cronie's
            rule), so the fixed wall-clock DST policy applies (see :mod:`.dst`).
    """

    __slots__ = (
        "_doms",
        "_from_weekday",
        "_table",
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
    _table: tuple[tuple[tuple[int, ...], ...], ...] | None  # with L/W/#: see day_table
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
        bad = foreign_character(text)
        if bad:
            raise ScheduleError(f"invalid cron expression {_quoted(text)}: {bad}")
        normalised = " ".join(text.split())
        if normalised.startswith("@"):
            normalised = normalised.lower()
        object.__setattr__(self, "_text", normalised)
        try:
            self._build(normalised)
        except ValueError as exc:
            raise ScheduleError(f"invalid cron expression {_quoted(text)}: {exc}") from None

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
        if len(text) > MAX_LENGTH:
            raise ValueError(f"the expression is {len(text)} characters long; at most {MAX_LENGTH}")
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
        fields = [_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        (minutes, _), (hours, _), (days, dom_rules), (months, _), (weekdays, dow_rules) = fields
        if 7 in weekdays:
            weekdays = (weekdays - {7}) | {0}
        dom_star = parts[2].startswith("*")
        dow_star = parts[4].startswith("*")
        day_or = not dom_star and not dow_star
        table = None
        if dom_rules or dow_rules:
            table = day_table(frozenset(days), dom_rules, frozenset(weekdays), dow_rules, day_or)
            if not any(
                table[length - 28][first]
                for m in months
                for length in MONTH_LENGTHS[m]
                for first in range(7)
            ):
                raise ValueError(
                    f"no day matches day-of-month {parts[2]!r} and day-of-week "
                    f"{parts[4]!r} in month {parts[3]!r}, so the expression never fires"
                )
        elif not day_or and not any(min(days) <= _MAX_DAYS[m] for m in months):
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
            ("fixed_time", not parts[0].startswith("*") and not parts[1].startswith("*")),
            ("_table", table),
            ("_doms", tuple(sorted(days))),
            ("_to_weekday", () if table else tuple(_distance(weekdays, w, 1) for w in range(7))),
            (
                "_from_weekday",
                () if table else tuple(_distance(weekdays, w, -1) for w in range(7)),
            ),
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
            and self._day_ok(wall.year, wall.month, wall.day, wall.toordinal())
        )

    def _day_ok(self, year: int, month: int, day: int, ordinal: int) -> bool:
        if self._table is not None:
            first_weekday = (ordinal - day + 1) % 7
            return day in self._table[_days_in_month(year, month) - 28][first_weekday]
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
                dim = _days_in_month(year, month)
                while (found := self._prev_day(first, day, dim)) != 0:
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
        With ``L``, ``W`` or ``#`` tokens it is a bisection in the month's day table.
        """
        if self._table is not None:
            days = self._table[dim - 28][(first + 1) % 7]
            i = bisect_left(days, day)
            return days[i] if i < len(days) else 0
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

    def _prev_day(self, first: int, day: int, dim: int) -> int:
        """Last matching day of the month at or before ``day`` (0: none)."""
        if self._table is not None:
            days = self._table[dim - 28][(first + 1) % 7]
            i = bisect_right(days, day) - 1
            return days[i] if i >= 0 else 0
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
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            _coerce, serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "description": (
                "five-field cron expression (ASCII; day-of-month L, L-n, nW, LW and "
                "day-of-week nL, n#k accepted) or @macro"
            ),
        }


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


def _quoted(text: str) -> str:
    """``text`` quoted for an error message, cut short when long (the reason follows it)."""
    if len(text) <= 200:
        return repr(text)
    return f"{text[:60]!r}... ({len(text)} characters)"


def foreign_character(text: str) -> str:
    """Why ``text`` is not ASCII cron text (its first foreign character), or ``""``.

    Python reads Unicode digits (``"\\u0665"``) as numbers and Unicode spaces as
    separators; cron does not, so only printable ASCII, space and tab are accepted.
    """
    for position, char in enumerate(text, 1):
        if char == "\t" or " " <= char <= "~":
            continue
        import unicodedata  # only on the error path

        name = unicodedata.name(char, "")
        label = f"U+{ord(char):04X} ({name})" if name else f"U+{ord(char):04X}"
        return (
            f"character {label} at position {position} is not allowed; use ASCII digits and spaces"
        )
    return ""


def _parse_field(text: str, spec: _Field) -> tuple[set[int], tuple[DayRule, ...]]:
    """The values ``text`` selects in one field and its day rules; ValueError with the reason."""
    values: set[int] = set()
    rules: list[DayRule] = []
    for item in text.split(","):
        if not item:
            raise ValueError(f"{spec.name}: empty item in {text!r}")
        if spec.name in _DAY_FIELDS:
            rule = parse_day_rule(item, spec.name, spec.names)
            if rule is not None:
                rules.append(rule)
                continue
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not _is_number(step_text):
                raise ValueError(f"{spec.name}: step {step_text!r} in {item!r} is not a number")
            step = int(step_text)
            if step < 1:
                raise ValueError(f"{spec.name}: step {step} in {item!r} must be at least 1")
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, spec, item), _value(last, spec, item)
            if high == 0 < low and spec.name == "day-of-week":
                high = 7  # cronie: a range ending in Sunday (`SAT-SUN`, `5-0`) ends in 7
            if low > high:
                raise ValueError(f"{spec.name}: range {item!r} goes backwards")
        else:
            low = _value(base, spec, item)
            high = max(spec.step_high, low) if slash else low
        values.update(range(low, high + 1, step))
    return values, tuple(dict.fromkeys(rules))  # a repeated token is one rule


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _value(text: str, spec: _Field, item: str) -> int:
    if _is_number(text):
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
