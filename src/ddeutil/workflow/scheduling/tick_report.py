"""What one tick did: the :class:`TickReport` it returns and the lines it logs.

Every due release is logged (claimed and dispatched, held for a slot of its
pipeline, or already claimed before), and so is every release the catch-up
policy skipped, with its reason; a long run of skipped releases is one line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from ..dispatch.records import RunEvent
from ..schedules.jitter import format_seconds
from ..schedules.planner import Plan, Release

__all__ = [
    "PAUSED_REASON",
    "SKIP_REASON",
    "TickLog",
    "TickReport",
    "log_next_releases",
    "log_tick",
]

NEXT_LOGGED = 10
"""How many pipelines' next releases :func:`log_next_releases` names."""

logger = logging.getLogger("ddeutil.workflow.scheduling.scheduler")  # the scheduler's lines

SKIP_REASON = "skipped: a run of this pipeline is still in flight (concurrency: skip)"
PAUSED_REASON = "skipped: the pipeline is paused"
"""The error of a release recorded SKIPPED because it fell during a pause
(``workflow unpause --catchup`` runs exactly these)."""


@dataclass(frozen=True)
class TickReport:
    """What one tick did (returned for tests, logs and benchmarks).

    Attributes:
        now: The instant the tick planned for.
        watermark: The watermark after the tick (``max`` of the old one and ``now``).
        due: Releases the planner returned as due, in release order.
        missed: Releases the catch-up policy skipped (never claimed).
        dispatched: Run ids handed to the executor during this tick (including
            waiting runs released because a slot became free). A release its
            schedule's jitter delays is handed over later, at its start.
        held: Run ids claimed and waiting in a per-pipeline FIFO (queue / poking).
        skipped: Run ids claimed and recorded SKIPPED (``concurrency: skip``, or the
            pipeline is paused).
        already_claimed: Due releases that were claimed before (not dispatched).
        reloaded: The conf folder was (re)loaded at the start of this tick.
        events: Executor events processed during this tick.
        active: ``False`` when the scheduler was not running and did nothing.
    """

    now: datetime
    watermark: datetime | None
    due: tuple[Release, ...] = ()
    missed: tuple[Release, ...] = ()
    dispatched: tuple[str, ...] = ()
    held: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    already_claimed: tuple[Release, ...] = ()
    reloaded: bool = False
    events: tuple[RunEvent, ...] = ()
    active: bool = True


@dataclass
class TickLog:
    """What a tick did so far, filled in while it dispatches."""

    dispatched: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    already: list[Release] = field(default_factory=list)


def log_tick(result: Plan, log: TickLog) -> None:
    """Log every due, skipped and held release of one tick (one line each)."""
    already = {(r.pipeline, r.schedule, r.at) for r in log.already}
    for release in result.due:
        extra = {"pipeline": release.pipeline, "release": release.at.isoformat()}
        if (release.pipeline, release.schedule, release.at) in already:
            logger.info(
                "release due but already claimed: skipped (schedule %s)",
                release.schedule,
                extra=extra,
            )
        else:
            logger.info(
                "release due%s; schedule %s, logical date %s",
                f": {release.reason}" if release.reason else "",
                release.schedule,
                release.logical_date.isoformat(),
                extra=extra,
            )
    for release in result.skipped:
        logger.info(
            "release skipped: %s (schedule %s)",
            release.reason or "missed",
            release.schedule,
            extra={"pipeline": release.pipeline, "release": release.at.isoformat()},
        )
    for span in result.skipped_ranges:
        logger.info(
            "older releases in (%s, %s] skipped: %s (schedule %s)",
            span.after.isoformat(),
            span.until.isoformat(),
            span.reason,
            span.schedule,
            extra={"pipeline": span.pipeline},
        )
    for run_id in log.skipped:
        logger.info("release recorded SKIPPED: %s", SKIP_REASON, extra={"run_id": run_id})
    if log.held:
        logger.info("%d claimed release(s) wait for a free slot of their pipeline", len(log.held))


def log_next_releases(upcoming: list[tuple[datetime, str, str, int]], now: datetime) -> None:
    """Log when the first :data:`NEXT_LOGGED` pipelines run next (``(at, pipeline,
    schedule, jitter offset)``, soonest first), so whoever starts the daemon knows
    what to expect; a jittered release says when it starts (``+17s``)."""
    for at, pipeline, schedule, offset in upcoming[:NEXT_LOGGED]:
        late = f" +{format_seconds(offset)}" if offset else ""
        logger.info(
            "next release of %s: %s%s (in %.0fs, schedule %s)",
            pipeline,
            at.isoformat(),
            late,
            (at - now).total_seconds() + offset,
            schedule,
            extra={"pipeline": pipeline, "release": at.isoformat()},
        )
    if len(upcoming) > NEXT_LOGGED:
        logger.info(
            "... and %d more pipeline(s): `workflow list` shows every next release",
            len(upcoming) - NEXT_LOGGED,
        )
    if not upcoming:
        logger.info("no pipeline has a release to come: nothing is scheduled")
