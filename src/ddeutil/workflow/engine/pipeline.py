"""Pipelines: the template a run is made from, compiled once, and :meth:`Pipeline.execute`.

```yaml
run_py_local:
  type: ddeutil.workflow.pipeline.Pipeline
  desc: free text
  on: on_every_5_min            # a name, a list of names and/or inline {cron, timezone}
  params: {author-run: str, run-date: datetime}
  concurrency: allow            # allow | skip | queue (the daemon's overlap policy)
  catchup: latest               # none | latest | all   (the daemon's catch-up policy)
  queue: etl                    # optional; the Celery queue its runs go to (executor celery)
  timeout: 3600                 # optional; seconds, then the run is cancelled: FAILED (timeout)
  notify: {on: [failure]}       # optional; who is told of failures (see notify_rule)
  jobs: {...}                   # optional; a pipeline without jobs runs and succeeds
```

Loading (:meth:`Pipeline.from_loader` / :meth:`Pipeline.from_template`) checks
everything that can be known before a run, and raises a
:class:`~ddeutil.workflow.errors.ConfigError` naming file, template and key
(``jobs.load.stages[2].bsh``): unknown keys, the stage kinds, ``needs`` (an
unknown job or a cycle, naming the jobs), static hooks and their arguments,
static trigger targets and trigger loops, template syntax, filters and paths.

Loading also compiles the pipeline into its frozen
:class:`~ddeutil.workflow.engine.plan.ExecutionPlan` (:meth:`Pipeline.compile`),
once: job order, dependents, parallel width, parsed conditions, bound hooks and
code. :meth:`Pipeline.execute` runs that plan (see
:mod:`ddeutil.workflow.engine.plan` for what a run does). A pipeline validated
directly (``Pipeline.model_validate``, no loader) has no plan: each of its runs
compiles one for that run's settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import Self

from ..cancellation import CancelToken
from ..clock import Clock
from ..errors import ConfigError, TemplateNotFound, WorkflowError, brief
from ..limits import CONTEXT_KEY
from ..masking import Masker
from ..notify_rule import NotifyRule
from ..registry import load_filters
from ..result import Result
from ..settings import QUEUE_NAME, QUEUE_RULE
from .context import RunEvent, RunOptions, new_run_id
from .job import Job, ancestors, plan_jobs
from .params import ParamSet
from .plan import ExecutionPlan
from .schema import ON_SCHEMA, config_error
from .stages import TriggerStage, hook_registry
from .stages.trigger import find_loop, loop_message

if TYPE_CHECKING:
    from ..loader import Loader, RawTemplate
    from ..schedules.on import On
    from ..settings import Settings
    from .rerun import Resume

    _Schedules = tuple[On, ...]
else:
    # Validated as a plain tuple (_on_tuple checks that each item is an On), so
    # that the cron machinery is imported only by pipelines that have schedules:
    # a `workflow run` of one without `on` never loads it.
    _Schedules = tuple[Any, ...]

__all__ = ["ExecutionPlan", "Pipeline", "RunEvent", "RunOptions", "new_run_id"]

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
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="seconds a run may take; then it is cancelled and recorded FAILED "
        "(timeout). Default WORKFLOW_CORE_PIPELINE_TIMEOUT",
    )
    queue: str | None = Field(
        default=None,
        description="the Celery queue its runs are sent to (default WORKFLOW_CELERY_QUEUE)",
        json_schema_extra={"pattern": f"^{QUEUE_NAME.pattern}$"},
    )
    notify: NotifyRule | None = Field(
        default=None,
        description="who is told of failures, recoveries and missed releases "
        "(defaults WORKFLOW_NOTIFY_*)",
    )

    compiled: SkipJsonSchema[Any] = Field(
        default=None,
        exclude=True,
        repr=False,
        description="the ExecutionPlan (set by from_loader / from_template, never given)",
    )
    """The plan, as a plain field: a pydantic private attribute would cost about
    1.9 us per run to read (5% of a warm three-stage run). Read it as :attr:`plan`."""

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

    @field_validator("queue")
    @classmethod
    def _queue_name(cls, value: str | None) -> str | None:
        if value is not None and not QUEUE_NAME.fullmatch(value):
            raise ValueError(f"{brief(value)}: {QUEUE_RULE}")
        return value

    @field_validator("compiled", mode="before")
    @classmethod
    def _not_given(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("unknown key 'compiled': a plan is compiled when the pipeline loads")
        return value

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
        plan_jobs(self.jobs)  # an unknown need or a cycle is refused here, at validation

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
            plan = pipeline.compile(settings, loader)
            pipeline = pipeline.model_copy(update={"compiled": plan})
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

    def compile(self, settings: Settings, loader: Loader | None = None) -> ExecutionPlan:
        """The frozen plan a run follows; see the module docstring.

        Checks what needs the settings (hooks, filters) or the loader (trigger
        targets and loops; skipped without a loader). Trigger stages find their
        targets through ``loader`` (``Loader.from_settings`` of the run's
        settings without one).

        Raises:
            ConfigError: keyed ``jobs.<id>.stages[<n>]....`` (not located at a file).
        """
        order, dependents, width = plan_jobs(self.jobs)
        hooks = hook_registry(settings.registry, settings.hook_paths)
        filters = load_filters(settings.registry_filter)
        refs: dict[str, str] = {}
        jobs = {}
        for job_id in order:
            job = self.jobs[job_id]
            base = f"jobs.{job_id}"
            try:
                if loader is not None:
                    for index, stage in enumerate(job.stages):
                        if isinstance(stage, TriggerStage):
                            try:
                                self._check_trigger(stage, loader)
                            except ConfigError as exc:
                                raise exc.located(key_prefix=f"stages[{index}]") from exc
                jobs[job_id] = job.compile(job_id, hooks)
                found = job.check(
                    ancestors=ancestors(self.jobs, job_id),
                    filters=filters,
                    default_id=settings.stage_default_id,
                )
            except ConfigError as exc:
                raise exc.located(key_prefix=base) from exc
            for param, where in found.items():
                refs.setdefault(param, where)
        return ExecutionPlan(
            name=self.name,
            params=self.params,
            order=order,
            dependents=dependents,
            width=width,
            param_refs=refs,
            jobs=jobs,
            settings=settings,
            pipelines=_pipeline_source(loader),
            timeout=self.timeout,
        )

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

    @property
    def plan(self) -> ExecutionPlan | None:
        """The plan compiled when the pipeline was loaded (``None`` when validated directly)."""
        plan: ExecutionPlan | None = self.compiled
        return plan

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
        resume: Resume | None = None,
    ) -> Result:
        """Run the pipeline once and return its result (its plan's :meth:`ExecutionPlan.run`).

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
            on_event: Called as each stage starts and as each stage and job finishes
                (:class:`~ddeutil.workflow.engine.context.RunEvent`).
            resume: For a rerun: what it takes over from the earlier run
                (:func:`~ddeutil.workflow.engine.rerun.plan_rerun`).

        Raises:
            ParamError: bad or missing params (all listed), before anything runs.
        """
        plan: ExecutionPlan | None = self.compiled
        if plan is None:  # validated directly: compiled for this run only
            if settings is None:
                from ..settings import Settings

                settings = Settings.from_env()
            plan = self.compile(settings)
        options = RunOptions(
            run_id=run_id,
            parent_run_id=parent_run_id,
            logical_date=logical_date,
            cancel=cancel,
            clock=clock,
            settings=settings,
            masker=masker,
            on_event=on_event,
            resume=resume,
        )
        return plan.run(params, options)


def _pipeline_source(loader: Loader | None) -> Callable[[str, Settings], ExecutionPlan]:
    """How trigger stages of a pipeline built with ``loader`` find their targets."""

    def find(name: str, settings: Settings) -> ExecutionPlan:
        from ..loader import Loader

        source = loader if loader is not None else Loader.from_settings(settings)
        child = Pipeline.from_loader(name, loader=source, settings=settings)
        assert child.plan is not None  # from_loader always compiles
        return child.plan

    return find


def _schedules(raw_on: Any, name: str, loader: Loader, settings: Settings) -> tuple[On, ...]:
    """Resolve a template's ``on`` (a name, a mapping or a list of those) to schedules.

    ``H`` items are seeded by the pipeline's ``name``: each pipeline gets its own values.
    """
    entries = raw_on if isinstance(raw_on, list) else ([] if raw_on is None else [raw_on])
    if not entries:
        return ()
    from ..schedules.on import On  # only pipelines with schedules load the cron machinery

    schedules = []
    for index, entry in enumerate(entries):
        key = f"on[{index}]" if isinstance(raw_on, list) else "on"
        try:
            schedules.append(On.from_value(entry, loader=loader, settings=settings, seed=name))
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
