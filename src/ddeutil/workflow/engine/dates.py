"""ISO 8601 date and date-time text, read the same way on every Python.

Shared by the ``date``/``datetime`` params and the ``fmt`` template filter.
``datetime.fromisoformat`` accepts different strings on 3.10 and 3.11+; this
parser accepts exactly ``YYYY-MM-DD``, optionally followed by ``T`` or a space,
``HH:MM``, optional ``:SS`` and a fraction of up to six digits (``.`` or ``,``),
then an optional offset (``Z`` in any case for UTC, ``+HH``, ``+HHMM`` or
``+HH:MM``). A value without an offset stays naive.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["parse_iso"]

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time string (surrounding whitespace ignored).

    Raises:
        ValueError: ``text`` is not of that shape, is not a real date or time, or
            has an offset of 24 hours or more; the message quotes ``text``.
    """
    m = _ISO.fullmatch(text.strip())
    if m is None:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or date-time (e.g. 2024-01-01, 2024-01-01T10:30:00+07:00)"
        )
    year, month, day, hour, minute, second, frac, offset = m.groups()
    tz: timezone | None = None
    if offset is not None:
        if offset.upper() == "Z":
            tz = timezone.utc
        else:
            digits = offset[1:].replace(":", "")
            delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            if delta >= timedelta(hours=24):
                raise ValueError(f"{text!r} has an out-of-range UTC offset")
            tz = timezone(-delta if offset[0] == "-" else delta)
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}") from None
