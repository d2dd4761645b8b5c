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

Running a job (:meth:`Job.execute`):

* ``if`` false -> the job is SKIPPED (and so are the jobs that need it).
* Each combination runs the stages in order in its own template context
  (``matrix`` plus its own ``stages``; ``params``, ``jobs``, ``release`` and
  ``run_id`` are shared with the run, never copied). A single combination runs
  inline; several run on a thread pool of ``max-parallel`` workers (none when it
  is 1). With ``fail-fast`` the first failed combination cancels those not yet
  started; running ones finish.
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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import ConditionError, ConfigError, TemplateError, WorkflowError
from ..result import ErrorRecord, Status
from .conditions import Condition
from .context import RunContext, RunEvent, stash
from .schema import LocatesErrors
from .stages import BaseStage, Stage
from .strategy import Combination, Strategy, combination_id
from .templating import Template

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["Job", "JobOutcome", "ancestors", "plan_jobs"]

logger = logging.getLogger(__name__)

CONTEXT_ROOTS = frozenset({"params", "matrix", "stages", "jobs", "release", "run_id"})


@dataclass
class JobOutcome:
    """How one job of a run ended: its status, its context and its errors."""

    status: Status
    context: dict[str, Any]
    errors: list[ErrorRecord] = field(default_factory=list)
    duration: float = 0.0


@dataclass
class _Combo:
    status: Status
    matrix: Combination
    stages: dict[str, Any]
    errors: list[ErrorRecord]

    def context(self) -> dict[str, Any]:
        return {"status": self.status.value, "matrix": self.matrix, "stages": self.stages}


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

    _cond: ClassVar[Condition | None] = None
    _ids: ClassVar[tuple[str, ...]] = ()

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

    def model_post_init(self, context: Any, /) -> None:
        stash(
            self,
            _cond=Condition.parse(self.if_) if self.if_ is not None else None,
            _ids=tuple(combination_id(c) for c in self.strategy.combinations),
        )

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

    # -------------------------------------------------------------------- run

    def execute(self, job_id: str, base: Mapping[str, Any], rc: RunContext) -> JobOutcome:
        """Run the job for every combination; never raises.

        Args:
            job_id: The job's key in the pipeline.
            base: The run's shared template context (``params``, ``jobs``,
                ``release``, ``run_id``).
            rc: The run context.
        """
        started = time.perf_counter()
        rc = rc.evolve(job=job_id)
        outcome = self._execute(base, rc)
        outcome.duration = time.perf_counter() - started
        rc.log(
            logger,
            logging.INFO,
            "job %r %s in %.3fs",
            job_id,
            outcome.status.value,
            outcome.duration,
        )
        if rc.on_event is not None:
            first = next((e.message for e in outcome.errors), None)
            rc.emit(
                RunEvent(
                    kind="job",
                    run_id=rc.run_id,
                    pipeline=rc.pipeline,
                    job=job_id,
                    status=outcome.status,
                    duration=outcome.duration,
                    error=first if outcome.status is not Status.SUCCESS else None,
                )
            )
        return outcome

    def _execute(self, base: Mapping[str, Any], rc: RunContext) -> JobOutcome:
        if rc.cancel.cancelled:
            return JobOutcome(Status.CANCELLED, {"status": Status.CANCELLED.value, "stages": {}})
        if self._cond is not None:
            try:
                ok = self._cond.evaluate(
                    base, filters=rc.filters, environ=rc.environ, redact=rc.masker.text
                )
            except WorkflowError as exc:
                message = rc.masker.text(f"job `if` failed: {exc}")
                rc.log(logger, logging.ERROR, "%s", message)
                record = ErrorRecord(message=message, kind=type(exc).__name__, job=rc.job)
                return JobOutcome(Status.FAILED, {"status": "FAILED", "stages": {}}, [record])
            if not ok:
                rc.log(logger, logging.INFO, "job %r skipped: `if` is false", rc.job)
                return JobOutcome(Status.SKIPPED, {"status": "SKIPPED", "stages": {}})
        rc.log(logger, logging.DEBUG, "job %r started", rc.job)
        combos = self.strategy.combinations
        if len(combos) == 1:
            combo = self._combination(combos[0], base, rc, None)
            return JobOutcome(combo.status, combo.context(), combo.errors)
        results = self._matrix(base, rc)
        status = _overall(r.status for r in results)
        errors = [e for r in results for e in r.errors]
        strategies = {cid: r.context() for cid, r in zip(self._ids, results, strict=True)}
        return JobOutcome(status, {"status": status.value, "strategies": strategies}, errors)

    def _combination(
        self, matrix: Combination, base: Mapping[str, Any], rc: RunContext, cid: str | None
    ) -> _Combo:
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
        stage: BaseStage
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
        return _Combo(status, matrix, ctx["stages"], errors)

    def _matrix(self, base: Mapping[str, Any], rc: RunContext) -> list[_Combo]:
        combos = self.strategy.combinations
        fail_fast = self.strategy.fail_fast
        workers = min(self.strategy.max_parallel, len(combos))
        results: list[_Combo | None] = [None] * len(combos)
        if workers == 1:
            failed = False
            for i, matrix in enumerate(combos):
                if failed and fail_fast:
                    break
                results[i] = self._combination(matrix, base, rc, self._ids[i])
                failed = results[i].status is Status.FAILED  # type: ignore[union-attr]
        else:
            # imported here: runs without a parallel matrix never pay for the import
            from concurrent.futures import ThreadPoolExecutor, as_completed

            with ThreadPoolExecutor(workers, thread_name_prefix=f"job-{rc.job}") as pool:
                futures: dict[Future[_Combo], int] = {
                    pool.submit(self._combination, matrix, base, rc, self._ids[i]): i
                    for i, matrix in enumerate(combos)
                }
                try:
                    for future in as_completed(futures):
                        if future.cancelled():
                            continue
                        i = futures[future]
                        results[i] = _result_of(future, combos[i], rc)
                        if fail_fast and results[i].status is Status.FAILED:  # type: ignore[union-attr]
                            for other in futures:
                                other.cancel()
                except BaseException as exc:  # e.g. KeyboardInterrupt: stop the workers first
                    rc.cancel.cancel(f"interrupted ({type(exc).__name__})")
                    raise
        return [
            r if r is not None else _Combo(Status.CANCELLED, combos[i], {}, [])
            for i, r in enumerate(results)
        ]


def _result_of(future: Future[_Combo], matrix: Combination, rc: RunContext) -> _Combo:
    try:
        return future.result()
    except Exception as exc:  # a bug in the engine: keep the run honest, never hang
        logger.exception("combination crashed", extra=rc.log_extra())
        record = ErrorRecord(
            message=rc.masker.text(f"internal error: {exc!r}"), kind=type(exc).__name__, job=rc.job
        )
        return _Combo(Status.FAILED, matrix, {}, [record])


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
