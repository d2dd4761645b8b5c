"""Execution plans: a validated pipeline compiled once, and the run of one.

:meth:`Pipeline.compile <ddeutil.workflow.engine.pipeline.Pipeline.compile>`
turns a validated template into an :class:`ExecutionPlan`: the jobs in
dependency order, who waits for whom, how many can run at once, the params the
templates read, and every job and stage compiled (conditions parsed, templated
keys found, hooks and code bound). A plan is frozen and holds no per-run state,
so one plan runs on many threads at once; a pipeline loaded from its template
compiles its plan once, and :class:`~ddeutil.workflow.engine.pipeline_cache.PipelineCache`
keeps it per template version.

:meth:`ExecutionPlan.run` is the one run path (``Pipeline.execute`` and the
trigger stage call it): params are resolved first (a
:class:`~ddeutil.workflow.errors.ParamError` lists every problem, and nothing
runs); then jobs run in dependency order as soon as their needs succeeded, up to
``WORKFLOW_CORE_MAX_JOB_PARALLEL`` at once on threads (inline when only one can
run at a time). A job whose need did not succeed is SKIPPED; independent jobs
still run. The result is FAILED when any job failed, CANCELLED when the run was
cancelled, SUCCESS otherwise: run failures never raise.

The result's context is ``{"params", "jobs", "needs", "timeline"}``: ``needs`` records the
job graph the run had (job id -> the ids it needs, for every job), so a later
rerun can tell whether the template changed under it (see
:mod:`~ddeutil.workflow.engine.rerun`); ``timeline`` holds when each job and stage
started and ended (see :mod:`~ddeutil.workflow.engine.timeline`). A pipeline without
jobs has neither and its context stays ``{"params", "jobs": {}}``.

A rerun (``RunOptions.resume``) does not execute the jobs it reuses: each is
recorded with its earlier context and outcome SUCCESS, logged as reused and
reported by a job event with ``reused_from`` set (duration 0, no stage events),
once its needs are met, as if it had run. A matrix job with reused combinations
runs only the others. Without a resume this costs two empty-dict lookups per job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..cancellation import CancelToken
from ..clock import SystemClock
from ..errors import ParamError, ParamProblem, PipelineError
from ..masking import Masker
from ..registry import load_filters
from ..result import ErrorRecord, Result, Status
from .context import PipelineSource, RunContext, RunOptions, new_run_id, process_environ
from .job import JobOutcome, JobPlan
from .params import ParamSet
from .rerun import Resume
from .stages import hook_registry
from .stages.trigger import loop_message
from .timeline import Timeline

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..settings import Settings

__all__ = ["ExecutionPlan"]

logger = logging.getLogger(__name__)

_DEFAULTS = RunOptions()
_NOTHING_REUSED = Resume(run_id="")


@dataclass(frozen=True)
class ExecutionPlan:
    """A pipeline compiled for running; see the module docstring.

    Attributes:
        name: The pipeline's name.
        params: Its declared params.
        order: Job ids in dependency order (written order among jobs ready together).
        dependents: Job id -> ids of the jobs that need it.
        width: The most jobs that can run at once (the widest level of ``needs``).
        param_refs: Param name -> where a template reads it (a run without it
            is refused before anything starts).
        jobs: Job id -> compiled job.
        settings: The settings it was compiled with (the default of a run).
        pipelines: Finds the pipelines its trigger stages run.
        timeout: Seconds a run may take (the pipeline's ``timeout:``); ``None``:
            the run's settings decide (``WORKFLOW_CORE_PIPELINE_TIMEOUT``).
    """

    name: str
    params: ParamSet
    order: tuple[str, ...]
    dependents: Mapping[str, tuple[str, ...]]
    width: int
    param_refs: Mapping[str, str]
    jobs: Mapping[str, JobPlan]
    settings: Settings
    pipelines: PipelineSource
    timeout: float | None = None

    def run(
        self, params: Mapping[str, Any] | None = None, options: RunOptions = _DEFAULTS
    ) -> Result:
        """Run the pipeline once and return its result (see the module docstring).

        Raises:
            ParamError: bad or missing params (all listed), before anything runs.
            PipelineError: this pipeline is already in ``options.chain`` (a trigger loop).
        """
        if self.name in options.chain:
            raise PipelineError(loop_message(options.chain, self.name), pipeline=self.name)
        settings = options.settings if options.settings is not None else self.settings
        resolved = self.params.resolve(params, pipeline=self.name)
        missing = [p for p in self.param_refs if p not in resolved]
        if missing:
            raise ParamError(
                [
                    ParamProblem(p, f"is used by {self.param_refs[p]} but was not given")
                    for p in missing
                ],
                pipeline=self.name,
            )
        clock = options.clock if options.clock is not None else SystemClock()
        run_id = options.run_id or new_run_id(clock)
        start = clock.now()
        limit = self.timeout if self.timeout is not None else settings.pipeline_timeout
        cancel = options.cancel if options.cancel is not None else CancelToken()
        deadline = _Deadline(cancel, limit)
        with deadline:
            return self._run(resolved, options, settings, run_id, start, deadline)

    def _run(  # noqa: PLR0917 - the pieces of one run, from run()
        self,
        resolved: dict[str, Any],
        options: RunOptions,
        settings: Settings,
        run_id: str,
        start: datetime,
        deadline: _Deadline,
    ) -> Result:
        clock = options.clock if options.clock is not None else SystemClock()
        rc = RunContext(
            run_id=run_id,
            pipeline=self.name,
            settings=settings,
            clock=clock,
            masker=options.masker if options.masker is not None else Masker(),
            cancel=deadline.token,
            filters=load_filters(settings.registry_filter),
            environ=process_environ(),
            hooks=hook_registry(settings.registry, settings.hook_paths),
            pipelines=self.pipelines,
            on_event=options.on_event,
            chain=(*options.chain, self.name),
            timeline=Timeline() if self.order else None,
        )
        jobs_ctx: dict[str, Any] = {}
        logical_date = options.logical_date or start.astimezone(settings.timezone)
        base = {
            "params": resolved,
            "jobs": jobs_ctx,
            "release": {"logical_date": logical_date},
            "run_id": run_id,
        }
        rc.log(logger, logging.INFO, "pipeline %r started (run %s)", self.name, run_id)
        resume = options.resume if options.resume is not None else _NOTHING_REUSED
        outcomes = self._run_jobs(base, jobs_ctx, rc, resume)
        statuses = {o.status for o in outcomes.values()}
        if Status.FAILED in statuses or deadline.expired:
            status = Status.FAILED
        elif rc.cancel.cancelled or Status.CANCELLED in statuses:
            status = Status.CANCELLED
        else:
            status = Status.SUCCESS
        errors = tuple(e for j in self.order if j in outcomes for e in outcomes[j].errors)
        if deadline.expired:  # the reason comes first: it is the run's one-line error
            errors = (ErrorRecord(message=deadline.reason, kind="Timeout"), *errors)
        end = clock.now()
        rc.log(
            logger,
            logging.INFO,
            "pipeline %r %s in %.3fs",
            self.name,
            status.value,
            (end - start).total_seconds(),
        )
        context: dict[str, Any] = {
            "params": resolved,
            "jobs": {j: jobs_ctx[j] for j in self.order if j in jobs_ctx},
        }
        if self.order:
            context["needs"] = {j: list(self.jobs[j].needs) for j in self.order}
        if rc.timeline is not None:
            context["timeline"] = rc.timeline.to_context()
        return Result(
            status=status,
            run_id=run_id,
            start=start,
            end=end,
            context=context,
            errors=errors,
            parent_run_id=options.parent_run_id,
            pipeline=self.name,
        )

    # ----------------------------------------------------------- scheduling

    def _run_jobs(
        self, base: Mapping[str, Any], jobs_ctx: dict[str, Any], rc: RunContext, resume: Resume
    ) -> dict[str, JobOutcome]:
        outcomes: dict[str, JobOutcome] = {}
        reused, kept = resume.jobs, resume.combinations

        def blocked(job_id: str) -> JobOutcome | None:
            """The outcome of a job that must not start (run cancelled, a need not met)."""
            if rc.cancel.cancelled:
                status, reason = Status.CANCELLED, f"run cancelled: {rc.cancel.reason}"
            else:
                bad = [
                    n for n in self.jobs[job_id].needs if outcomes[n].status is not Status.SUCCESS
                ]
                if not bad:
                    return None
                status = Status.SKIPPED
                reason = "needs " + ", ".join(f"{n} {outcomes[n].status.value}" for n in bad)
            job_rc = rc.evolve(job=job_id)
            job_rc.log(logger, logging.INFO, "job %r %s: %s", job_id, status.value, reason)
            job_rc.job_finished(status, 0.0, reason)
            return JobOutcome(status, reason=reason)

        def record(job_id: str, outcome: JobOutcome) -> None:
            outcomes[job_id] = outcome
            jobs_ctx[job_id] = outcome.context()

        def reuse(job_id: str) -> None:
            """Take over a job of the earlier run instead of executing it."""
            outcomes[job_id] = JobOutcome(Status.SUCCESS)
            jobs_ctx[job_id] = dict(reused[job_id])
            job_rc = rc.evolve(job=job_id)
            job_rc.log(logger, logging.INFO, "job %r reused from run %s", job_id, resume.run_id)
            job_rc.job_finished(Status.SUCCESS, 0.0, reused_from=resume.run_id)

        workers = min(rc.settings.max_job_parallel, self.width)
        if workers <= 1:
            for job_id in self.order:
                outcome = blocked(job_id)
                if outcome is None and job_id in reused:
                    reuse(job_id)
                    continue
                record(job_id, outcome or self.jobs[job_id].execute(base, rc, kept.get(job_id)))
            return outcomes

        # imported here: pipelines that run one job at a time never pay for the import
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        waiting = {j: len(self.jobs[j].needs) for j in self.order}
        with ThreadPoolExecutor(workers, thread_name_prefix=f"pipeline-{self.name}") as pool:
            running: dict[Future[JobOutcome], str] = {}

            def release(job_ids: Iterator[str] | list[str]) -> None:
                todo = list(job_ids)
                while todo:
                    job_id = todo.pop(0)
                    outcome = blocked(job_id)
                    if outcome is None and job_id in reused:
                        reuse(job_id)
                    elif outcome is None:
                        job = self.jobs[job_id]
                        running[pool.submit(job.execute, base, rc, kept.get(job_id))] = job_id
                        continue
                    else:
                        record(job_id, outcome)
                    todo.extend(self._ready_after(job_id, waiting))

            try:
                release(j for j in self.order if waiting[j] == 0)
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        job_id = running.pop(future)
                        record(job_id, _outcome_of(future, job_id, rc))
                        release(self._ready_after(job_id, waiting))
            except BaseException as exc:  # e.g. KeyboardInterrupt: stop the workers, then unwind
                rc.cancel.cancel(f"interrupted ({type(exc).__name__})")
                raise
        return outcomes

    def _ready_after(self, job_id: str, waiting: dict[str, int]) -> list[str]:
        ready = []
        for dependent in self.dependents.get(job_id, ()):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
        return ready


def _outcome_of(future: Future[JobOutcome], job_id: str, rc: RunContext) -> JobOutcome:
    try:
        return future.result()
    except Exception as exc:  # a bug in the engine: record it, never hang the run
        logger.exception("job crashed", extra=rc.log_extra())
        message = rc.masker.text(f"internal error: {exc!r}")
        return JobOutcome(Status.FAILED, errors=(ErrorRecord(message, type(exc).__name__, job_id),))


class _Deadline:
    """Cancels a run that takes longer than its limit (a child of the caller's token).

    A context manager: the timer starts on entry and stops on exit. ``expired``
    tells a timeout apart from a cancel asked by the caller.
    """

    def __init__(self, cancel: CancelToken, limit: float | None) -> None:
        self.limit = limit
        self.token = cancel if limit is None else cancel.child()
        self.reason = f"timeout: the run took longer than {limit:g}s" if limit else ""
        self._expired = threading.Event()
        self._timer: threading.Timer | None = None

    @property
    def expired(self) -> bool:
        return self._expired.is_set()

    def __enter__(self) -> _Deadline:
        if self.limit is not None:
            self._timer = threading.Timer(self.limit, self._expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        if self.token.cancelled:  # cancelled for another reason first
            return
        self._expired.set()
        self.token.cancel(self.reason)
