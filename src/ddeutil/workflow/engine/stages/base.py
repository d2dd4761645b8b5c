"""What every stage kind shares: common keys, the run loop, retry and timeout.

Common keys (SPEC 3.4): ``name`` (required), ``id``, ``if``, ``retry``,
``timeout``. A stage kind implements only :meth:`BaseStage._run`, which returns
the stage's outputs or raises; :meth:`BaseStage.execute` wraps it with the
policy below and never raises.

Policy:

* **id**: outputs are recorded under ``stages.<id>.outputs``. Without ``id`` and
  with ``WORKFLOW_CORE_STAGE_DEFAULT_ID`` (the default) the id is the slug of the
  name (``"Load Sales!"`` -> ``load-sales``); with it off such a stage records
  nothing. ``id`` and ``name`` may hold ``${{ matrix.* }}`` templates.
* **if**: parsed when the stage is loaded, evaluated before it runs; false ->
  SKIPPED (recorded as ``{"outputs": {}, "skipped": true}``).
* **retry**: ``attempts`` is the total number of tries (default 1), waiting
  ``delay * backoff ** (n - 1)`` seconds before try ``n + 1``. The wait ends
  early on cancel. Template and configuration errors are not retried: they would
  fail the same way again.
* **timeout** (seconds): bash enforces it itself by killing its process group.
  Other kinds run in a helper thread; when the timeout passes the stage is
  FAILED at once and its cancel token is cancelled (an ``empty`` stage's sleep
  and retry waits end; a hook that takes a ``cancel_token`` argument can stop
  cooperatively). Python code cannot be interrupted from outside: a ``run`` body
  or hook that ignores the token keeps running in its abandoned thread, and what
  it returns is discarded.
* **failure**: a failed stage produces an :class:`~ddeutil.workflow.result.ErrorRecord`
  with the job and stage ids and a masked message. Whether the job goes on is
  the job's decision (``WORKFLOW_CORE_STAGE_RAISE_ERROR``); a failed stage then
  records ``{"outputs": {}, "error": {...}}``. A ``BaseException`` that is not
  an ``Exception`` (``KeyboardInterrupt``, ``asyncio.CancelledError``, a custom
  class) fails the stage like any other exception, unless it asks the process
  to stop (:func:`~ddeutil.workflow.cancellation.is_process_stop`).
* **output**: what the stage's code prints to ``sys.stdout``/``sys.stderr``
  is logged line by line into the run's log when logging listens at INFO
  (:mod:`~ddeutil.workflow.engine.stage_output`), else it reaches the process
  output masked (:mod:`~ddeutil.workflow.engine.stdio`).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ...cancellation import CancelToken, is_process_stop
from ...errors import (
    ConditionError,
    ConfigError,
    StageCancelled,
    StageError,
    TemplateError,
    WorkflowError,
)
from ...result import ErrorRecord, Status
from ..conditions import Condition
from ..context import RunContext, RunEvent, StageOutcome
from ..stage_output import stage_output_log
from ..stdio import masked_output
from ..templating import Template, has_expressions, render

if TYPE_CHECKING:
    from ...registry import HookRegistry

__all__ = ["BaseStage", "Retry", "StageCall", "StagePlan", "needs_render", "slugify"]

logger = logging.getLogger(__name__)

_SLUG = re.compile(r"[^a-z0-9_]+")
_NOT_RETRIED = (TemplateError, ConfigError, ConditionError)


def slugify(name: str) -> str:
    """The default stage id for a name: lower case, runs of other characters -> ``-``."""
    return _SLUG.sub("-", name.lower()).strip("-") or "stage"


def needs_render(value: Any, *, env: bool) -> bool:
    """True when rendering ``value`` can change it (checked once, at load).

    With ``env`` any ``$`` counts (``${VAR}``, ``$$``); without it only ``${{ }}``.
    """
    if env:
        if isinstance(value, str):
            return "$" in value
        if isinstance(value, Mapping):
            return any(needs_render(v, env=env) for v in value.values())
        if isinstance(value, (list, tuple)):
            return any(needs_render(v, env=env) for v in value)
        return False
    return has_expressions(value, env=False)


_parse_condition = functools.lru_cache(maxsize=4096)(Condition.parse)


class Retry(BaseModel):
    """``retry:``: a number of attempts, or ``{attempts, delay, backoff}``."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    attempts: int = Field(default=1, ge=1, description="total tries, the first included")
    delay: float = Field(default=0.0, ge=0, description="seconds before the second try")
    backoff: float = Field(default=1.0, ge=1, description="delay multiplier for each later try")

    @model_validator(mode="before")
    @classmethod
    def _from_int(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"attempts": value}
        return value

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        return self.delay * self.backoff ** (attempt - 1)


# model_construct: the defaults need no validation, and building the Retry
# validator at import would cost every process that loads a stage.
_ONE_TRY = Retry.model_construct()


@dataclass(frozen=True)
class StageCall:
    """One try of one stage: its label (for errors and logs) and its cancel token."""

    label: str
    token: CancelToken
    timeout: float | None


class BaseStage(BaseModel):
    """Keys every stage kind accepts; see the module docstring for the policy."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)

    kind: ClassVar[str] = "stage"
    native_timeout: ClassVar[bool] = False
    """True when :meth:`_run` enforces ``timeout`` itself (bash)."""
    logs_prints: ClassVar[bool] = True
    """True when what the stage's thread prints is its output to log (not bash: its
    script's output comes from pipes, logged by the kind itself)."""

    name: str = Field(
        min_length=1, description="what the stage does; logged, may use ${{ matrix.* }}"
    )
    id: str | None = Field(
        default=None,
        min_length=1,
        description="key of stages.<id>.outputs; default: slug of the name",
    )
    if_: str | None = Field(default=None, alias="if", description="condition; false -> SKIPPED")
    retry: Retry = Field(
        default=_ONE_TRY, description="attempts (int) or {attempts, delay, backoff}"
    )
    timeout: float | None = Field(default=None, gt=0, description="seconds before the stage fails")

    @field_validator("if_")
    @classmethod
    def _check_condition(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                _parse_condition(value)
            except (ConditionError, TemplateError) as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("name", "id")
    @classmethod
    def _check_template(cls, value: str | None) -> str | None:
        if value is not None and "$" in value:
            try:
                Template.parse(value)
            except TemplateError as exc:
                raise ValueError(str(exc)) from None
        return value

    # ------------------------------------------------------------------ overrides

    def _run(
        self, plan: StagePlan, ctx: Mapping[str, Any], rc: RunContext, call: StageCall
    ) -> dict[str, Any]:
        """Do the work of this stage kind and return its outputs (or raise)."""
        raise NotImplementedError

    def _kind_templates(self) -> dict[str, Any]:
        """The kind's own keys whose values may hold templates (key -> value)."""
        return {}

    def _body(self, hooks: HookRegistry) -> Any:
        """What the kind resolves once, at compile time (a hook, compiled code)."""
        return None

    def compile(self, hooks: HookRegistry) -> StagePlan:
        """This stage ready to run: its condition parsed, templates found, body bound.

        Raises:
            ConfigError: keyed relative to the stage (a static ``uses`` that no
                hook answers, ``with`` keys the hook does not take).
        """
        return StagePlan(
            stage=self,
            cond=_parse_condition(self.if_) if self.if_ is not None else None,
            name_tpl="$" in self.name,
            id_tpl=self.id is not None and "$" in self.id,
            slug=slugify(self.name),
            templated=frozenset(
                k for k, v in self._kind_templates().items() if needs_render(v, env=True)
            ),
            body=self._body(hooks),
        )

    def templated_values(self) -> list[tuple[str, Any, bool]]:
        """``(key, value, env)`` of every templated key, for load-time reference checks."""
        values: list[tuple[str, Any, bool]] = [("name", self.name, True)]
        if self.id is not None:
            values.append(("id", self.id, True))
        if self.if_ is not None:
            values.append(("if", self.if_, True))
        return values

    # ------------------------------------------------------------------- helpers

    def static_id(self, *, default_id: bool) -> str | None:
        """The output id when it does not depend on templates (else ``None``)."""
        if self.id is not None:
            return None if "$" in self.id else self.id
        if default_id and "$" not in self.name:
            return slugify(self.name)
        return None

    def render(
        self, value: Any, ctx: Mapping[str, Any], rc: RunContext, label: str, *, env: bool = True
    ) -> Any:
        """Render ``value`` against the stage's template context."""
        return render(
            value,
            ctx,
            filters=rc.filters,
            environ=rc.environ,
            stage=label,
            env=env,
            redact=rc.masker.text,
        )


@dataclass(frozen=True, slots=True)
class StagePlan:
    """A stage compiled for running (see :meth:`BaseStage.compile`); runs it with the policy
    of the module docstring.

    Attributes:
        stage: The validated stage.
        cond: Its parsed ``if`` (``None`` without one).
        name_tpl: The name holds templates (rendered per combination).
        id_tpl: The id holds templates.
        slug: The default id of an untemplated name.
        templated: The kind's keys whose values hold templates (the others are
            used as written, never rendered).
        body: What the kind bound at compile time (a hook and its arguments,
            compiled Python, a bash binding), or ``None``.
    """

    stage: BaseStage
    cond: Condition | None
    name_tpl: bool
    id_tpl: bool
    slug: str
    templated: frozenset[str]
    body: Any = None

    def _identity(self, ctx: Mapping[str, Any], rc: RunContext) -> tuple[str, str | None]:
        """(rendered name, output id or ``None``) for this combination."""
        name = self.stage.name
        if self.name_tpl:
            name = str(self.stage.render(name, ctx, rc, self.stage.id or self.slug))
        if self.stage.id is not None:
            key = (
                str(self.stage.render(self.stage.id, ctx, rc, name))
                if self.id_tpl
                else self.stage.id
            )
            return name, key
        if not rc.settings.stage_default_id:
            return name, None
        return name, (slugify(name) if self.name_tpl else self.slug)

    # ----------------------------------------------------------------------- run

    def execute(self, ctx: dict[str, Any], rc: RunContext) -> StageOutcome:
        """Run this stage once for one matrix combination; never raises.

        Records outputs in ``ctx["stages"][id]``, emits a :class:`RunEvent` and
        returns how the stage ended.
        """
        started = time.perf_counter()
        label = self.stage.id or self.slug
        key: str | None = None
        try:
            name, key = self._identity(ctx, rc)
            label = key or name
            if self.cond is not None and not self.cond.evaluate(
                ctx, filters=rc.filters, environ=rc.environ, redact=rc.masker.text
            ):
                rc.log(logger, logging.INFO, "stage %r skipped: `if` is false", name, stage=label)
                if key is not None:
                    ctx["stages"][key] = {"outputs": {}, "skipped": True}
                return self._finish(rc, Status.SKIPPED, started=started, name=name, label=label)
        except WorkflowError as exc:
            return self._failed(
                ctx, rc, exc, started=started, name=self.stage.name, label=label, key=key
            )
        rc.log(logger, logging.DEBUG, "stage %r started", name, stage=label)
        if rc.on_event is not None:
            rc.emit(self._event(rc, "stage_started", Status.RUNNING, 0.0, name=name, label=label))
        outputs: dict[str, Any] | None = None
        error: BaseException | None = None
        cancelled = False
        reason: str | None = None
        retry = self.stage.retry
        for attempt in range(1, retry.attempts + 1):
            if rc.cancel.cancelled:
                cancelled, reason = True, rc.cancel.reason
                break
            try:
                outputs = self._attempt(ctx, rc, label)
                error = None
                break
            except StageCancelled as exc:
                if rc.cancel.cancelled:
                    cancelled, reason = True, str(exc)
                    break
                error = exc
            except _NOT_RETRIED as exc:
                error = exc
                break
            except Exception as exc:
                error = exc
            except BaseException as exc:
                if is_process_stop(exc):
                    raise
                error = exc  # KeyboardInterrupt, CancelledError, ...: a failure like any other
            if attempt < retry.attempts:
                wait = retry.delay_before(attempt)
                rc.log(
                    logger,
                    logging.WARNING,
                    "stage %r try %d of %d failed (%s); retrying in %.3gs",
                    name,
                    attempt,
                    retry.attempts,
                    error,
                    wait,
                    stage=label,
                )
                if rc.cancel.wait(wait):
                    cancelled, reason = True, rc.cancel.reason
                    break
        if cancelled:
            return self._finish(
                rc, Status.CANCELLED, started=started, name=name, label=label, message=reason
            )
        if error is not None:
            return self._failed(ctx, rc, error, started=started, name=name, label=label, key=key)
        if key is not None:
            ctx["stages"][key] = {"outputs": outputs}
        return self._finish(rc, Status.SUCCESS, started=started, name=name, label=label)

    def _attempt(self, ctx: Mapping[str, Any], rc: RunContext, label: str) -> dict[str, Any]:
        if self.stage.timeout is None or self.stage.native_timeout:
            return self._run_masked(ctx, rc, StageCall(label, rc.cancel, self.stage.timeout))
        return self._run_with_timeout(ctx, rc, label, self.stage.timeout)

    def _run_masked(
        self, ctx: Mapping[str, Any], rc: RunContext, call: StageCall
    ) -> dict[str, Any]:
        """:meth:`_run` with what its thread prints masked (see :mod:`..stdio`) and logged."""
        lines = stage_output_log(rc, call.label, rc.masker) if self.stage.logs_prints else None
        if lines is None:
            if not rc.masker.active:  # nothing to mask: no proxy work on the hot path
                return self.stage._run(self, ctx, rc, call)
            with masked_output(rc.masker):
                return self.stage._run(self, ctx, rc, call)
        try:
            with masked_output(rc.masker, lines.feed):
                return self.stage._run(self, ctx, rc, call)
        finally:
            lines.close()

    def _run_with_timeout(
        self, ctx: Mapping[str, Any], rc: RunContext, label: str, timeout: float
    ) -> dict[str, Any]:
        token = rc.cancel.child()
        done = threading.Event()
        box: list[Any] = []

        def work() -> None:
            try:
                box.append((True, self._run_masked(ctx, rc, StageCall(label, token, timeout))))
            except BaseException as exc:
                box.append((False, exc))
            finally:
                done.set()

        thread = threading.Thread(target=work, name=f"stage-{label}", daemon=True)
        thread.start()
        if not done.wait(timeout):
            token.cancel(f"timed out after {timeout:g}s")
            raise StageCancelled(f"timed out after {timeout:g}s", stage=label, job=rc.job)
        ok, value = box[0]
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def _failed(
        self,
        ctx: dict[str, Any],
        rc: RunContext,
        exc: BaseException,
        *,
        started: float,
        name: str,
        label: str,
        key: str | None,
    ) -> StageOutcome:
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, Exception):  # a KeyboardInterrupt's message alone says little
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        message = rc.masker.text(text)
        record = ErrorRecord(message=message, kind=type(exc).__name__, job=rc.job, stage=label)
        rc.log(logger, logging.ERROR, "stage %r failed: %s", name, message, stage=label)
        if key is not None:
            ctx["stages"][key] = {"outputs": {}, "error": {"kind": record.kind, "message": message}}
        return self._finish(
            rc,
            Status.FAILED,
            started=started,
            name=name,
            label=label,
            message=message,
            record=record,
        )

    def _finish(
        self,
        rc: RunContext,
        status: Status,
        *,
        started: float,
        name: str,
        label: str,
        message: str | None = None,
        record: ErrorRecord | None = None,
    ) -> StageOutcome:
        duration = time.perf_counter() - started
        if rc.timeline is not None:
            rc.timeline.add(
                job=rc.job,
                stage=label,
                strategy=rc.strategy,
                name=rc.masker.text(name),
                status=status,
                end=rc.clock.now(),
                duration=duration,
            )
        if status is Status.CANCELLED and record is None:
            text = rc.masker.text(message or "cancelled")
            record = ErrorRecord(message=text, kind="StageCancelled", job=rc.job, stage=label)
        if status is not Status.FAILED:
            rc.log(
                logger,
                logging.INFO,
                "stage %r %s in %.3fs",
                name,
                status.value,
                duration,
                stage=label,
            )
        if rc.on_event is not None:
            error = record.message if record is not None else None
            rc.emit(self._event(rc, "stage", status, duration, name=name, label=label, error=error))
        return StageOutcome(status=status, duration=duration, error=record)

    @staticmethod
    def _event(
        rc: RunContext,
        kind: Literal["stage", "stage_started"],
        status: Status,
        duration: float,
        *,
        name: str,
        label: str,
        error: str | None = None,
    ) -> RunEvent:
        return RunEvent(
            kind=kind,
            run_id=rc.run_id,
            pipeline=rc.pipeline,
            job=rc.job,
            status=status,
            duration=duration,
            stage=label,
            name=rc.masker.text(name),
            strategy=rc.strategy,
            matrix=rc.matrix,
            error=error,
        )


def stage_error(message: str, call: StageCall, rc: RunContext) -> StageError:
    """A :class:`StageError` for this call, message masked."""
    return StageError(rc.masker.text(message), stage=call.label, job=rc.job)
