"""Due releases made ready to claim and dispatch, ahead of the minute boundary when possible.

A release the scheduler dispatches needs a :class:`~ddeutil.workflow.store.base.Claim`
(written to the store first) and a :class:`~ddeutil.workflow.dispatch.records.RunRequest`
(sent to the executor once the claim is won): :func:`make_ready` builds both.

:func:`plan_ahead` does the planning of the next tick a moment before its
boundary (the daemon calls :meth:`Scheduler.prepare
<ddeutil.workflow.scheduling.scheduler.Scheduler.prepare>` 50 ms early) and makes the first
few due releases ready, run ids included. At the boundary the tick then only
claims and sends: less work between the boundary and the first stage. Policy:

* **Same result.** A :class:`PlanAhead` is used only by a tick that would plan
  exactly the same releases (:meth:`PlanAhead.fits`); otherwise the tick plans
  afresh and the releases made ready are dropped.
* **Run ids** made ahead carry the boundary's time (a run id made at the tick
  carries the tick's clock reading, the same second).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..dispatch.records import RunRequest
from ..masking import Masker
from ..runs import ReleaseKey, TriggerKind, new_run_id
from ..schedules.planner import Plan, PlannedSchedule, Release, plan
from ..settings import Settings
from ..store.base import Claim
from .catalog import CatalogEntry, PipelineCatalog

__all__ = ["PlanAhead", "ReadyRelease", "make_ready", "plan_ahead"]

_MINUTE = timedelta(minutes=1)

ReleaseId = tuple[str, str, datetime]
"""``(pipeline, schedule key, UTC instant)`` of a release."""


@dataclass(frozen=True)
class ReadyRelease:
    """A due release ready to claim and dispatch: its claim and its request."""

    claim: Claim
    request: RunRequest


def make_ready(release: Release, entry: CatalogEntry, run_id: str, masker: Masker) -> ReadyRelease:
    """The claim (params masked) and the request (the entry's version) of ``release``."""
    key = ReleaseKey(pipeline=release.pipeline, schedule=release.schedule, at=release.at)
    claim = Claim(
        release=key,
        run_id=run_id,
        params=masker.data(dict(entry.defaults)),
        logical_date=release.logical_date,
    )
    request = RunRequest(
        run_id=run_id,
        pipeline=entry.name,
        version=entry.version,
        params=dict(entry.defaults),
        release=key,
        logical_date=release.logical_date,
        trigger=TriggerKind.SCHEDULE,
    )
    return ReadyRelease(claim, request)


@dataclass(frozen=True)
class PlanAhead:
    """The plan of a minute boundary, made before it.

    Attributes:
        boundary: The instant planned for.
        watermark: The watermark the plan started from.
        planned: The schedules planned (the catalog's list, compared by identity).
        plan: The planner's result.
        ready: The first due releases, made ready, by :data:`ReleaseId`.
    """

    boundary: datetime
    watermark: datetime | None
    planned: Sequence[PlannedSchedule]
    plan: Plan
    ready: Mapping[ReleaseId, ReadyRelease]

    def fits(
        self, at: datetime, watermark: datetime | None, planned: Sequence[PlannedSchedule]
    ) -> bool:
        """Whether this plan is the plan of a tick at ``at``.

        Cron schedules fire at whole minutes, so for ``at`` in ``[boundary,
        boundary + 1 min)`` the window ``(watermark, at]`` holds the same fire
        times as ``(watermark, boundary]`` and the on-time cut (``at - 60 s``)
        falls between the same two minutes: the plans are equal, as long as the
        watermark and the loaded schedules are those the plan was made with.
        """
        return (
            self.boundary <= at < self.boundary + _MINUTE
            and self.watermark == watermark
            and self.planned is planned
        )


class _StoppedClock:
    """A clock stopped at one instant (run ids made ahead carry the boundary's time)."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at


def plan_ahead(
    *,
    boundary: datetime,
    catalog: PipelineCatalog,
    watermark: datetime | None,
    settings: Settings,
    masker: Masker,
    count: int,
) -> PlanAhead:
    """Plan the tick at ``boundary`` now and make its first ``count`` due releases ready."""
    planned = catalog.planned()
    result = plan(
        planned, watermark=watermark, now=boundary, catchup_limit=settings.app_catchup_limit
    )
    stamp = _StoppedClock(boundary)
    ready: dict[ReleaseId, ReadyRelease] = {}
    for release in result.due[:count]:
        entry = catalog.get(release.pipeline)
        assert entry is not None  # planned from this catalog
        run_id = new_run_id(stamp, settings.timezone)
        ready[(release.pipeline, release.schedule, release.at)] = make_ready(
            release, entry, run_id, masker
        )
    return PlanAhead(boundary, watermark, planned, result, ready)
