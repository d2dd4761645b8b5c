"""What one run carries down to its jobs and stages, besides the template data.

Two things travel through a run:

* the **template context**, a plain dict read by ``${{ }}`` expressions:
  ``{"params", "matrix", "stages", "jobs", "release", "run_id"}``. Each matrix
  combination gets a new small dict whose values are shared with the run (never
  deep-copied); stages only ever add their own ``stages.<id>`` entry.
* the :class:`RunContext`: the settings, clock, masker, cancel token, filters,
  hook registry, pipeline source and event callback of the run, plus the
  trigger chain.

:class:`RunOptions` is what a caller chooses about one run (id, logical date,
cancel token, clock, settings, masker, event callback, trigger chain, what a
rerun reuses): one
frozen record handed from :meth:`Pipeline.execute
<ddeutil.workflow.engine.pipeline.Pipeline.execute>` (and from a trigger stage)
to :meth:`ExecutionPlan.run <ddeutil.workflow.engine.plan.ExecutionPlan.run>`.

:class:`RunEvent` is what ``on_event`` receives when a stage or a job finishes
(the CLI prints its per-stage summary from them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..result import ErrorRecord, Status
from ..runs import new_run_id

if TYPE_CHECKING:
    from datetime import datetime

    from ..cancellation import CancelToken
    from ..clock import Clock
    from ..masking import Masker
    from ..registry import HookRegistry
    from ..result import Result
    from ..settings import Settings
    from .rerun import Resume
    from .timeline import Timeline

__all__ = [
    "PipelineSource",
    "RunContext",
    "RunEvent",
    "RunOptions",
    "Runnable",
    "StageOutcome",
    "new_run_id",
    "process_environ",
]

logger = logging.getLogger(__name__)


def process_environ() -> Mapping[str, str]:
    """The process environment a run reads ``${VAR}`` from and bash inherits.

    This is data handed to the user's code, not configuration: settings come
    from :class:`~ddeutil.workflow.settings.Settings` only.
    """
    return os.environ


@dataclass(frozen=True)
class RunEvent:
    """A stage of a run started, or a stage or a job of a run finished.

    Attributes:
        kind: ``"stage"`` or ``"job"`` (finished), or ``"stage_started"`` (a stage
            began executing: status RUNNING, duration 0; skipped stages never start).
        run_id: The run.
        pipeline: The pipeline name.
        job: The job id.
        stage: The stage id (its name when it records no outputs); ``None`` for jobs.
        name: The stage name as rendered (``None`` for jobs).
        strategy: The matrix combination id when the job runs several.
        matrix: The combination's values (empty without a matrix).
        status: SUCCESS, FAILED, SKIPPED or CANCELLED (RUNNING for ``stage_started``).
        duration: Seconds the stage or job took.
        error: The (masked) error message of a failed stage or job.
        reused_from: For a job a rerun did not execute but took over (SUCCESS,
            duration 0): the run whose outputs it reused.
    """

    kind: Literal["stage", "job", "stage_started"]
    run_id: str
    pipeline: str
    job: str
    status: Status
    duration: float
    stage: str | None = None
    name: str | None = None
    strategy: str | None = None
    matrix: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    reused_from: str | None = None


@dataclass(frozen=True)
class RunOptions:
    """What a caller chooses about one run; every field has a default.

    Attributes:
        run_id: Default :func:`new_run_id` (start time in ``settings.timezone``
            and random hex).
        parent_run_id: The run that triggered this one, if any.
        logical_date: ``release.logical_date`` in templates; default the run's
            start in ``settings.timezone``.
        cancel: Cooperative cancellation; the result is CANCELLED when used.
        clock: Default the system clock.
        settings: Default the settings the plan was compiled with.
        masker: Hides secrets in errors, events, bash output and logs.
        on_event: Called as each stage starts and as each stage and job finishes.
        chain: Names of the pipelines that triggered this run, outermost first
            (a trigger stage passes its own run's chain); a pipeline already in
            it is a loop and is refused.
        resume: For a rerun: the jobs and matrix combinations of an earlier run
            it takes over instead of executing (see
            :mod:`~ddeutil.workflow.engine.rerun`); ``None`` runs everything.
    """

    run_id: str | None = None
    parent_run_id: str | None = None
    logical_date: datetime | None = None
    cancel: CancelToken | None = None
    clock: Clock | None = None
    settings: Settings | None = None
    masker: Masker | None = None
    on_event: Callable[[RunEvent], None] | None = None
    chain: tuple[str, ...] = ()
    resume: Resume | None = None


class Runnable(Protocol):
    """A compiled pipeline (:class:`~ddeutil.workflow.engine.plan.ExecutionPlan`)."""

    def run(self, params: Mapping[str, Any] | None, options: RunOptions) -> Result: ...


PipelineSource = Callable[[str, "Settings"], Runnable]
"""Finds the pipeline a trigger stage names (compiled with the given settings)."""


@dataclass(frozen=True)
class StageOutcome:
    """How one stage of one combination ended (internal to the engine)."""

    status: Status
    duration: float
    error: ErrorRecord | None = None


@dataclass(frozen=True)
class RunContext:
    """The non-template side of one run, shared by all its jobs and stages.

    Attributes:
        run_id: This run.
        pipeline: The pipeline's name.
        settings: Settings of the process.
        clock: Time source (stage and job start/end).
        masker: Hides secrets in everything the engine formats (errors, bash
            output, log lines, events).
        cancel: The run's token; jobs and combinations take children of it.
        filters: Template filters from ``WORKFLOW_CORE_REGISTRY_FILTER``.
        environ: What ``${VAR}`` reads and what bash inherits.
        hooks: The hook registry (for templated ``uses``).
        pipelines: Finds the pipeline a trigger stage runs.
        on_event: Called (in a worker thread) when a stage starts and when a stage or
            job finishes.
        chain: Names of the pipelines that triggered this run, outermost first,
            ending with this pipeline: a trigger to any of them is a loop.
        job: The job currently running (in per-job copies).
        strategy: The matrix combination id (in per-combination copies of a
            job with several combinations).
        matrix: The combination's values (in per-combination copies).
        timeline: Collects when each job and stage started and ended (see
            :mod:`~ddeutil.workflow.engine.timeline`); ``None`` records nothing.
    """

    run_id: str
    pipeline: str
    settings: Settings
    clock: Clock
    masker: Masker
    cancel: CancelToken
    filters: Mapping[str, Callable[..., Any]]
    environ: Mapping[str, str]
    hooks: HookRegistry
    pipelines: PipelineSource
    on_event: Callable[[RunEvent], None] | None = None
    chain: tuple[str, ...] = ()
    job: str = ""
    strategy: str | None = None
    matrix: Mapping[str, Any] = field(default_factory=dict)
    timeline: Timeline | None = None

    def evolve(self, **changes: Any) -> RunContext:
        """A copy with ``changes`` (a job's or a combination's view of the run)."""
        return replace(self, **changes)

    def log_extra(self, stage: str | None = None) -> dict[str, Any]:
        """The ``extra=`` of a log line: run id, pipeline, job and stage."""
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "job": self.job or None,
            "stage": stage,
        }

    def log(
        self, log: logging.Logger, level: int, msg: str, *args: Any, stage: str | None = None
    ) -> None:
        """Log ``msg`` on ``log`` with the run's context fields, when ``level`` is enabled.

        The message is masked here, so a secret in a rendered value never reaches
        a handler even when the application installed no masking filter.
        """
        if log.isEnabledFor(level):
            text = msg % args if args else msg
            log.log(level, self.masker.text(text), extra=self.log_extra(stage))

    def job_finished(
        self,
        status: Status,
        duration: float,
        error: str | None = None,
        *,
        reused_from: str | None = None,
    ) -> None:
        """Emit the :class:`RunEvent` of this context's job ending (when someone listens)."""
        if self.on_event is not None:
            self.emit(
                RunEvent(
                    kind="job",
                    run_id=self.run_id,
                    pipeline=self.pipeline,
                    job=self.job,
                    status=status,
                    duration=duration,
                    error=error,
                    reused_from=reused_from,
                )
            )

    def emit(self, event: RunEvent) -> None:
        """Pass ``event`` to ``on_event``; a callback that raises is logged, never fatal."""
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            logger.exception("on_event callback failed", extra=self.log_extra(event.stage))
