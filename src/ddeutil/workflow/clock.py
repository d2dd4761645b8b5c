"""The clock seam: every component that asks "what time is it" takes a Clock.

Nothing else in the library calls ``datetime.now()``. Clocks return aware UTC
datetimes; zones are applied only where a schedule matches its fields.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock", "ensure_utc"]


class Clock(Protocol):
    """Source of the current instant."""

    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""
        ...


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock tests move by hand. Thread-safe.

    Args:
        start: The first reading; a naive value is taken as UTC.
    """

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (backwards too: wall clocks do step back)."""
        with self._lock:
            self._now = ensure_utc(when)

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (seconds when a number) and return the new reading."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._now += step
            return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as aware UTC; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
