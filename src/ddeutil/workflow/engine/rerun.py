"""Rerun from failure: what a new run reuses of an earlier run of the same pipeline.

A rerun is a new run, linked to an earlier one, that takes over the outputs of
the jobs that succeeded and runs the rest. :func:`plan_rerun` decides what it
reuses from the current :class:`~ddeutil.workflow.engine.plan.ExecutionPlan` and
the earlier run's stored context; the answer is a :class:`Resume`, which
:class:`~ddeutil.workflow.engine.context.RunOptions` carries into the run (and
which travels as JSON through the dispatch seam). The caller gives the rerun the
earlier run's params and logical date; a resume holds outputs only.

Which jobs run again (the *rerun set*):

* every job whose earlier status is not SUCCESS: FAILED, SKIPPED, CANCELLED, or
  not in the earlier run at all (a job added to the template since);
* with ``from_job``, that job as well, even if it succeeded: the jobs that did
  not succeed are still rerun, since their outputs do not exist to reuse;
* everything downstream of those (every job that needs one of them, directly or
  through others): its inputs change.

Every other job is *reused*: it does not execute, its outcome is SUCCESS and its
context is the earlier one, so ``${{ jobs.<id>... }}`` in the jobs that run read
the earlier outputs. Nothing to rerun (the run succeeded and no ``from_job``) is
refused, as is a ``from_job`` the template does not have.

A matrix job in the rerun set because it did not succeed itself, whose needs are
all reused, runs only the combinations that did not succeed (failed, cancelled,
or new to the matrix); its SUCCESS combinations keep their earlier context (by
combination id, which is stable across runs) and count as SUCCESS in the job's
status. A matrix job rerun because something it needs reran, and the
``from_job`` itself, run every combination.

Reuse is unsafe when the template changed under the earlier run
(:func:`rerun_problems`): a job of the earlier run is gone, or a job's ``needs``
differ from the earlier run's (recorded in its context under ``"needs"``). An
earlier run that has jobs but no recorded ``needs`` predates that record: its
graph is unknown, which is a problem too. :func:`plan_rerun` refuses with a
:class:`~ddeutil.workflow.errors.RerunError` listing every problem unless
``force`` is given; a forced rerun ignores removed jobs and plans on the current
graph. Other template changes (stages, matrix values) are the caller's choice:
combinations are matched by id, so a changed matrix simply runs its new
combinations.

A trigger stage that runs in a rerun starts its child pipeline afresh: a resume
applies to the run it was given to only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import RerunError
from ..result import Status

__all__ = ["JobGraph", "PlannedJob", "Resume", "plan_rerun", "rerun_problems"]

_SUCCESS = Status.SUCCESS.value


class PlannedJob(Protocol):
    """What a rerun plan reads of a compiled job (a :class:`~ddeutil.workflow.engine.job.JobPlan`)."""

    @property
    def needs(self) -> tuple[str, ...]: ...

    @property
    def strategy_ids(self) -> tuple[str, ...] | None: ...


class JobGraph(Protocol):
    """What a rerun plan reads of a compiled pipeline (an
    :class:`~ddeutil.workflow.engine.plan.ExecutionPlan`; the plan imports this
    module, so it is named by its shape here).
    """

    @property
    def name(self) -> str: ...

    @property
    def order(self) -> tuple[str, ...]: ...

    @property
    def dependents(self) -> Mapping[str, tuple[str, ...]]: ...

    @property
    def jobs(self) -> Mapping[str, PlannedJob]: ...


def _no_jobs() -> dict[str, Mapping[str, Any]]:
    return {}


def _no_combinations() -> dict[str, Mapping[str, Mapping[str, Any]]]:
    return {}


@dataclass(frozen=True)
class Resume:
    """What a rerun takes over from an earlier run (see the module docstring).

    Attributes:
        run_id: The earlier run.
        jobs: Job id -> its earlier context (``jobs.<id>``), for the jobs reused
            whole: they do not execute.
        combinations: Job id -> combination id -> the earlier context of that
            combination (``{"status", "matrix", "stages"}``), for matrix jobs
            that run again but keep their SUCCESS combinations.
    """

    run_id: str
    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=_no_jobs)
    combinations: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(
        default_factory=_no_combinations
    )

    def to_dict(self) -> dict[str, Any]:
        """The resume as JSON values (the contexts are the stored ones, JSON already)."""
        return {
            "run_id": self.run_id,
            "jobs": {j: dict(ctx) for j, ctx in self.jobs.items()},
            "combinations": {
                j: {cid: dict(ctx) for cid, ctx in combos.items()}
                for j, combos in self.combinations.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resume:
        """The resume :meth:`to_dict` returned.

        Raises:
            ValueError: ``data`` does not have that shape (it names the part).
        """
        run_id = data.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"a resume needs the earlier run's id, got {run_id!r}")
        jobs = _mapping_of_mappings(data.get("jobs") or {}, "jobs")
        raw = data.get("combinations") or {}
        if not isinstance(raw, Mapping):
            raise ValueError("resume 'combinations' must be a mapping of job id to combinations")
        combinations = {
            str(j): _mapping_of_mappings(combos, f"combinations.{j}") for j, combos in raw.items()
        }
        return cls(run_id=run_id, jobs=jobs, combinations=combinations)


def _mapping_of_mappings(value: Any, where: str) -> dict[str, Mapping[str, Any]]:
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise ValueError(f"resume {where!r} must be a mapping of id to context")
    return {str(k): dict(v) for k, v in value.items()}


def rerun_problems(plan: JobGraph, prior: Mapping[str, Any]) -> list[str]:
    """Why reusing the outputs of the run whose context is ``prior`` is unsafe, if it is.

    Returns:
        One line per problem, naming the job: a job of the earlier run removed
        from the template, a job whose ``needs`` changed, or (once) an earlier
        run with jobs but no recorded ``needs``. Empty when reuse is safe.
    """
    prior_jobs = _prior_jobs(prior)
    recorded = prior.get("needs")
    problems = [
        f"job {j!r} was removed from the template"
        for j in dict.fromkeys([*prior_jobs, *(recorded if isinstance(recorded, Mapping) else ())])
        if j not in plan.jobs
    ]
    if not isinstance(recorded, Mapping):
        if prior_jobs:
            problems.append(
                "the run predates recorded job needs, so changes to `needs` cannot be checked"
            )
        return problems
    for job_id in plan.order:
        before = recorded.get(job_id)
        if before is None:
            continue  # new to the template: it runs
        now = list(plan.jobs[job_id].needs)
        old = list(before) if isinstance(before, Iterable) else []
        if set(old) != set(now):
            problems.append(f"job {job_id!r} needs changed: {old} -> {now}")
    return problems


def plan_rerun(
    plan: JobGraph,
    prior: Mapping[str, Any],
    *,
    run_id: str,
    from_job: str | None = None,
    force: bool = False,
) -> Resume:
    """What a rerun of run ``run_id`` (context ``prior``) reuses; see the module docstring.

    Args:
        plan: The pipeline as it is now.
        prior: The earlier run's stored context (``{"params", "jobs", "needs"}``,
            as JSON values).
        run_id: The earlier run's id.
        from_job: Rerun this job and its downstream too, even if they succeeded.
        force: Reuse outputs even when :func:`rerun_problems` finds problems.

    Raises:
        RerunError: ``from_job`` is not a job of the pipeline, or there is
            nothing to rerun (``unsafe=False``); the template changed in a way
            that makes reuse unsafe and ``force`` is not given (``unsafe=True``,
            every problem listed).
    """
    if from_job is not None and from_job not in plan.jobs:
        known = ", ".join(plan.order) or "none"
        raise RerunError(
            [f"pipeline {plan.name!r} has no job {from_job!r} to rerun from (jobs: {known})"],
            run_id=run_id,
            pipeline=plan.name,
        )
    if not force:
        problems = rerun_problems(plan, prior)
        if problems:
            raise RerunError(problems, run_id=run_id, pipeline=plan.name, unsafe=True)
    prior_jobs = _prior_jobs(prior)
    not_succeeded = [j for j in plan.order if _status(prior_jobs.get(j)) != _SUCCESS]
    if not not_succeeded and from_job is None:
        raise RerunError(
            [f"run {run_id} succeeded: nothing to rerun; name a job to rerun from"],
            run_id=run_id,
            pipeline=plan.name,
        )
    roots = [*not_succeeded, *([from_job] if from_job is not None else [])]
    rerun = _downstream(plan, roots)
    jobs: dict[str, Mapping[str, Any]] = {}
    combinations: dict[str, Mapping[str, Mapping[str, Any]]] = {}
    for job_id in plan.order:
        ctx = prior_jobs.get(job_id)
        if job_id not in rerun:
            assert ctx is not None  # not rerun: it succeeded, so it has a context
            jobs[job_id] = dict(ctx)
            continue
        job = plan.jobs[job_id]
        if (
            job_id == from_job
            or job.strategy_ids is None
            or ctx is None
            or any(n in rerun for n in job.needs)
        ):
            continue  # runs whole
        strategies = ctx.get("strategies")
        if not isinstance(strategies, Mapping):
            continue
        kept = {
            cid: dict(strategies[cid])
            for cid in job.strategy_ids
            if _status(strategies.get(cid)) == _SUCCESS
        }
        if kept:
            combinations[job_id] = kept
    return Resume(run_id=run_id, jobs=jobs, combinations=combinations)


def _prior_jobs(prior: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    jobs = prior.get("jobs")
    if not isinstance(jobs, Mapping):
        return {}
    return {str(j): ctx for j, ctx in jobs.items() if isinstance(ctx, Mapping)}


def _status(ctx: Any) -> Any:
    return ctx.get("status") if isinstance(ctx, Mapping) else None


def _downstream(plan: JobGraph, roots: Iterable[str]) -> set[str]:
    """``roots`` and every job that needs one of them, directly or through others."""
    found: set[str] = set()
    todo = list(roots)
    while todo:
        job_id = todo.pop()
        if job_id not in found:
            found.add(job_id)
            todo.extend(plan.dependents.get(job_id, ()))
    return found
