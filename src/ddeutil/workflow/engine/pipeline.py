"""Pipelines: the template a run is made from, and :meth:`Pipeline.execute`.

```yaml
run_py_local:
  type: ddeutil.workflow.pipeline.Pipeline
  desc: free text
  on: on_every_5_min            # a name, a list of names and/or inline {cron, timezone}
  params: {author-run: str, run-date: datetime}
  concurrency: allow            # allow | skip | queue (the daemon's overlap policy)
  catchup: latest               # none | latest | all   (the daemon's catch-up policy)
  jobs: {...}                   # optional; a pipeline without jobs runs and succeeds
```

Loading (:meth:`Pipeline.from_loader` / :meth:`Pipeline.from_template`) checks
everything that can be known before a run, and raises a
:class:`~ddeutil.workflow.errors.ConfigError` naming file, template and key
(``jobs.load.stages[2].bsh``): unknown keys, the stage kinds, ``needs`` (an
unknown job or a cycle, naming the jobs), static hooks and their arguments,
static trigger targets and trigger loops, template syntax, filters and paths.

Running (:meth:`Pipeline.execute`): params are resolved first (a
:class:`~ddeutil.workflow.errors.ParamError` lists every problem, and nothing
runs); then jobs run in dependency order as soon as their needs succeeded, up to
``WORKFLOW_CORE_MAX_JOB_PARALLEL`` at once on threads (inline when only one can
run at a time). A job whose need did not succeed is SKIPPED; independent jobs
still run. The returned :class:`~ddeutil.workflow.result.Result` is FAILED when
any job failed, CANCELLED when the run was cancelled, SUCCESS otherwise: run
failures never raise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from typing_extensions import Self

from ..cancellation import CancelToken
from ..clock import Clock, SystemClock
from ..errors import (
    ConfigError,
    ParamError,
    ParamProblem,
    PipelineError,
    TemplateNotFound,
    WorkflowError,
    brief,
)
from ..limits import CONTEXT_KEY
from ..masking import Masker
from ..registry import load_filters
from ..result import ErrorRecord, Result, Status
from .context import RunContext, RunEvent, new_run_id, process_environ, stash
from .job import Job, JobOutcome, ancestors, plan_jobs
from .params import ParamSet
from .schema import ON_SCHEMA, config_error
from .stages import HookStage, TriggerStage, hook_registry
from .stages.trigger import find_loop, loop_message

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..loader import Loader, RawTemplate
    from ..schedules.on import On
    from ..settings import Settings

    _Schedules = tuple[On, ...]
else:
    # Validated as a plain tuple (_on_tuple checks that each item is an On), so
    # that the cron machinery is imported only by pipelines that have schedules:
    # a `workflow run` of one without `on` never loads it.
    _Schedules = tuple[Any, ...]

__all__ = ["Pipeline", "RunEvent", "new_run_id"]

logger = logging.getLogger(__name__)


class Pipeline(BaseModel):
    """A pipeline template: schedules, params and jobs. See the module docstring."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, arbitrary_types_allowed=True
    )

    name: str = Field(description="the template name")
    desc: str | None = Field(default=None, description="free text")
    on: Annotated[_Schedules, WithJsonSchema(ON_SCHEMA)] = Field(
        default=(), description="schedules: a template name, a list, or inline {cron, timezone}"
    )
    params: ParamSet = Field(default_factory=ParamSet, description="declared params")
    jobs: dict[str, Job] = Field(default_factory=dict, description="job id to job")
    concurrency: Literal["allow", "skip", "queue"] = Field(
        default="allow", description="daemon: overlapping releases run, are skipped, or queue"
    )
    catchup: Literal["none", "latest", "all"] = Field(
        default="latest", description="daemon: which releases missed while down still run"
    )

    _order: ClassVar[tuple[str, ...]] = ()
    _dependents: ClassVar[dict[str, tuple[str, ...]]] = {}
    _width: ClassVar[int] = 1
    _param_refs: ClassVar[dict[str, str]] = {}
    _bound: ClassVar[bool] = False
    _settings: ClassVar[Settings | None] = None
    _loader: ClassVar[Loader | None] = None

    @field_validator("on", mode="before")
    @classmethod
    def _on_tuple(cls, value: Any) -> Any:
        if value is None:
            return ()
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items:
            return ()
        from ..schedules.on import On

        for item in items:
            if not isinstance(item, On):
                raise ValueError(
                    "schedules are resolved by Pipeline.from_loader / from_template "
                    f"(got {type(item).__name__} {brief(item)})"
                )
        return tuple(items)

    @field_validator("jobs", mode="before")
    @classmethod
    def _job_ids(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            return value
        out: dict[Any, Any] = {}
        for job_id, job in value.items():
            out[job_id] = job
            if isinstance(job, Mapping):
                given = job.get("id", job_id)
                if given != job_id:
                    raise ValueError(f"job {job_id!r} has id {brief(given)}; a job's id is its key")
                out[job_id] = {**job, "id": job_id}
        return out

    def model_post_init(self, context: Any, /) -> None:
        order, dependents, width = plan_jobs(self.jobs)
        stash(self, _order=order, _dependents=dependents, _width=width)

    # --------------------------------------------------------------- builders

    @classmethod
    def from_template(cls, template: RawTemplate, *, loader: Loader, settings: Settings) -> Self:
        """Build and check the pipeline ``template`` describes (see the module docstring).

        Any failure, not only a validation error, is raised as a ConfigError for
        this template (the key path named where the failing model is known), so a
        caller listing many templates can go on with the others. Matrices are
        bounded by ``settings.conf_limits``.

        Raises:
            ConfigError: located at the template's file, name and key
                (:class:`~ddeutil.workflow.errors.ConfLimitError` for a limit).
        """
        data = dict(template.data)
        data.pop("type", None)
        return cls._build(data, template.name, str(template.file), loader, settings)

    @classmethod
    def from_loader(
        cls,
        name: str,
        externals: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
        loader: Loader | None = None,
    ) -> Self:
        """Load the pipeline template ``name`` from the conf folder.

        Args:
            name: Template name.
            externals: Keys shallow-merged over the template's top-level keys
                before validation (e.g. another ``params`` block).
            settings: Default ``Settings.from_env()`` (reads the environment).
            loader: Default ``Loader.from_settings(settings)``.

        Raises:
            TemplateNotFound: no template has that name.
            ConfigError: the template is not a pipeline, or is invalid.
        """
        if settings is None:
            from ..settings import Settings

            settings = Settings.from_env()
        if loader is None:
            from ..loader import Loader

            loader = Loader.from_settings(settings)
        template = loader.get(name)
        kind = loader.resolve_class(template)
        if not issubclass(kind, Pipeline):
            raise template.error(
                f"template {name!r} is a {kind.__name__}, not a pipeline", key="type"
            )
        data = {**template.data, **(externals or {})}
        data.pop("type", None)
        return cls._build(data, template.name, str(template.file), loader, settings)

    @classmethod
    def _build(
        cls, data: dict[str, Any], name: str, file: str, loader: Loader, settings: Settings
    ) -> Self:
        try:
            data["name"] = name
            data["on"] = _schedules(data.get("on"), name, loader, settings)
            try:
                pipeline = cls.model_validate(data, context={CONTEXT_KEY: settings.conf_limits})
            except ValidationError as exc:
                raise config_error(exc) from exc
            pipeline._bind(settings, loader)
        except ConfigError as exc:
            if exc.template is None or exc.template == name:
                raise exc.located(file=file, template=name) from exc
            raise
        except Exception as exc:  # never let one template crash a listing of all of them
            logger.debug("building pipeline %s failed", name, exc_info=True)
            kind = "" if isinstance(exc, WorkflowError) else f"{type(exc).__name__}: "
            raise ConfigError(
                f"the template cannot be built ({kind}{brief(str(exc))})",
                file=file,
                template=name,
            ) from exc
        return pipeline

    def _bind(self, settings: Settings, loader: Loader | None) -> None:
        """Load-time checks that need the settings (hooks, filters) or the loader (triggers)."""
        hooks = hook_registry(settings.registry)
        filters = load_filters(settings.registry_filter)
        refs: dict[str, str] = {}
        for job_id in self._order:
            job = self.jobs[job_id]
            base = f"jobs.{job_id}"
            for index, stage in enumerate(job.stages):
                try:
                    if isinstance(stage, HookStage):
                        stage.bind(hooks)
                    elif isinstance(stage, TriggerStage) and loader is not None:
                        self._check_trigger(stage, loader)
                except ConfigError as exc:
                    raise exc.located(key_prefix=f"{base}.stages[{index}]") from exc
            try:
                found = job.check(
                    ancestors=ancestors(self.jobs, job_id),
                    filters=filters,
                    default_id=settings.stage_default_id,
                )
            except ConfigError as exc:
                raise exc.located(key_prefix=base) from exc
            for param, where in found.items():
                refs.setdefault(param, where)
        stash(self, _param_refs=refs, _settings=settings, _loader=loader, _bound=True)

    def _check_trigger(self, stage: TriggerStage, loader: Loader) -> None:
        target = stage.static_target
        if target is None:
            return
        if target not in loader:
            raise ConfigError(
                f"trigger target {target!r}: no pipeline template has that name", key="trigger"
            )
        kind = loader.resolve_class(loader.get(target))
        if not issubclass(kind, Pipeline):
            raise ConfigError(
                f"trigger target {target!r} is a {kind.__name__}, not a pipeline", key="trigger"
            )
        chain = find_loop(self.name, target, loader)
        if chain is not None:
            raise ConfigError(loop_message(chain[:-1], chain[-1]), key="trigger")

    # -------------------------------------------------------------------- API

    def warnings(self) -> list[str]:
        """Problems that do not stop a manual run but matter to the daemon.

        A pipeline with schedules whose params include a required one without a
        default cannot be released by the scheduler (nobody passes params), so
        it is not scheduled; this says why.
        """
        missing = self.params.required_without_default()
        if self.on and missing:
            return [
                f"pipeline {self.name!r} is not scheduled: its params "
                f"{', '.join(missing)} are required and have no default"
            ]
        return []

    def execute(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        logical_date: datetime | None = None,
        cancel: CancelToken | None = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
        masker: Masker | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
    ) -> Result:
        """Run the pipeline once and return its result.

        Args:
            params: Values for the declared params (coerced; defaults filled).
                Undeclared names are kept, with a warning.
            run_id: Default :func:`new_run_id` (start time in
                ``settings.timezone`` and random hex).
            parent_run_id: The run that triggered this one, if any.
            logical_date: ``release.logical_date`` in templates; default the run's
                start in ``settings.timezone``.
            cancel: Cooperative cancellation; the result is CANCELLED when used.
            clock: Default the system clock.
            settings: Default the settings the pipeline was loaded with, else
                ``Settings.from_env()``.
            masker: Hides secrets in errors, events, bash output and logs.
            on_event: Called as each stage and job finishes.

        Raises:
            ParamError: bad or missing params (all listed), before anything runs.
        """
        return self._execute(
            params,
            run_id=run_id,
            parent_run_id=parent_run_id,
            logical_date=logical_date,
            cancel=cancel,
            clock=clock,
            settings=settings,
            masker=masker,
            on_event=on_event,
            chain=(),
        )

    def _execute(
        self,
        params: Mapping[str, Any] | None,
        *,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        logical_date: datetime | None = None,
        cancel: CancelToken | None = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
        masker: Masker | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
        chain: tuple[str, ...] = (),
    ) -> Result:
        if self.name in chain:
            raise PipelineError(loop_message(chain, self.name), pipeline=self.name)
        if settings is None:
            settings = self._settings
        if settings is None:
            from ..settings import Settings

            settings = Settings.from_env()
        if not self._bound:
            self._bind(settings, self._loader)
        resolved = self.params.resolve(params, pipeline=self.name)
        missing = [p for p in self._param_refs if p not in resolved]
        if missing:
            raise ParamError(
                [
                    ParamProblem(p, f"is used by {self._param_refs[p]} but was not given")
                    for p in missing
                ],
                pipeline=self.name,
            )
        clock = clock if clock is not None else SystemClock()
        run_id = run_id or new_run_id(clock, settings.timezone)
        start = clock.now()
        rc = RunContext(
            run_id=run_id,
            pipeline=self.name,
            settings=settings,
            clock=clock,
            masker=masker if masker is not None else Masker(),
            cancel=cancel if cancel is not None else CancelToken(),
            filters=load_filters(settings.registry_filter),
            environ=process_environ(),
            hooks=hook_registry(settings.registry),
            loader=self._loader,
            on_event=on_event,
            chain=(*chain, self.name),
        )
        jobs_ctx: dict[str, Any] = {}
        base = {
            "params": resolved,
            "jobs": jobs_ctx,
            "release": {"logical_date": logical_date or start.astimezone(settings.timezone)},
            "run_id": run_id,
        }
        rc.log(logger, logging.INFO, "pipeline %r started (run %s)", self.name, run_id)
        outcomes = self._run_jobs(base, jobs_ctx, rc)
        statuses = {o.status for o in outcomes.values()}
        if Status.FAILED in statuses:
            status = Status.FAILED
        elif rc.cancel.cancelled or Status.CANCELLED in statuses:
            status = Status.CANCELLED
        else:
            status = Status.SUCCESS
        errors: list[ErrorRecord] = [
            e for j in self._order if j in outcomes for e in outcomes[j].errors
        ]
        end = clock.now()
        rc.log(
            logger,
            logging.INFO,
            "pipeline %r %s in %.3fs",
            self.name,
            status.value,
            (end - start).total_seconds(),
        )
        return Result(
            status=status,
            run_id=run_id,
            start=start,
            end=end,
            context={
                "params": resolved,
                "jobs": {j: jobs_ctx[j] for j in self._order if j in jobs_ctx},
            },
            errors=tuple(errors),
            parent_run_id=parent_run_id,
            pipeline=self.name,
        )

    # ----------------------------------------------------------- scheduling

    def _run_jobs(
        self, base: Mapping[str, Any], jobs_ctx: dict[str, Any], rc: RunContext
    ) -> dict[str, JobOutcome]:
        outcomes: dict[str, JobOutcome] = {}

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
            if rc.on_event is not None:
                job_rc.emit(
                    RunEvent(
                        kind="job",
                        run_id=rc.run_id,
                        pipeline=rc.pipeline,
                        job=job_id,
                        status=status,
                        duration=0.0,
                        error=reason,
                    )
                )
            key = "skipped" if status is Status.SKIPPED else "cancelled"
            return JobOutcome(status, {"status": status.value, "stages": {}, key: reason})

        def record(job_id: str, outcome: JobOutcome) -> None:
            outcomes[job_id] = outcome
            jobs_ctx[job_id] = outcome.context

        workers = min(rc.settings.max_job_parallel, self._width)
        if workers <= 1:
            for job_id in self._order:
                outcome = blocked(job_id) or self.jobs[job_id].execute(job_id, base, rc)
                record(job_id, outcome)
            return outcomes

        # imported here: pipelines that run one job at a time never pay for the import
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        waiting = {j: len(self.jobs[j].needs) for j in self._order}
        with ThreadPoolExecutor(workers, thread_name_prefix=f"pipeline-{self.name}") as pool:
            running: dict[Future[JobOutcome], str] = {}

            def release(job_ids: Iterator[str] | tuple[str, ...]) -> None:
                todo = list(job_ids)
                while todo:
                    job_id = todo.pop(0)
                    outcome = blocked(job_id)
                    if outcome is None:
                        running[pool.submit(self.jobs[job_id].execute, job_id, base, rc)] = job_id
                        continue
                    record(job_id, outcome)
                    todo.extend(self._ready_after(job_id, waiting))

            try:
                release(j for j in self._order if waiting[j] == 0)
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        job_id = running.pop(future)
                        record(job_id, _outcome_of(future, job_id, rc))
                        release(iter(self._ready_after(job_id, waiting)))
            except BaseException as exc:  # e.g. KeyboardInterrupt: stop the workers, then unwind
                rc.cancel.cancel(f"interrupted ({type(exc).__name__})")
                raise
        return outcomes

    def _ready_after(self, job_id: str, waiting: dict[str, int]) -> list[str]:
        ready = []
        for dependent in self._dependents.get(job_id, ()):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
        return ready


def _schedules(raw_on: Any, name: str, loader: Loader, settings: Settings) -> tuple[On, ...]:
    """Resolve a template's ``on`` (a name, a mapping or a list of those) to schedules."""
    entries = raw_on if isinstance(raw_on, list) else ([] if raw_on is None else [raw_on])
    if not entries:
        return ()
    from ..schedules.on import On  # only pipelines with schedules load the cron machinery

    schedules = []
    for index, entry in enumerate(entries):
        key = f"on[{index}]" if isinstance(raw_on, list) else "on"
        try:
            schedules.append(On.from_value(entry, loader=loader, settings=settings))
        except TemplateNotFound as exc:
            raise ConfigError(
                f"schedule {brief(entry)}: no On template has that name "
                "(inline schedules are mappings such as {cron: '*/5 * * * *'})",
                key=key,
            ) from exc
        except ConfigError as exc:
            located = exc.located(key_prefix=key) if exc.template in (None, name) else exc
            raise located from exc
    return tuple(schedules)


def _outcome_of(future: Future[JobOutcome], job_id: str, rc: RunContext) -> JobOutcome:
    try:
        return future.result()
    except Exception as exc:  # a bug in the engine: record it, never hang the run
        logger.exception("job crashed", extra=rc.log_extra())
        message = rc.masker.text(f"internal error: {exc!r}")
        return JobOutcome(
            Status.FAILED,
            {"status": "FAILED", "stages": {}},
            [ErrorRecord(message, type(exc).__name__, job_id)],
        )
