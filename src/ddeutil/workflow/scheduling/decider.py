"""What a claim round decides for each batch: plan it, then admit, hold or skip each release.

:class:`RoundDecider` is the ``decide`` callback the scheduler hands to
:meth:`RunStore.claim_round <ddeutil.workflow.store.base.RunStore.claim_round>`;
it runs inside each batch's transaction, with the batch's pipelines locked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from operator import attrgetter
from typing import Any

from ..clock import Clock
from ..masking import Masker
from ..runs import ReleaseKey, new_run_id
from ..schedules.planner import Plan, PlannedSchedule, Release, plan
from ..settings import Settings
from ..store.base import Claim
from ..store.fleet import ClaimState, Decision, PipelineLoad, RoundClaim, RoundView
from .catalog import CatalogEntry, PipelineCatalog
from .due_index import DueIndex
from .tick_report import PAUSED_REASON, SKIP_REASON

__all__ = ["RoundDecider"]


class RoundDecider:
    """The ``decide`` callback of one claim round: plan a batch, say how each claim runs.

    Planning is the pure :func:`~ddeutil.workflow.schedules.planner.plan` over
    the batch's pipelines, grouped by watermark. Each due release is then
    admitted (it holds a slot: dispatched now), left waiting, or skipped, from
    the pipeline's load fleet-wide as the store shows it: ``skip`` skips while
    anything of the pipeline is in flight or waiting; ``queue`` and ``allow``
    admit while fewer than the limit hold a slot and none is waiting (older
    releases go first). A release of a paused pipeline at or after the instant
    it was paused (``paused``) is recorded SKIPPED (:data:`PAUSED_REASON`).
    With an ``index``, :meth:`quiet` tells the round which pipelines have nothing
    due (it then skips them), and each pipeline planned is learned into it.
    """

    def __init__(
        self,
        *,
        catalog: PipelineCatalog,
        settings: Settings,
        masker: Masker,
        limit: Callable[[CatalogEntry], int],
        at: datetime,
        stamp: Clock,
        paused: Mapping[str, datetime] | None = None,
        index: DueIndex | None = None,
    ) -> None:
        self._catalog = catalog
        self._index = index
        self._settings = settings
        self._masker = masker
        self._limit = limit
        self._planned = catalog.planned_by_pipeline()
        self._at = at
        self._stamp = stamp
        self._paused = paused or {}
        self._due: list[Release] = []
        self._skipped: list[Release] = []
        self._ranges: list[Any] = []
        self._by_run: dict[str, Release] = {}

    def quiet(self, name: str, mark: datetime) -> bool:
        """The round's ``quiet`` test: ``name`` has nothing due (see :class:`DueIndex`)."""
        schedules = self._planned.get(name)
        return (
            self._index is not None
            and schedules is not None
            and self._index.quiet(name, mark, self._at, schedules)
        )

    def __call__(self, view: RoundView) -> Decision:
        groups: dict[datetime, list[PlannedSchedule]] = {}
        for name, mark in view.watermarks.items():
            schedules = self._planned.get(name, ())
            groups.setdefault(mark, []).extend(schedules)
            if self._index is not None and schedules:
                self._index.learn(name, self._at, schedules)
        due: list[Release] = []
        for mark, schedules in groups.items():
            result = plan(
                schedules,
                watermark=mark,
                now=self._at,
                catchup_limit=self._settings.app_catchup_limit,
            )
            due.extend(result.due)
            self._skipped.extend(result.skipped)
            self._ranges.extend(result.skipped_ranges)
        due.sort(key=lambda r: (r.at, r.pipeline, r.schedule))
        self._due.extend(due)
        load = dict(view.load)
        return Decision(tuple(self._claim(release, load) for release in due))

    def _claim(self, release: Release, load: dict[str, PipelineLoad]) -> RoundClaim:
        entry = self._catalog.get(release.pipeline)
        assert entry is not None  # planned from the catalog under the scheduler's lock
        claim = Claim(
            release=ReleaseKey(release.pipeline, release.schedule, release.at),
            run_id=new_run_id(self._stamp),
            params=self._masker.data(dict(entry.defaults)),
            logical_date=release.logical_date,
        )
        self._by_run[claim.run_id] = release
        since = self._paused.get(release.pipeline)
        if since is not None and release.at >= since:
            return RoundClaim(claim, ClaimState.SKIPPED, PAUSED_REASON)
        now = load.get(release.pipeline, PipelineLoad())
        if entry.concurrency == "skip" and (now.running or now.waiting):
            return RoundClaim(claim, ClaimState.SKIPPED, SKIP_REASON)
        if now.waiting == 0 and now.running < self._limit(entry):
            load[release.pipeline] = PipelineLoad(now.running + 1, now.waiting)
            return RoundClaim(claim, ClaimState.ADMITTED)
        load[release.pipeline] = PipelineLoad(now.running, now.waiting + 1)
        return RoundClaim(claim, ClaimState.WAITING)

    def release_of(self, run_id: str) -> Release:
        return self._by_run[run_id]

    def plan(self) -> Plan:
        """Everything planned in the round, as one :class:`Plan` (for the log and report)."""
        order = attrgetter("at", "pipeline", "schedule")
        return Plan(
            tuple(sorted(self._due, key=order)),
            tuple(sorted(self._skipped, key=order)),
            tuple(sorted(self._ranges, key=attrgetter("until", "pipeline", "schedule"))),
        )
