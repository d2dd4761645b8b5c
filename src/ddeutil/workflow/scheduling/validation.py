"""What the scheduler needs to know of a pipeline template, and who works it out.

The catalog (:mod:`.catalog`) hands raw templates to a :class:`Validator` and gets,
per template, either the **scheduling facts** (:class:`PipelineFacts`: schedules,
overlap and catch-up policies, the param values of a scheduled run, why it cannot
be scheduled) or a :class:`~ddeutil.workflow.errors.ConfigError` located at file,
template and key. Validating means building the engine's ``Pipeline``; the facts
are small and need no engine to use.

Two validators:

* :class:`InProcessValidator` (the default: tests, the API, the CLI) imports the
  engine lazily, on the first template it validates, in the calling process.
* :class:`~ddeutil.workflow.scheduling.validator_process.ProcessValidator` (the
  daemon) does it in a long-lived helper process, so the daemon's parent
  process never imports the engine.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError, WorkflowError
from ..schedules.cron_schedule import CronSchedule
from ..schedules.planner import Catchup

if TYPE_CHECKING:
    from ..loader import Loader, RawTemplate
    from ..settings import Settings

__all__ = [
    "Concurrency",
    "InProcessValidator",
    "Outcome",
    "PipelineFacts",
    "Validator",
    "as_config_error",
    "pipeline_facts",
]


class Concurrency(str, enum.Enum):
    """A pipeline's overlap policy (``concurrency:``): what a release due while one runs does."""

    ALLOW = "allow"
    """Run side by side (bounded by ``WORKFLOW_CORE_MAX_PIPELINE_POKING``)."""
    SKIP = "skip"
    """Be recorded SKIPPED."""
    QUEUE = "queue"
    """Wait for the run in flight, in release order."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class PipelineFacts:
    """The scheduling facts of one valid pipeline template.

    Attributes:
        schedules: The pipeline's schedules (plain records: no pydantic needed).
        concurrency: The overlap policy.
        catchup: The catch-up policy.
        defaults: The param values of a scheduled run (the defaults, resolved).
        unschedulable: Why the pipeline has schedules but cannot be scheduled.
    """

    schedules: tuple[CronSchedule, ...]
    concurrency: Concurrency
    catchup: Catchup
    defaults: Mapping[str, Any]
    unschedulable: str | None = None


Outcome = PipelineFacts | ConfigError
"""What a validator says of one template: its facts, or why it is invalid."""


class Validator(Protocol):
    """Validates pipeline templates for the scheduler's catalog."""

    def validate(
        self, templates: Sequence[RawTemplate], loader: Loader, settings: Settings
    ) -> list[Outcome]:
        """One outcome per template, in order; never raises for a bad template.

        ``loader`` is the conf index the templates come from (schedule templates
        named by ``on:`` and trigger targets are looked up in it).
        """
        ...

    def close(self) -> None:
        """Release what the validator holds (a helper process). Idempotent."""
        ...


class InProcessValidator:
    """Builds each pipeline in this process (the engine is imported on first use)."""

    def validate(
        self, templates: Sequence[RawTemplate], loader: Loader, settings: Settings
    ) -> list[Outcome]:
        return [pipeline_facts(t, loader, settings) for t in templates]

    def close(self) -> None:
        return None


def pipeline_facts(template: RawTemplate, loader: Loader, settings: Settings) -> Outcome:
    """Build the pipeline ``template`` describes and return its facts (or the error).

    Imports the engine.
    """
    from ..engine.pipeline import Pipeline

    try:
        pipeline = Pipeline.from_template(template, loader=loader, settings=settings)
    except Exception as exc:
        return as_config_error(exc, template)
    defaults: Mapping[str, Any] = {}
    reason: str | None = None
    missing = list(pipeline.params.required_without_default())
    if missing:
        reason = "required param(s) without a default: " + ", ".join(sorted(missing))
    else:
        try:
            defaults = pipeline.params.resolve({}, pipeline=template.name)
        except WorkflowError as exc:
            reason = f"param defaults do not validate: {exc}"
    if not pipeline.on:
        reason = None
    return PipelineFacts(
        schedules=tuple(CronSchedule.of(on) for on in pipeline.on),
        concurrency=Concurrency(pipeline.concurrency),
        catchup=Catchup(pipeline.catchup),
        defaults=defaults,
        unschedulable=reason,
    )


def as_config_error(exc: BaseException, template: RawTemplate) -> ConfigError:
    """``exc`` as a ConfigError located at ``template`` (its file and name)."""
    if isinstance(exc, ConfigError):
        return exc.located(file=str(template.file), template=template.name)
    return ConfigError(
        f"{type(exc).__name__}: {exc}", file=str(template.file), template=template.name
    )
