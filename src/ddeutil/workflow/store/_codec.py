"""Encoding shared by the stores: JSON values, error lists and UTC timestamps."""

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

__all__ = [
    "dump_errors",
    "dumps_json",
    "load_errors",
    "loads_json",
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
        return json.dumps(value, default=_default, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError):
        return json.dumps(_sanitise(value), allow_nan=False, separators=(",", ":"))


def loads_json(text: str | None) -> Any:
    """Decode JSON text (``None`` stays ``None``)."""
    return None if text is None else json.loads(text)


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
            message=str(item.get("message", "")),
            kind=str(item.get("kind") or "WorkflowError"),
            job=item.get("job"),
            stage=item.get("stage"),
        )
        for item in items
    )
