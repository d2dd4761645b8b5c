"""Names shared by every layer that talks about runs: what started a run, which release it is.

:class:`TriggerKind` and :class:`ReleaseKey` are plain values used by the run
store, the dispatch seam, the scheduler and the API alike, so they live here at
the foundation (the store re-exports them). :func:`new_run_id` makes run ids
(the engine re-exports it).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .clock import ensure_utc

if TYPE_CHECKING:
    from .clock import Clock

__all__ = ["ReleaseKey", "TriggerKind", "new_run_id"]


class TriggerKind(str, enum.Enum):
    """What started a run."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    API = "api"
    BACKFILL = "backfill"
    """A release of the pipeline's schedules run by ``workflow backfill`` (claimed
    like a scheduled one: a release is run once, by the daemon or a backfill)."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ReleaseKey:
    """The identity of one release: a pipeline's schedule firing at one instant.

    ``at`` is normalised to aware UTC on construction, so two keys naming the same
    instant in different zones are equal and hash alike. ``schedule`` is the
    schedule's stable key (``On.key``, e.g. ``"*/5 * * * *@Asia/Bangkok"``).
    """

    pipeline: str
    schedule: str
    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", ensure_utc(self.at))


def new_run_id(clock: Clock) -> str:
    """A run id: the start time in UTC and 8 random hex digits.

    Example: ``20240101T000000-1a2b3c4d`` for a run at midnight UTC, whatever the
    configured zone (schedules keep theirs). Sorting ids sorts runs by start
    second; the random part keeps ids of one second apart.
    """
    return f"{clock.now().astimezone(timezone.utc):%Y%m%dT%H%M%S}-{os.urandom(4).hex()}"
