"""Encoding shared by the stores: JSON values, error lists, text and UTC timestamps.

Whatever is written can be read back and served: a lone surrogate in any string
(which UTF-8 cannot encode) is stored as its ``\\uXXXX`` escape text (see
:mod:`~ddeutil.workflow.unicode_text`), and rows written before that rule are
repaired the same way when read.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from ..clock import ensure_utc
from ..result import ErrorRecord
from ..unicode_text import escape_data, escape_lone_surrogates, find_lone_surrogate

__all__ = [
    "dump_errors",
    "dumps_json",
    "load_errors",
    "loads_json",
    "text_in",
    "ts_text",
    "utc",
]


def utc(value: datetime) -> datetime:
    """Return ``value`` as aware UTC (a naive value is taken as UTC)."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return ensure_utc(value)


def ts_text(value: datetime) -> str:
    """Fixed-width ISO 8601 UTC text that sorts like the instants it names.

    ``2024-01-01T00:00:00.000000+00:00``: always microseconds and ``+00:00``, so
    string comparison (SQLite ``ORDER BY``/``<``) equals time comparison.
    """
    return utc(value).isoformat(timespec="microseconds")


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)


def _sanitise(value: Any, path: frozenset[int] = frozenset()) -> Any:
    """Turn ``value`` into plain JSON types (the slow path of :func:`dumps_json`).

    A container that contains itself is written as ``"<circular>"`` there.
    """
    if isinstance(value, str) or value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping | list | tuple):
        if id(value) in path:
            return "<circular>"
        inner = path | {id(value)}
        if isinstance(value, Mapping):
            return {
                (key if isinstance(key, str) else str(_sanitise(key, inner))): _sanitise(
                    item, inner
                )
                for key, item in value.items()
            }
        return [_sanitise(item, inner) for item in value]
    return _sanitise(_default(value), path)


def dumps_json(value: Any) -> str:
    """Encode ``value`` as strict JSON text, leniently.

    Datetimes, dates and times become ISO 8601 text, ``Decimal`` its exact text,
    sets sorted lists, enums their value, non-finite floats ``"nan"``/``"inf"``
    text, non-string keys their text and anything else ``str(value)``. The output
    is ASCII-only and valid for PostgreSQL ``json`` columns.
    """
    try:
        text = json.dumps(value, default=_default, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError):
        text = json.dumps(_sanitise(value), allow_nan=False, separators=(",", ":"))
    if "\\ud" in text:  # a character beyond the BMP, or a lone surrogate
        decoded = json.loads(text)
        if find_lone_surrogate(decoded) is not None:
            text = json.dumps(escape_data(decoded), allow_nan=False, separators=(",", ":"))
    return text


def loads_json(text: str | None) -> Any:
    """Decode JSON text (``None`` stays ``None``); lone surrogates come back escaped."""
    if text is None:
        return None
    value = json.loads(text)
    if "\\ud" in text and find_lone_surrogate(value) is not None:  # a row from before
        value = escape_data(value)
    return value


def text_in(value: str | None) -> str | None:
    """A text column's value as stored: lone surrogates escaped (``None`` stays)."""
    return None if value is None else escape_lone_surrogates(value)


def dump_errors(errors: Sequence[ErrorRecord]) -> str:
    """Encode error records as a JSON list of their dicts."""
    return dumps_json([e.to_dict() for e in errors])


def load_errors(value: Any) -> tuple[ErrorRecord, ...]:
    """Decode error records from JSON text or an already-decoded list."""
    items = json.loads(value) if isinstance(value, str) else value
    if not items:
        return ()
    return tuple(
        ErrorRecord(
            message=escape_lone_surrogates(str(item.get("message", ""))),
            kind=str(item.get("kind") or "WorkflowError"),
            job=item.get("job"),
            stage=item.get("stage"),
        )
        for item in items
    )
