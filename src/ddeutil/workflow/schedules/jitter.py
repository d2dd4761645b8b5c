"""Schedule jitter: start each release a little after its fire time, the same delay every time.

A schedule may say ``jitter: 30s`` (or ``5m``, ``1h``, ``1m30s``, or a number of
seconds). Each release of that schedule then starts ``offset`` whole seconds after
its fire time, ``0 <= offset < jitter``, so a thousand pipelines on ``0 * * * *``
do not all start in the same second. Policies:

* **Deterministic.** The offset is a stable hash (BLAKE2b, never the salted
  :func:`hash`) of the pipeline name, the schedule's ``key`` and the fire time:
  a restarted daemon, and every daemon sharing a run store, compute the same
  start for the same release. Two pipelines on one schedule get different
  offsets, and so do the releases of one pipeline.
* **The release keeps its time.** Jitter delays the *start* only: the claim key,
  ``release.logical_date`` and the run records name the fire time, so changing
  ``jitter`` never runs a release twice and never skips one.
* **Bounded.** ``0 < jitter <= 1h``; ``0`` (or no key) means none.

:func:`parse_jitter` reads the key (every problem a ``ScheduleError`` with
``key="jitter"``), :func:`jitter_offset` computes an offset and
:func:`format_seconds` writes one back in the same units (``+17s``).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

from ..errors import ScheduleError

__all__ = ["MAX_JITTER", "format_seconds", "jitter_offset", "parse_jitter", "start_of"]

MAX_JITTER = 3600
"""The largest jitter, in seconds (one hour)."""

_UNITS = {"h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d{1,4})h)?(?:(\d{1,4})m)?(?:(\d{1,7})s)?")


def parse_jitter(value: Any) -> int:
    """Read a ``jitter`` value as whole seconds (``0``: none).

    Takes an int (seconds) or a string of ``h`` / ``m`` / ``s`` parts in that
    order (``"30s"``, ``"5m"``, ``"1h"``, ``"1m30s"``; a bare ``"45"`` is seconds).

    Raises:
        ScheduleError: ``key="jitter"``; the value is not a duration, is negative
            or is longer than one hour.
    """
    if value is None:
        return 0
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        seconds = _seconds(value.strip(" \t").lower())
    if seconds is None:
        raise ScheduleError(
            "jitter must be a duration such as 30s, 5m, 1h or 1m30s (or whole seconds), "
            f"got {value!r}",
            key="jitter",
        )
    if not 0 <= seconds <= MAX_JITTER:
        raise ScheduleError(
            f"jitter must be between 0 and 1h ({MAX_JITTER}s), got {value!r}", key="jitter"
        )
    return seconds


def _seconds(text: str) -> int | None:
    if not text.isascii():  # str.isdigit() and int() read Unicode digits too
        return None
    if text.isdigit():
        return int(text) if len(text) <= 7 else None
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        return None
    return sum(
        int(part) * _UNITS[unit] for part, unit in zip(match.groups(), "hms", strict=True) if part
    )


def jitter_offset(pipeline: str, schedule: str, at: datetime, jitter: int) -> int:
    """The delay in whole seconds, ``0 <= offset < jitter``, of one release.

    Args:
        pipeline: The pipeline name.
        schedule: The schedule's ``key`` (``"<cron>@<zone>"``).
        at: The fire time (any aware datetime: only its instant counts).
        jitter: The schedule's jitter in seconds; ``0`` gives ``0``.
    """
    if jitter <= 1:
        return 0
    seed = f"{pipeline}\x1f{schedule}\x1f{int(at.timestamp())}".encode()
    digest = hashlib.blake2b(seed, digest_size=8).digest()
    return int.from_bytes(digest, "big") % jitter


def start_of(pipeline: str, schedule: str, at: datetime, jitter: int) -> datetime:
    """When the release ``(pipeline, schedule, at)`` starts: ``at`` plus its offset."""
    offset = jitter_offset(pipeline, schedule, at, jitter)
    return at + timedelta(seconds=offset) if offset else at


def format_seconds(seconds: int) -> str:
    """A duration as ``jitter`` is written: ``17s``, ``5m``, ``1m30s``, ``1h``."""
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
