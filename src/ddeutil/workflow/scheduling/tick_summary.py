"""Idle ticks stay quiet: one DEBUG line per tick, one INFO summary per hour.

A tick that has something to say (a release due, skipped or held) logs it
line by line (see :mod:`.tick_report`); every tick also logs one DEBUG line
with its counts, and :class:`TickSummary` adds them up and logs one INFO line
every :data:`SUMMARY_EVERY` of tick time with what happened since the last
one, so an operator reading INFO logs knows the daemon is alive without a line
per minute. Policies:

* **Tick time, not wall time**: the hour is measured between tick instants
  (``TickReport.now``), so the summary is deterministic under a fake clock and
  a clock step never floods the log (one line per tick at most).
* **First line after an hour**: the window starts at the first tick it sees.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .tick_report import TickReport

__all__ = ["SUMMARY_EVERY", "TickCounts", "TickSummary"]

SUMMARY_EVERY = timedelta(hours=1)
"""How much tick time one INFO summary line covers."""

logger = logging.getLogger("ddeutil.workflow.scheduling.scheduler")  # the scheduler's lines


@dataclass(frozen=True)
class TickCounts:
    """What some ticks did, added up."""

    ticks: int = 0
    due: int = 0
    dispatched: int = 0
    held: int = 0
    skipped: int = 0
    missed: int = 0
    events: int = 0

    @classmethod
    def of(cls, report: TickReport) -> TickCounts:
        """The counts of one tick."""
        return cls(
            ticks=1,
            due=len(report.due),
            dispatched=len(report.dispatched),
            held=len(report.held),
            skipped=len(report.skipped),
            missed=len(report.missed),
            events=len(report.events),
        )

    def plus(self, other: TickCounts) -> TickCounts:
        """Both counts added."""
        return replace(
            self,
            ticks=self.ticks + other.ticks,
            due=self.due + other.due,
            dispatched=self.dispatched + other.dispatched,
            held=self.held + other.held,
            skipped=self.skipped + other.skipped,
            missed=self.missed + other.missed,
            events=self.events + other.events,
        )

    def text(self) -> str:
        """``N release(s) due, N run(s) dispatched, ...`` (the zero ones too)."""
        return (
            f"{self.due} release(s) due, {self.dispatched} run(s) dispatched, "
            f"{self.held} held for a slot, {self.skipped} recorded SKIPPED, "
            f"{self.missed} missed release(s) skipped by catch-up, "
            f"{self.events} run event(s)"
        )


class TickSummary:
    """Logs each tick at DEBUG and a summary at INFO every ``every`` of tick time.

    Not thread-safe on its own: the scheduler calls :meth:`tick` under its lock.
    """

    def __init__(self, every: timedelta = SUMMARY_EVERY) -> None:
        self._every = every
        self._since: datetime | None = None
        self._counts = TickCounts()

    def tick(self, report: TickReport) -> None:
        """Count one active tick and log what is due (see the module doc)."""
        if not report.active:
            return
        counts = TickCounts.of(report)
        logger.debug("tick at %s: %s", report.now.isoformat(), counts.text())
        if self._since is None:
            self._since = report.now
        self._counts = self._counts.plus(counts)
        if report.now - self._since < self._every:
            return
        logger.info(
            "%d tick(s) since %s: %s",
            self._counts.ticks,
            self._since.isoformat(),
            self._counts.text(),
        )
        self._since, self._counts = report.now, TickCounts()
