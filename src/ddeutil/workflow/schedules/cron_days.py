"""Cron day rules that depend on the month: ``L``, ``L-n``, ``nW``, ``LW``, ``nL``, ``n#k``.

A plain day-of-month or day-of-week value matches the same days every month. These
tokens do not: which day is "the last Friday" depends on the month. It depends on
nothing else than the month's *shape* - its length (28-31) and the weekday of its
1st - so an expression's matching days are computed once per shape (28 of them,
:func:`day_table`) and a search looks its month up in that table.

* day-of-month ``L`` is the last day, ``L-n`` the ``n``-th day before it (no match
  when that is before the 1st), ``LW`` the last weekday (Monday-Friday), and ``nW``
  the weekday nearest day ``n`` without leaving the month: a Saturday moves to the
  Friday before, a Sunday to the Monday after, except that ``1W`` on a Saturday is
  Monday the 3rd and ``nW`` on a Sunday that ends the month is the Friday before.
  A month without day ``n`` has no ``nW`` day.
* day-of-week ``nL`` is the last weekday ``n`` of the month and ``n#k`` the
  ``k``-th one (no match in a month with fewer).

Weekdays are numbered as in cron: 0 is Sunday.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["MONTH_LENGTHS", "DayRule", "day_table", "parse_day_rule", "rule_days"]

MONTH_LENGTHS: dict[int, tuple[int, ...]] = {
    m: (28, 29) if m == 2 else ((30,) if m in (4, 6, 9, 11) else (31,)) for m in range(1, 13)
}
"""The lengths each month can have. Over the 400-year Gregorian cycle every month, at
each of its lengths, starts on every weekday (so a shape that fits a month occurs)."""

_DOM_RULE = re.compile(r"(L)(?:-([0-9]+))?|(L)W|([0-9]+)W")
_DOW_RULE = re.compile(r"([0-9]+)L|([0-9]+|[A-Z]+)#([0-9]+)")


class DayRule(NamedTuple):
    """One month-dependent day token.

    Attributes:
        kind: ``"L"`` (``L``/``L-n``: ``value`` days before the last day), ``"LW"``,
            ``"W"`` (nearest weekday to day ``value``), ``"last"`` (last weekday
            ``value``) or ``"nth"`` (the ``nth`` weekday ``value``).
        value: The day, offset or weekday (0-6) the kind reads.
        nth: Which occurrence, for ``"nth"``.
    """

    kind: str
    value: int
    nth: int = 0


def parse_day_rule(item: str, field: str, names: dict[str, int]) -> DayRule | None:
    """The rule ``item`` (one list item of a day field) spells, or ``None`` for a plain item.

    Args:
        item: The list item, as written.
        field: ``"day-of-month"`` or ``"day-of-week"``.
        names: The field's names (upper case) and their numbers.

    Raises:
        ValueError: the item uses ``L``, ``W`` or ``#`` in a way this dialect does not
            accept; the message names the field, the item and the reason.
    """
    up = item.upper()
    base, slash, _ = up.partition("/")
    if field == "day-of-month":
        if "#" in up:
            raise ValueError(
                f"{field}: '#' (n#k, the k-th weekday n) belongs in day-of-week, not {item!r}"
            )
        found = _DOM_RULE.fullmatch(base)
        if found is None:
            return None
        if slash:
            raise ValueError(f"{field}: a step cannot follow {base!r} in {item!r}")
        last, before, last_weekday, nearest = found.groups()
        if last_weekday:
            return DayRule("LW", 0)
        if last:
            offset = 0 if before is None else int(before)
            if before is not None and not 1 <= offset <= 30:
                raise ValueError(f"{field}: {offset} in {item!r} is out of range 1-30 (L-n)")
            return DayRule("L", offset)
        day = int(nearest)
        if not 1 <= day <= 31:
            raise ValueError(f"{field}: {day} in {item!r} is out of range 1-31 (nW)")
        return DayRule("W", day)
    if re.fullmatch(r"[0-9]*L?W", base):
        raise ValueError(f"{field}: 'W' (nearest weekday) belongs in day-of-month, not {item!r}")
    if base in ("L", "LW") or (base.endswith("L") and base[:-1] in names):
        raise ValueError(
            f"{field}: 'L' follows a day number 0-7 in day-of-week ('5L' is the last "
            f"Friday of the month), not {item!r}"
        )
    found = _DOW_RULE.fullmatch(base)
    if found is None:
        return None
    if slash:
        raise ValueError(f"{field}: a step cannot follow {base!r} in {item!r}")
    last_of, day_text, nth_text = found.groups()
    if last_of is not None:
        return DayRule("last", _weekday(last_of, field, item, names))
    nth = int(nth_text)
    if not 1 <= nth <= 5:
        raise ValueError(f"{field}: {nth} in {item!r} is out of range 1-5 (n#k: the k-th week)")
    return DayRule("nth", _weekday(day_text, field, item, names), nth)


def _weekday(text: str, field: str, item: str, names: dict[str, int]) -> int:
    if text in names:
        return names[text]
    if not text.isdigit():
        raise ValueError(f"{field}: unknown name {text!r} in {item!r}")
    value = int(text)
    if not 0 <= value <= 7:
        raise ValueError(f"{field}: {value} in {item!r} is out of range 0-7")
    return value % 7


def rule_days(rule: DayRule, length: int, first: int) -> tuple[int, ...]:
    """The days ``rule`` selects in a month of ``length`` days whose 1st is weekday ``first``."""
    kind, value = rule.kind, rule.value
    if kind == "L":
        day = length - value
        return (day,) if day >= 1 else ()
    if kind in ("LW", "W"):
        day = length if kind == "LW" else value
        if day > length:
            return ()
        weekday = (first + day - 1) % 7
        if weekday == 6:  # Saturday: the Friday before, or Monday the 3rd
            day = day - 1 if day > 1 else day + 2
        elif weekday == 0:  # Sunday: the Monday after, or the Friday before at the end
            day = day + 1 if day < length else day - 2
        return (day,)
    if kind == "last":
        last_weekday = (first + length - 1) % 7
        return (length - (last_weekday - value) % 7,)
    day = 1 + (value - first) % 7 + 7 * (rule.nth - 1)
    return (day,) if day <= length else ()


def day_table(
    doms: frozenset[int],
    dom_rules: tuple[DayRule, ...],
    weekdays: frozenset[int],
    dow_rules: tuple[DayRule, ...],
    day_or: bool,
) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """The matching days of every month shape: ``table[length - 28][first]``, sorted.

    Args:
        doms, dom_rules: The day-of-month values and rules.
        weekdays, dow_rules: The day-of-week values (0-6) and rules.
        day_or: A day matches if either field does (else both must).
    """
    table = []
    for length in range(28, 32):
        row = []
        for first in range(7):
            by_dom = {d for d in doms if d <= length}
            for rule in dom_rules:
                by_dom.update(rule_days(rule, length, first))
            by_dow = {d for d in range(1, length + 1) if (first + d - 1) % 7 in weekdays}
            for rule in dow_rules:
                by_dow.update(rule_days(rule, length, first))
            row.append(tuple(sorted(by_dom | by_dow if day_or else by_dom & by_dow)))
        table.append(tuple(row))
    return tuple(table)
