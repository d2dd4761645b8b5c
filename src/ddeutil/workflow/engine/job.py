"""Jobs: a list of stages run once per matrix combination.

```yaml
jobs:
  extract:
    runs-on: local             # accepted; only `local` for now
    needs: [prepare]           # job ids; checked and ordered when the pipeline loads
    if: "${{ params.mode }} == 'full'"
    strategy: {...}            # see ddeutil.workflow.engine.strategy
    stages: [...]
```

Running a job (:meth:`JobPlan.execute`, compiled once by :meth:`Job.compile`):

* ``if`` false -> the job is SKIPPED (and so are the jobs that need it).
* Each combination runs the stages in order in its own template context
  (``matrix`` plus its own ``stages``; ``params``, ``jobs``, ``release`` and
  ``run_id`` are shared with the run, never copied). A single combination runs
  inline; several run on a thread pool of ``max-parallel`` workers (none when it
  is 1). With ``fail-fast`` the first failed combination cancels those not yet
  started; running ones finish.
* In a rerun, combinations the earlier run completed may be reused (see
  :mod:`~ddeutil.workflow.engine.rerun`): they do not run again, their earlier
  context is kept and they count as SUCCESS; only the others run.
* A failed stage stops its combination and fails it; with
  ``WORKFLOW_CORE_STAGE_RAISE_ERROR=false`` it records its error and the next
  stage runs. A failed combination fails the job; a cancelled run cancels the
  job.
* The job's context is ``{"status", "matrix", "stages"}``, or with several
  combinations ``{"status", "strategies": {<combination id>: {"status",
  "matrix", "stages"}}}``.

Load-time checks (:meth:`Job.check`): every ``${{ }}`` in the job parses; its
filters exist; ``matrix.<k>`` names a key of the job's matrix; ``stages.<id>``
names an earlier stage of the job; ``jobs.<id>`` names a job this one needs
(directly or through others), so its outputs exist when the expression runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import ConditionError, ConfigError, TemplateError, WorkflowError
from ..result import ErrorRecord, Status
from .conditions import Condition
from .context import RunContext
from .schema import LocatesErrors
from .stages import Stage, StagePlan
from .strategy import Combination, Strategy, combination_id
from .templating import Template

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..registry import HookRegistry

__all__ = ["CombinationOutcome", "Job", "JobOutcome", "JobPlan", "ancestors", "plan_jobs"]

logger = logging.getLogger(__name__)

CONTEXT_ROOTS = frozenset({"params", "matrix", "stages", "jobs", "release", "run_id"})


@dataclass(frozen=True, slots=True)
class CombinationOutcome:
    """How one matrix combination of a job ended.

    Attributes:
        status: SUCCESS, FAILED or CANCELLED.
        matrix: The combination's values.
        stages: What its stages recorded (``stages.<id>`` of the template context).
        errors: Its stages' errors, in order.
    """

    status: Status
    matrix: Combination
    stages: dict[str, Any]
    errors: tuple[ErrorRecord, ...] = ()

    def context(self) -> dict[str, Any]:
        """``{"status", "matrix", "stages"}`` as templates and stored contexts show it."""
        return {"status": self.status.value, "matrix": self.matrix, "stages": self.stages}


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How one job of a run ended.

    Attributes:
        status: SUCCESS, FAILED, SKIPPED or CANCELLED.
        combinations: The combinations that ran (none when the job did not start).
        strategy_ids: The combination ids when the job has several (its context
            is then keyed by them under ``strategies``).
        errors: Every error of the job, in order.
        reason: Why a job that never started was SKIPPED or CANCELLED (a need
            not met, the run cancelled); recorded in its context.
    """

    status: Status
    combinations: tuple[CombinationOutcome, ...] = ()
    strategy_ids: tuple[str, ...] | None = None
    errors: tuple[ErrorRecord, ...] = ()
    reason: str | None = None

    def context(self) -> dict[str, Any]:
        """The job's ``jobs.<id>`` entry as templates, stored contexts and the API show it.

        ``{"status", "matrix", "stages"}`` for one combination, ``{"status",
        "strategies": {<id>: ...}}`` for several, ``{"status", "stages": {}}``
        (plus ``skipped`` or ``cancelled`` with the reason) for a job that did
        not run its stages.
        """
        if self.strategy_ids is not None:
            strategies = {
                cid: c.context()
                for cid, c in zip(self.strategy_ids, self.combinations, strict=True)
            }
            return {"status": self.status.value, "strategies": strategies}
        if self.combinations:
            return self.combinations[0].context()
        ctx: dict[str, Any] = {"status": self.status.value, "stages": {}}
        if self.reason is not None:
            ctx["skipped" if self.status is Status.SKIPPED else "cancelled"] = self.reason
        return ctx


def _matrix_label(matrix: Combination) -> str:
    return ", ".join(f"{k}={v}" for k, v in matrix.items())


def _empty_list() -> list[Any]:
    # Not the ``list`` builtin: pydantic reads a factory's signature, and
    # ``inspect.signature(list)`` compiles tokenize's regex (~1.5 ms of a cold start).
    return []


def _no_strategy() -> Strategy:
    # The defaults need no validation; building the Strategy validator for
    # them would cost every cold run of a pipeline without a matrix.
    return Strategy.model_construct()


class Job(LocatesErrors, BaseModel):
    """One job of a pipeline; see the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)

    id: str | None = Field(default=None, description="the job's key (set by the pipeline)")
    desc: str | None = Field(default=None, description="free text")
    runs_on: Literal["local"] = Field(default="local", alias="runs-on", description="only `local`")
    needs: list[str] = Field(
        default_factory=_empty_list, description="ids of jobs that must succeed first"
    )
    if_: str | None = Field(default=None, alias="if", description="condition; false -> SKIPPED")
    strategy: Strategy = Field(
        default_factory=_no_strategy, description="matrix, include, exclude, ..."
    )
    stages: list[Stage] = Field(default_factory=_empty_list, description="run in order")

    @field_validator("runs_on", mode="before")
    @classmethod
    def _local_only(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and set(value) == {"type"}:
            value = value["type"]
        if value != "local":
            raise ValueError(f"only 'local' is supported for now, got {value!r}")
        return value

    @field_validator("needs", mode="before")
    @classmethod
    def _one_need(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        return value

    @field_validator("needs")
    @classmethod
    def _needs_once(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))  # a need written twice counts once

    @field_validator("if_")
    @classmethod
    def _check_condition(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Condition.parse(value)
            except (ConditionError, TemplateError) as exc:
                raise ValueError(str(exc)) from None
        return value

    # ------------------------------------------------------------------ checks

    def check(
        self,
        *,
        ancestors: Iterable[str],
        filters: Mapping[str, Any],
        default_id: bool,
    ) -> dict[str, str]:
        """Check the job's templates against its structure (see the module docstring).

        Args:
            ancestors: Ids of every job this one needs, directly or not.
            filters: The loaded template filters.
            default_id: ``WORKFLOW_CORE_STAGE_DEFAULT_ID``.

        Returns:
            ``{param name: where it is referenced}`` for each ``params.<name>``
            used, so a run can refuse missing params before anything starts.

        Raises:
            ConfigError: keyed relative to the job (``stages[2].with``).
        """
        needed = set(ancestors)
        matrix_keys = (
            self.strategy.keys() if self.strategy.matrix or self.strategy.include else set()
        )
        seen: set[str] = set()
        dynamic_ids = False
        params: dict[str, str] = {}

        def check(value: Any, env: bool, key: str, *, job_level: bool = False) -> None:
            for expr in _expressions(value, env, key):
                root, *rest = [s for s, _ in expr.segments]
                if job_level and root in {"matrix", "stages"}:
                    problem: str | None = (
                        "a job's `if` is evaluated before its stages and matrix run; "
                        "it can read params, jobs, release and run_id"
                    )
                else:
                    problem = _check_path(
                        root,
                        rest=rest,
                        matrix_keys=matrix_keys,
                        stage_ids=seen,
                        dynamic_ids=dynamic_ids,
                        needed=needed,
                    )
                unknown = [n for n, _, _ in expr.filters if n not in filters]
                if problem is None and unknown:
                    known = ", ".join(sorted(filters))
                    problem = f"unknown filter {unknown[0]!r}; known filters: {known}"
                if problem is not None:
                    raise ConfigError(f"{problem} (in {expr.source!r})", key=key)
                if root == "params" and rest:
                    params.setdefault(rest[0], f"jobs.{self.id}.{key}")

        check(self.if_, True, "if", job_level=True)
        for index, stage in enumerate(self.stages):
            where = f"stages[{index}]"
            for key, value, env in stage.templated_values():
                check(value, env, f"{where}.{key}")
            sid = stage.static_id(default_id=default_id)
            if sid is None:
                dynamic_ids = dynamic_ids or stage.id is not None or default_id
            elif sid in seen:
                raise ConfigError(
                    f"two stages of this job record outputs under id {sid!r}; give one an `id`",
                    key=f"{where}.id" if stage.id is not None else f"{where}.name",
                )
            else:
                seen.add(sid)
        return params

    # ---------------------------------------------------------------- compile

    def compile(self, job_id: str, hooks: HookRegistry) -> JobPlan:
        """This job ready to run: condition parsed, combinations listed, stages compiled.

        Raises:
            ConfigError: keyed relative to the job (``stages[2].uses``).
        """
        stages = []
        for index, stage in enumerate(self.stages):
            try:
                stages.append(stage.compile(hooks))
            except ConfigError as exc:
                raise exc.located(key_prefix=f"stages[{index}]") from exc
        combinations = self.strategy.combinations
        return JobPlan(
            id=job_id,
            needs=tuple(self.needs),
            cond=Condition.parse(self.if_) if self.if_ is not None else None,
            combinations=combinations,
            strategy_ids=(
                tuple(combination_id(c) for c in combinations) if len(combinations) > 1 else None
            ),
            max_parallel=self.strategy.max_parallel,
            fail_fast=self.strategy.fail_fast,
            stages=tuple(stages),
        )


@dataclass(frozen=True, slots=True)
class JobPlan:
    """A job compiled for running (see :meth:`Job.compile`); runs it as the module docstring says.

    Attributes:
        id: The job's key in the pipeline.
        needs: Ids of the jobs that must succeed first.
        cond: Its parsed ``if`` (``None`` without one).
        combinations: The matrix combinations, in order (one empty one without a matrix).
        strategy_ids: The combination ids when there are several, else ``None``.
        max_parallel: Combinations running at once.
        fail_fast: The first failed combination cancels those not yet started.
        stages: The compiled stages, in order.
    """

    id: str
    needs: tuple[str, ...]
    cond: Condition | None
    combinations: tuple[Combination, ...]
    strategy_ids: tuple[str, ...] | None
    max_parallel: int
    fail_fast: bool
    stages: tuple[StagePlan, ...]

    def execute(
        self,
        base: Mapping[str, Any],
        rc: RunContext,
        reuse: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> JobOutcome:
        """Run the job for every combination; never raises.

        Args:
            base: The run's shared template context (``params``, ``jobs``,
                ``release``, ``run_id``).
            rc: The run context.
            reuse: In a rerun, combination id -> the earlier context of a
                combination that is not run again (matrix jobs only).
        """
        started = time.perf_counter()
        rc = rc.evolve(job=self.id)
        outcome = self._execute(base, rc, reuse)
        duration = time.perf_counter() - started
        if rc.timeline is not None:
            rc.timeline.add(
                job=self.id,
                stage=None,
                strategy=None,
                name=self.id,
                status=outcome.status,
                end=rc.clock.now(),
                duration=duration,
            )
        rc.log(logger, logging.INFO, "job %r %s in %.3fs", self.id, outcome.status.value, duration)
        if rc.on_event is not None:
            first = next((e.message for e in outcome.errors), None)
            rc.job_finished(
                outcome.status, duration, first if outcome.status is not Status.SUCCESS else None
            )
        return outcome

    def _execute(
        self,
        base: Mapping[str, Any],
        rc: RunContext,
        reuse: Mapping[str, Mapping[str, Any]] | None,
    ) -> JobOutcome:
        if rc.cancel.cancelled:
            return JobOutcome(Status.CANCELLED)
        if self.cond is not None:
            try:
                ok = self.cond.evaluate(
                    base, filters=rc.filters, environ=rc.environ, redact=rc.masker.text
                )
            except WorkflowError as exc:
                message = rc.masker.text(f"job `if` failed: {exc}")
                rc.log(logger, logging.ERROR, "%s", message)
                record = ErrorRecord(message=message, kind=type(exc).__name__, job=rc.job)
                return JobOutcome(Status.FAILED, errors=(record,))
            if not ok:
                rc.log(logger, logging.INFO, "job %r skipped: `if` is false", rc.job)
                return JobOutcome(Status.SKIPPED)
        rc.log(logger, logging.DEBUG, "job %r started", rc.job)
        if self.strategy_ids is None:
            combo = self._combination(self.combinations[0], base, rc, None)
            return JobOutcome(combo.status, (combo,), errors=combo.errors)
        results = self._matrix(base, rc, reuse)
        return JobOutcome(
            _overall(r.status for r in results),
            results,
            strategy_ids=self.strategy_ids,
            errors=tuple(e for r in results for e in r.errors),
        )

    def _combination(
        self, matrix: Combination, base: Mapping[str, Any], rc: RunContext, cid: str | None
    ) -> CombinationOutcome:
        ctx: dict[str, Any] = {
            "params": base["params"],
            "jobs": base["jobs"],
            "release": base["release"],
            "run_id": base["run_id"],
            "matrix": matrix,
            "stages": {},
        }
        if cid is not None or matrix:
            rc = rc.evolve(strategy=cid, matrix=matrix)
        status = Status.SUCCESS
        errors: list[ErrorRecord] = []
        go_on = not rc.settings.stage_raise_error
        for stage in self.stages:
            if rc.cancel.cancelled:
                status = Status.CANCELLED
                break
            out = stage.execute(ctx, rc)
            if out.error is not None:
                errors.append(out.error)
            if out.status is Status.FAILED and not go_on:
                status = Status.FAILED
                break
            if out.status is Status.CANCELLED:
                status = Status.CANCELLED
                break
        if cid is not None and errors:
            label = _matrix_label(matrix)
            errors = [replace(e, message=f"[{label}] {e.message}") for e in errors]
        return CombinationOutcome(status, matrix, ctx["stages"], tuple(errors))

    def _matrix(
        self,
        base: Mapping[str, Any],
        rc: RunContext,
        reuse: Mapping[str, Mapping[str, Any]] | None,
    ) -> tuple[CombinationOutcome, ...]:
        combos, ids = self.combinations, self.strategy_ids or ()
        fail_fast = self.fail_fast
        results: list[CombinationOutcome | None] = [None] * len(combos)
        todo: list[int] | range = range(len(combos))
        if reuse:
            todo = self._reused(reuse, results, rc)
        workers = min(self.max_parallel, len(todo))
        if workers <= 1:
            for i in todo:
                matrix = combos[i]
                result = results[i] = self._combination(matrix, base, rc, ids[i])
                if fail_fast and result.status is Status.FAILED:
                    break
        else:
            # imported here: runs without a parallel matrix never pay for the import
            from concurrent.futures import ThreadPoolExecutor, as_completed

            with ThreadPoolExecutor(workers, thread_name_prefix=f"job-{rc.job}") as pool:
                futures: dict[Future[CombinationOutcome], int] = {
                    pool.submit(self._combination, combos[i], base, rc, ids[i]): i for i in todo
                }
                try:
                    for future in as_completed(futures):
                        if future.cancelled():
                            continue
                        i = futures[future]
                        result = results[i] = _result_of(future, combos[i], rc)
                        if fail_fast and result.status is Status.FAILED:
                            for other in futures:
                                other.cancel()
                except BaseException as exc:  # e.g. KeyboardInterrupt: stop the workers first
                    rc.cancel.cancel(f"interrupted ({type(exc).__name__})")
                    raise
        return tuple(
            r if r is not None else CombinationOutcome(Status.CANCELLED, combos[i], {})
            for i, r in enumerate(results)
        )

    def _reused(
        self,
        reuse: Mapping[str, Mapping[str, Any]],
        results: list[CombinationOutcome | None],
        rc: RunContext,
    ) -> list[int]:
        """Fill ``results`` with the reused combinations; the positions left to run."""
        todo = []
        for i, cid in enumerate(self.strategy_ids or ()):
            prior = reuse.get(cid)
            if prior is None:
                todo.append(i)
            else:
                stages = prior.get("stages")
                stages = dict(stages) if isinstance(stages, Mapping) else {}
                results[i] = CombinationOutcome(Status.SUCCESS, self.combinations[i], stages)
        rc.log(
            logger,
            logging.INFO,
            "job %r reuses %d of %d combinations",
            rc.job,
            len(results) - len(todo),
            len(results),
        )
        return todo


def _result_of(
    future: Future[CombinationOutcome], matrix: Combination, rc: RunContext
) -> CombinationOutcome:
    try:
        return future.result()
    except Exception as exc:  # a bug in the engine: keep the run honest, never hang
        logger.exception("combination crashed", extra=rc.log_extra())
        record = ErrorRecord(
            message=rc.masker.text(f"internal error: {exc!r}"), kind=type(exc).__name__, job=rc.job
        )
        return CombinationOutcome(Status.FAILED, matrix, {}, (record,))


def _overall(statuses: Iterable[Status]) -> Status:
    seen = set(statuses)
    if Status.FAILED in seen:
        return Status.FAILED
    if Status.CANCELLED in seen:
        return Status.CANCELLED
    return Status.SUCCESS


def _expressions(value: Any, env: bool, key: str) -> list[Any]:
    found: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "${{" in item:
                try:
                    found.extend(Template.parse(item, env=env).expressions)
                except TemplateError as exc:
                    raise ConfigError(str(exc), key=key) from None
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return found


def _check_path(
    root: str,
    *,
    rest: list[str],
    matrix_keys: set[str],
    stage_ids: set[str],
    dynamic_ids: bool,
    needed: set[str],
) -> str | None:
    """Why ``root.rest`` cannot exist when the expression runs, or ``None``."""
    if root not in CONTEXT_ROOTS:
        return f"unknown path root {root!r}; a path starts with {', '.join(sorted(CONTEXT_ROOTS))}"
    if not rest:
        return None
    head = rest[0]
    if root == "matrix" and head not in matrix_keys:
        known = ", ".join(sorted(matrix_keys)) or "none: the job has no matrix"
        return f"matrix key {head!r} is not in the job's matrix (keys: {known})"
    if root == "stages" and head not in stage_ids and not dynamic_ids:
        known = ", ".join(sorted(stage_ids)) or "none"
        return f"no earlier stage of this job has id {head!r} (earlier ids: {known})"
    if root == "jobs" and head not in needed:
        return f"job {head!r} is not among this job's needs, so its outputs may not exist yet"
    return None


# ------------------------------------------------------------------ needs


def plan_jobs(jobs: Mapping[str, Job]) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]], int]:
    """Check ``needs`` and return (topological order, dependents, widest level).

    The order keeps the written order among jobs that are ready together.

    Raises:
        ConfigError: an unknown need (``jobs.<id>.needs``) or a cycle (naming its jobs).
    """
    for job_id, job in jobs.items():
        for need in job.needs:
            if need not in jobs:
                known = ", ".join(jobs) or "none"
                raise ConfigError(
                    f"job {job_id!r} needs unknown job {need!r} (jobs: {known})",
                    key=f"jobs.{job_id}.needs",
                )
            if need == job_id:
                raise ConfigError(f"job {job_id!r} needs itself", key=f"jobs.{job_id}.needs")
    dependents: dict[str, list[str]] = {j: [] for j in jobs}
    for job_id, job in jobs.items():
        for need in dict.fromkeys(job.needs):
            dependents[need].append(job_id)
    waiting = {j: len(set(job.needs)) for j, job in jobs.items()}
    level = dict.fromkeys(jobs, 0)
    order: list[str] = []
    ready = [j for j in jobs if waiting[j] == 0]
    while ready:
        job_id = ready.pop(0)
        order.append(job_id)
        for dependent in dependents[job_id]:
            level[dependent] = max(level[dependent], level[job_id] + 1)
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    if len(order) < len(jobs):
        cycle = _cycle({j: jobs[j].needs for j in jobs if j not in order})
        raise ConfigError(
            f"jobs form a cycle in `needs`: {' -> '.join(cycle)}", key=f"jobs.{cycle[0]}.needs"
        )
    widths: dict[int, int] = {}
    for value in level.values():
        widths[value] = widths.get(value, 0) + 1
    return (
        tuple(order),
        {k: tuple(v) for k, v in dependents.items() if v},
        max(widths.values(), default=1),
    )


def _cycle(needs: Mapping[str, list[str]]) -> list[str]:
    """One cycle among jobs that could not be ordered, as ``[a, b, ..., a]``."""
    start = next(iter(needs))
    path = [start]
    seen = {start: 0}
    current = start
    while True:
        current = next(n for n in needs[current] if n in needs)
        if current in seen:
            return [*path[seen[current] :], current]
        seen[current] = len(path)
        path.append(current)


def ancestors(jobs: Mapping[str, Job], job_id: str) -> set[str]:
    """Every job ``job_id`` needs, directly or through others."""
    found: set[str] = set()
    todo = list(jobs[job_id].needs)
    while todo:
        need = todo.pop()
        if need not in found:
            found.add(need)
            todo.extend(jobs[need].needs)
    return found
