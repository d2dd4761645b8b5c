"""Which pipelines a claim round can pass over: nothing of theirs is due yet.

A claim round locks every pipeline whose watermark is behind the boundary and
advances it. Planning each one (fire times, its load, the decider) is what a
round costs, and at a quiet boundary almost none has a release due: with 10,000
pipelines a round planned all of them every minute to claim a handful.

:class:`DueIndex` remembers, per pipeline, the watermark it was last planned
from (``mark``) and the first fire time of its schedules after it
(``next_due``). At a later boundary ``at`` a pipeline whose stored watermark is
at or after ``mark`` and whose ``next_due`` is after ``at`` has no fire time in
``(watermark, at]``: it is *quiet*, and the round only advances its watermark.

Policy (why a quiet answer is always safe):

* The test reads the watermark in the store, never a value this daemon
  assumes: watermarks only move forward, so fire times after it (or after any
  later value) are a subset of those after ``mark``. A transaction that rolled back, another daemon's
  round, or a store that went back in time leave a watermark before ``mark``:
  the pipeline is planned as usual.
* An entry holds the schedules it was computed from; after a reload a pipeline
  whose schedules changed is planned as usual (and learned again).
* Anything unknown is planned: a new pipeline, a first round, an index
  :meth:`forget` cleared (a lost lease, a rejoin).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from ..schedules.planner import PlannedSchedule

__all__ = ["HORIZON", "DueIndex"]

HORIZON = timedelta(days=400)
"""How far ahead :meth:`DueIndex.learn` looks for a pipeline's next fire time."""


class DueIndex:
    """Per pipeline: the watermark it was planned from and its next fire time after it.

    Not thread-safe: the scheduler uses it inside its claim rounds, one at a time
    (under its lock).
    """

    def __init__(self) -> None:
        self._table: dict[str, tuple[Sequence[PlannedSchedule], datetime, datetime]] = {}

    def __len__(self) -> int:
        return len(self._table)

    def quiet(
        self, name: str, mark: datetime, at: datetime, schedules: Sequence[PlannedSchedule]
    ) -> bool:
        """Whether ``name`` (watermark ``mark``, ``schedules`` now) has nothing due at ``at``."""
        entry = self._table.get(name)
        if entry is None:
            return False
        known, since, next_due = entry
        if known is not schedules or mark < since:
            return False
        return next_due > at

    def learn(self, name: str, at: datetime, schedules: Sequence[PlannedSchedule]) -> None:
        """``name`` was planned up to ``at``: remember its first fire time after ``at``.

        A schedule that does not fire within :data:`HORIZON` counts as due at its
        end (the pipeline is planned then, and learned again).
        """
        next_due = at + HORIZON
        for item in schedules:
            upcoming = next(iter(item.schedule.fire_times(at, next_due)), None)
            if upcoming is not None and upcoming < next_due:
                next_due = upcoming
        self._table[name] = (schedules, at, next_due)

    def forget(self) -> None:
        """Plan every pipeline at the next round (and learn them again)."""
        self._table.clear()
