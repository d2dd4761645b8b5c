"""The trigger stage: run another pipeline in this process, as a child run.

```yaml
- name: "Refresh the mart"
  trigger: refresh-sales-mart            # a pipeline template name; may be templated
  params:
    run-date: ${{ params.run-date }}
```

The child run gets its own run id, this run's id as ``parent_run_id``, this
run's logical date, cancel token, clock, settings and masker. Its params are
checked like any run's: bad params fail this stage before the child starts.

Loops are refused, never recursed: every run carries the chain of pipelines
that triggered it, and a trigger to a pipeline already in the chain (``A -> A``,
``A -> B -> A``) fails with a :class:`~ddeutil.workflow.errors.PipelineError`
naming the chain. A trigger whose target is written without templates is also
checked when the pipeline loads: an unknown target, or a loop through targets
written without templates, is a load error.

Outputs: the child's result context (``params``, ``jobs``) and its ``run_id``.
A child that fails fails this stage with the child's first error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from ...errors import ParamError, PipelineError, StageCancelled
from ...result import Status
from ..context import RunContext, RunOptions
from .base import BaseStage, StageCall, StagePlan, needs_render, stage_error

if TYPE_CHECKING:
    from ...loader import Loader

__all__ = ["TriggerStage", "find_loop", "loop_message", "static_triggers"]


def loop_message(chain: tuple[str, ...], target: str) -> str:
    """``trigger loop: a -> b -> a`` for a chain that reaches ``target`` again."""
    return f"trigger loop refused: {' -> '.join((*chain, target))}"


class TriggerStage(BaseStage):
    """``trigger``: a pipeline name; ``params``: its params (templated)."""

    kind: ClassVar[str] = "trigger"

    trigger: str = Field(min_length=1, description="name of the pipeline to run")
    params: dict[str, Any] = Field(default_factory=dict, description="params of the child run")

    def _kind_templates(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "params": self.params}

    def templated_values(self) -> list[tuple[str, Any, bool]]:
        return [
            *super().templated_values(),
            ("trigger", self.trigger, True),
            ("params", self.params, True),
        ]

    @property
    def static_target(self) -> str | None:
        """The target pipeline when it is written without templates."""
        return None if needs_render(self.trigger, env=True) else self.trigger

    def _run(
        self, plan: StagePlan, ctx: Mapping[str, Any], rc: RunContext, call: StageCall
    ) -> dict[str, Any]:
        templated = plan.templated
        target = (
            str(self.render(self.trigger, ctx, rc, call.label))
            if "trigger" in templated
            else self.trigger
        )
        if target in rc.chain:
            raise PipelineError(loop_message(rc.chain, target), pipeline=target)
        child = rc.pipelines(target, rc.settings)
        params = (
            self.render(self.params, ctx, rc, call.label) if "params" in templated else self.params
        )
        release = ctx.get("release") or {}
        options = RunOptions(
            parent_run_id=rc.run_id,
            logical_date=release.get("logical_date"),
            cancel=call.token,
            clock=rc.clock,
            settings=rc.settings,
            masker=rc.masker,
            on_event=rc.on_event,
            chain=rc.chain,
        )
        try:
            result = child.run(params, options)
        except ParamError as exc:
            raise stage_error(f"trigger {target!r}: {exc}", call, rc) from exc
        if result.status is Status.CANCELLED:
            raise StageCancelled(
                f"triggered pipeline {target!r} was cancelled", stage=call.label, job=rc.job
            )
        if result.status is Status.FAILED:
            first = result.errors[0] if result.errors else None
            where = f" (job {first.job}, stage {first.stage}): {first.message}" if first else ""
            raise stage_error(
                f"triggered pipeline {target!r} run {result.run_id} FAILED{where}", call, rc
            )
        return {**result.context, "run_id": result.run_id}


def static_triggers(data: Mapping[str, Any]) -> list[str]:
    """Targets of trigger stages written without templates, in a raw pipeline mapping."""
    found = []
    jobs = data.get("jobs")
    for job in jobs.values() if isinstance(jobs, Mapping) else ():
        stages = job.get("stages") if isinstance(job, Mapping) else None
        for stage in stages if isinstance(stages, list) else ():
            target = stage.get("trigger") if isinstance(stage, Mapping) else None
            if isinstance(target, str) and "${{" not in target:
                found.append(target)
    return found


def find_loop(origin: str, first: str, loader: Loader) -> tuple[str, ...] | None:
    """The trigger chain from ``origin`` through ``first`` that reaches a pipeline twice."""
    visited: set[str] = set()

    def walk(path: tuple[str, ...]) -> tuple[str, ...] | None:
        name = path[-1]
        if name in path[:-1]:
            return path
        if name in visited or name not in loader:
            return None
        visited.add(name)
        for target in static_triggers(loader.get(name).data):
            found = walk((*path, target))
            if found is not None:
                return found
        return None

    return walk((origin, first))
