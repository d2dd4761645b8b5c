"""Hashed cron fields (``H``): spread many schedules over a field, stable per seed.

``H`` is Jenkins' "some value, always the same one for this pipeline". A thousand
pipelines on ``H H * * *`` start at a thousand different minutes of the day
instead of all at midnight, and each one starts at the same minute every day.

:func:`resolve_hashes` rewrites the ``H`` items of a five-field expression into
plain numbers *before* it is parsed, so everything downstream (the parser, the
daylight-saving policy, release keys, the scheduler process) sees an ordinary cron
expression. Forms, in any of the five fields and as any item of a list:

=================  =============================================================
``H``              one value in the field's range (day-of-month: 1-28, so that it
                   exists in every month; day-of-week: 0-6)
``H(a-b)``         one value in ``a``-``b`` (numbers only, inside the field)
``H/n``            every ``n`` from an offset below ``n``: minute ``H/15`` becomes
                   e.g. ``7-59/15``
``H(a-b)/n``       the same inside ``a``-``b``: ``H(0-29)/10`` becomes e.g. ``4-29/10``
=================  =============================================================

Names (``H(JAN-MAR)``), ``H`` inside a range or step (``1-H``, ``*/H``), ``HH``,
macros and lower-case ``h`` are not hashed forms; the first three are errors.
The value comes from SHA-256 of the seed, the field and the item's position, so it
is the same in every process, Python version and machine, and the fields of one
expression are independent. An expression without ``H`` is returned unchanged.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from ..errors import ScheduleError
from .cron import foreign_character

__all__ = ["cron_label", "has_hash", "resolve_hashes"]


class _Range(NamedTuple):
    name: str
    low: int
    high: int
    plain_high: int  # where a bare `H` stops (day-of-month: 28)


_FIELDS = (
    _Range("minute", 0, 59, 59),
    _Range("hour", 0, 23, 23),
    _Range("day-of-month", 1, 31, 28),
    _Range("month", 1, 12, 12),
    _Range("day-of-week", 0, 6, 6),
)
_FORM = re.compile(r"H(?:\((\d{1,4})-(\d{1,4})\))?(?:/(\d{1,4}))?")
_HINT = "use H, H(a-b), H/n or H(a-b)/n"
_NAMED = frozenset({3, 4})  # month and day-of-week also take names (THU holds an H)


def has_hash(text: str) -> bool:
    """Whether ``text`` has an ``H`` item (a cheap test before :func:`resolve_hashes`)."""
    return "H" in text and not text.lstrip().startswith("@") and _items_with_h(text)


def _items_with_h(text: str) -> bool:
    return any(item.startswith("H") for part in text.split() for item in part.split(","))


def resolve_hashes(text: str, seed: str) -> str:
    """``text`` with every ``H`` item replaced by the plain value(s) ``seed`` picks.

    Args:
        text: A cron expression, possibly with ``H`` items.
        seed: What the values are stable for (a pipeline's name).

    Returns:
        ``text`` itself when it has no ``H`` item; otherwise its five fields, with the
        ``H`` items resolved, joined by single spaces.

    Raises:
        ScheduleError: a malformed ``H`` item, or ``H`` with other than five fields;
            the message names the expression, the field, the item and the reason.
    """
    if not isinstance(text, str) or not has_hash(text):
        return text
    bad = foreign_character(text)  # before splitting: str.split() takes Unicode spaces
    if bad:
        raise _error(text, bad)
    parts = text.split()
    if len(parts) != 5:
        raise _error(
            text,
            "expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)}; write H(a-b) without spaces",
        )
    fields = []
    for index, (part, spec) in enumerate(zip(parts, _FIELDS, strict=True)):
        items = part.split(",")
        resolved = [
            _resolve_item(text, item, spec, _digest(seed, index, position))
            if item.startswith("H")
            else _check_plain(text, item, spec, index)
            for position, item in enumerate(items)
        ]
        fields.append(",".join(resolved))
    return " ".join(fields)


def cron_label(cron: str, written: str | None) -> str:
    """A schedule's expression for people: ``"H H(1-4) * * * (= 37 2 * * *)"``.

    Args:
        cron: The resolved expression.
        written: The text as written when it had ``H`` items, else None.
    """
    return cron if written is None else f"{written} (= {cron})"


def _resolve_item(text: str, item: str, spec: _Range, number: int) -> str:
    match = _FORM.fullmatch(item)
    if match is None:
        raise _error(text, f"{spec.name}: cannot read {item!r}; {_HINT}")
    first, last, step_text = match.groups()
    low, high = spec.low, spec.high
    if first is not None and last is not None:
        low, high = int(first), int(last)
        if not spec.low <= low <= spec.high or not spec.low <= high <= spec.high:
            raise _error(
                text,
                f"{spec.name}: {item!r} is out of range {spec.low}-{spec.high}",
            )
        if low > high:
            raise _error(text, f"{spec.name}: range in {item!r} goes backwards")
    if step_text is None:
        if first is None:
            high = spec.plain_high
        return str(low + number % (high - low + 1))
    step = int(step_text)
    width = high - low + 1
    if not 1 <= step <= width:
        raise _error(
            text, f"{spec.name}: step {step} in {item!r} must be 1-{width} (the range's size)"
        )
    start = low + number % step
    return f"{start}-{high}/{step}" if start + step <= high else str(start)


def _check_plain(text: str, item: str, spec: _Range, index: int) -> str:
    """A non-``H`` item, kept as written; ``H`` later in it is named as the problem."""
    if "H" in item and index not in _NAMED:
        raise _error(text, f"{spec.name}: H must start an item, got {item!r}; {_HINT}")
    return item


def _digest(seed: str, field: int, position: int) -> int:
    data = f"{seed}\x00{field}\x00{position}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def _error(text: str, reason: str) -> ScheduleError:
    return ScheduleError(f"invalid cron expression {text!r}: {reason}")
