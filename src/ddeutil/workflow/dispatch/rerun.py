"""Rerun from failure: a stored run and the current template make the request of a new run.

``workflow rerun RUN_ID`` and ``POST /api/v1/runs/{id}/rerun`` share
:func:`prepare_rerun`: it checks the earlier run can be rerun, plans what the
new run reuses (:func:`~ddeutil.workflow.engine.rerun.plan_rerun`) and keeps
what the new run takes over: the earlier run's params and logical date (in its
schedule's zone, as the release had it). :meth:`Rerun.request` then makes the
:class:`~ddeutil.workflow.dispatch.records.RunRequest` of the new run, which any
executor runs like another (the resume travels in it as JSON).

Policies:

* **Only an ended run is rerun**: a PENDING or RUNNING one is refused (wait for
  it, or cancel it).
* **The current template runs**, at its current version; reuse is refused when
  it changed in a way that makes the earlier outputs unsafe (removed jobs,
  changed ``needs``) unless forced.
* **Secrets are not guessed back**: the run store keeps params masked, so a
  param recorded as ``***`` is refused; trigger a new run with its value.
* A rerun is a new run (its own id, ``rerun_of`` naming the earlier run), never
  a release claim: it does not compete with the daemon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..engine.pipeline import Pipeline
from ..engine.rerun import Resume, plan_rerun
from ..errors import RerunError
from ..masking import MASK
from ..runs import TriggerKind
from ..settings import Settings
from ..store.base import RunRecord
from .records import RunRequest

__all__ = ["Rerun", "prepare_rerun"]


@dataclass(frozen=True)
class Rerun:
    """What a rerun of ``source`` takes over: its params, its logical date, its outputs."""

    source: RunRecord
    resume: Resume
    params: Mapping[str, Any]
    logical_date: datetime | None

    def request(
        self, run_id: str, *, version: str | None, trigger: TriggerKind, owner: str | None = None
    ) -> RunRequest:
        """The request of the new run ``run_id`` (recorded with ``rerun_of=source``)."""
        return RunRequest(
            run_id=run_id,
            pipeline=self.source.pipeline,
            version=version,
            params=dict(self.params),
            logical_date=self.logical_date,
            trigger=trigger,
            owner=owner,
            resume=self.resume.to_dict(),
        )


def prepare_rerun(
    source: RunRecord,
    pipeline: Pipeline,
    settings: Settings,
    *,
    from_job: str | None = None,
    force: bool = False,
) -> Rerun:
    """Check that ``source`` can be rerun with ``pipeline`` and plan what it reuses.

    Raises:
        RerunError: ``source`` has not ended, a param was recorded masked,
            ``from_job`` is unknown, nothing is left to rerun, or (``unsafe``)
            the template changed under the run and ``force`` is not given.
    """
    if not source.status.is_terminal:
        raise RerunError(
            [f"it is {source.status.value}: wait for it to end, or cancel it"],
            run_id=source.run_id,
            pipeline=source.pipeline,
        )
    masked = sorted(
        name for name, value in source.params.items() if isinstance(value, str) and MASK in value
    )
    if masked:
        raise RerunError(
            [
                f"param {name!r} was recorded masked (it held a secret), so its value "
                "cannot be rerun; trigger a new run with it"
                for name in masked
            ],
            run_id=source.run_id,
            pipeline=source.pipeline,
        )
    plan = pipeline.plan if pipeline.plan is not None else pipeline.compile(settings)
    resume = plan_rerun(
        plan, source.context or {}, run_id=source.run_id, from_job=from_job, force=force
    )
    return Rerun(source, resume, dict(source.params), _logical_date(source, settings))


def _logical_date(source: RunRecord, settings: Settings) -> datetime | None:
    """The earlier run's logical date, in its schedule's zone when it was a release.

    A run without a release had its start as its logical date (in the
    configured zone); a run that never started has none (the rerun's own start).
    """
    when = source.logical_date
    if when is None:
        return None if source.started is None else source.started.astimezone(settings.timezone)
    if source.release is None:
        return when.astimezone(settings.timezone)
    _, _, zone = source.release.schedule.rpartition("@")
    try:
        return when.astimezone(ZoneInfo(zone)) if zone else when
    except (ZoneInfoNotFoundError, ValueError):
        return when
