"""What one worker thread does with one run: handshake, execute, record.

:func:`execute_request` is shared by the daemon's worker processes
(:class:`~ddeutil.workflow.dispatch.processes.ProcessExecutor`) and the in-process
:class:`~ddeutil.workflow.dispatch.threads.ThreadExecutor` (tests, the API). Its policy:

* **A run starts at most once.** Nothing executes before
  :meth:`RunStore.mark_running <ddeutil.workflow.store.base.RunStore.mark_running>`
  returned ``True``. A run that is no longer PENDING (started by an earlier
  daemon, failed by start-up recovery, cancelled) is logged and left alone, so a
  release never runs twice, even across crashes.
* **The executing worker writes the outcome.** The finish record is written by
  the thread that ran the pipeline, not by whoever dispatched it, so a result
  survives a crash of the dispatching process.
* **A started run always ends terminal.** Any exception while building or
  running the pipeline (an edited template that no longer validates, bad
  params, a bug, a ``BaseException`` such as ``KeyboardInterrupt``) is recorded
  as FAILED with its cause, never left RUNNING; a stop of the process itself
  (:func:`~ddeutil.workflow.cancellation.is_process_stop`) is recorded
  CANCELLED and then goes on.
* **An end is never dropped.** When the store refuses the finish record (disk
  full, database down) the :class:`~ddeutil.workflow.store.ends.EndRecorder`
  retries it, then keeps it in its journal until the store takes it.
* **A cancelled run is recorded CANCELLED**, even when the engine reports the
  killed stage as a failure.
* **Nothing secret is stored.** The context, the error records and the error
  summary go through the :class:`~ddeutil.workflow.masking.Masker` first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..cancellation import CancelToken, is_process_stop
from ..clock import Clock
from ..engine.context import RunEvent as EngineEvent
from ..engine.pipeline import Pipeline
from ..engine.pipeline_cache import PipelineCache
from ..engine.rerun import Resume
from ..loader import Loader, RawTemplate
from ..logs import RunLogRouter
from ..masking import Masker
from ..notify.notices import Notifier
from ..notify_rule import NotifyRule
from ..result import ErrorRecord, Result, Status
from ..settings import Settings
from ..store.base import RunStore
from ..store.ends import EndRecorder, RunEnd
from .base import log_extra
from .records import RunRequest

__all__ = ["error_summary", "execute_request"]

logger = logging.getLogger(__name__)


def error_summary(result: Result) -> str | None:
    """A one-line reason for a run that did not succeed (``None`` otherwise)."""
    if result.status in (Status.SUCCESS, Status.SKIPPED):
        return None
    if not result.errors:
        return str(result.status).lower()
    first = result.errors[0]
    where = "/".join(part for part in (first.job, first.stage) if part)
    more = f" (+{len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
    return f"{where}: {first.message}{more}" if where else f"{first.message}{more}"


def execute_request(
    request: RunRequest,
    template: RawTemplate,
    *,
    store: RunStore,
    settings: Settings,
    masker: Masker,
    clock: Clock,
    cancel: CancelToken,
    loader: Loader,
    router: RunLogRouter | None = None,
    on_start: Callable[[], None] | None = None,
    pipelines: PipelineCache | None = None,
    ends: EndRecorder | None = None,
    runner: str | None = None,
    retry_start: bool = False,
    pipeline: Pipeline | None = None,
    on_event: Callable[[EngineEvent], None] | None = None,
) -> Result | None:
    """Run one stored request to its end and record the outcome.

    Steps: the start handshake (``mark_running``), build the pipeline from
    ``template`` (or take it from ``pipelines``), execute it with the request's run id, logical date and
    ``cancel`` token (its log records routed to the run's file when ``router`` is
    given), then ``store.finish`` with the masked context and errors.

    Args:
        request: The run to execute.
        template: The raw template of ``request.version`` (what the dispatcher
            validated, even if the file changed since).
        store: Where the run is recorded.
        settings: Engine settings.
        masker: Hides secret values before anything is stored.
        clock: Time source for the store's timestamps and the engine.
        cancel: Cancelling it stops the run cooperatively (bash process groups are
            killed by the engine); a token already cancelled before the handshake
            leaves the run PENDING and untouched.
        loader: Resolves templates the pipeline refers to (schedules, triggered
            pipelines).
        router: Per-run log files, when enabled.
        on_start: Called once the handshake succeeded, before the run executes.
        pipelines: Pipelines built for earlier runs, reused when the template,
            the loader and the settings are the same.
        ends: Records the run's end, keeping it when the store refuses the
            write (default: one over ``store`` that keeps such ends in memory).
        runner: The owner that executes the run (a Celery worker): the start
            handshake makes the run its own (see ``RunStore.mark_running``) and
            its end is fenced with it. ``None``: the run stays the request's
            owner's.
        retry_start: A start handshake that raises (the store does not answer)
            re-raises, so the caller can deliver the request again later; by
            default the run is recorded FAILED.
        pipeline: The pipeline ``template`` describes, already built by the
            caller (``workflow run`` builds it to check the params first).
        on_event: Called with each stage and job event of the run (the
            foreground summary of ``workflow run``).

    Returns:
        The run's result (also for a run that failed to build, which gets a
        synthesised FAILED result), or ``None`` when this call did not execute
        the run because the handshake refused it (or it was cancelled first).
    """
    extra = log_extra(request)
    env = _Env(
        template,
        store,
        settings,
        masker,
        clock,
        cancel,
        loader,
        pipelines,
        ends or EndRecorder(store),
        runner or request.owner,
        pipeline,
        on_event,
    )
    if cancel.cancelled:
        logger.info("run not started: cancelled before it began (%s)", cancel.reason, extra=extra)
        return None
    start = clock.now()
    try:
        started = store.mark_running(request.run_id, now=start, owner=request.owner, runner=runner)
    except Exception as exc:
        if retry_start:
            raise
        logger.exception("start handshake failed", extra=extra)
        return _fail(request, env, start, exc, "start handshake failed")
    if not started:
        logger.warning(
            "run not started: it is no longer PENDING (started, finished or failed elsewhere) "
            "or no longer this daemon's (taken over)",
            extra=extra,
        )
        return None
    with ExitStack() as stack:
        if router is not None:
            try:
                stack.enter_context(router.capture(request.run_id))
            except OSError as exc:
                logger.warning("no per-run log file: %s", exc, extra=extra)
        logger.debug("run started", extra=extra)  # the engine logs its own start at INFO
        if on_start is not None:
            try:
                on_start()
            except Exception:
                logger.exception("on_start callback failed", extra=extra)
        return _execute(request, env, start)


def _execute(request: RunRequest, env: _Env, start: datetime) -> Result:
    """Build and run a started request, then record its outcome."""
    extra = log_extra(request)
    try:
        result = _build_and_run(request, env, start)
    except Exception as exc:
        if not isinstance(exc, _BuildError):
            logger.exception("pipeline raised instead of returning a result", extra=extra)
        return _fail(request, env, start, exc, "pipeline raised")
    except BaseException as exc:  # the run still ends recorded, then the stop goes on
        if not is_process_stop(exc):
            logger.error("pipeline raised %s", type(exc).__name__, extra=extra)
            return _fail(request, env, start, exc, "pipeline raised")
        _fail(request, env, start, exc, "interrupted", status=Status.CANCELLED)
        raise

    masker, cancel = env.masker, env.cancel
    status = result.status
    if cancel.cancelled and status is Status.FAILED:
        status = Status.CANCELLED
    if status is not result.status:
        result = replace(result, status=status)
    summary = error_summary(result)
    if status is Status.CANCELLED and cancel.reason and not result.errors:
        summary = f"cancelled: {cancel.reason}"
    _finish(
        request,
        env,
        status=status,
        context=masker.data(dict(result.context)),
        errors=tuple(_mask_error(e, masker) for e in result.errors),
        error=masker.text(summary) if summary else None,
    )
    # A success is logged at INFO by the engine already; a failure is repeated
    # here at WARNING with the release it belongs to.
    log = logger.debug if status is Status.SUCCESS else logger.warning
    log("run finished: %s", status.value, extra=extra)
    return result


def _build_and_run(request: RunRequest, env: _Env, start: datetime) -> Result:
    try:
        if env.pipeline is not None:
            pipeline = env.pipeline
        elif env.pipelines is None:
            pipeline = Pipeline.from_template(
                env.template, loader=env.loader, settings=env.settings
            )
        else:
            pipeline = env.pipelines.get(
                env.template,
                loader=env.loader,
                settings=env.settings,
                version=request.version,
            )
        resume = None if request.resume is None else Resume.from_dict(request.resume)
    except Exception as exc:
        raise _BuildError(exc) from exc
    return pipeline.execute(
        dict(request.params),
        run_id=request.run_id,
        # A run without a release has its recorded start as its logical date, so
        # a rerun of it (which takes the start over) sees the same date.
        logical_date=request.logical_date or start.astimezone(env.settings.timezone),
        cancel=env.cancel,
        clock=env.clock,
        settings=env.settings,
        masker=env.masker,
        resume=resume,
        on_event=env.on_event,
    )


@dataclass(frozen=True)
class _Env:
    """What one execution needs besides the request."""

    template: RawTemplate
    store: RunStore
    settings: Settings
    masker: Masker
    clock: Clock
    cancel: CancelToken
    loader: Loader
    pipelines: PipelineCache | None
    ends: EndRecorder
    owner: str | None
    """Whose run it is once started: the fence of its end."""
    pipeline: Pipeline | None = None
    """Built by the caller already (else built from ``template``)."""
    on_event: Callable[[EngineEvent], None] | None = None


class _BuildError(Exception):
    """Marks an exception raised while building the pipeline from its template."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _fail(
    request: RunRequest,
    env: _Env,
    start: datetime,
    exc: BaseException,
    what: str,
    *,
    status: Status = Status.FAILED,
) -> Result:
    """Record (and return) a FAILED result for an exception outside the engine."""
    cause = exc.cause if isinstance(exc, _BuildError) else exc
    if isinstance(exc, _BuildError):
        what = f"cannot build pipeline {request.pipeline!r}"
    kind = type(cause).__name__
    message = env.masker.text(f"{what}: {kind}: {cause}")
    record = ErrorRecord(message=message, kind=kind)
    _finish(request, env, status=status, context=None, errors=(record,), error=message)
    logger.error("run %s: %s", status.value.lower(), message, extra=log_extra(request))
    return Result(
        status=status,
        run_id=request.run_id,
        start=start,
        end=env.clock.now(),
        context={"params": env.masker.data(dict(request.params))},
        errors=(record,),
        pipeline=request.pipeline,
    )


def _finish(
    request: RunRequest,
    env: _Env,
    *,
    status: Status,
    context: Mapping[str, Any] | None,
    errors: tuple[ErrorRecord, ...],
    error: str | None,
) -> None:
    extra = log_extra(request)
    ended = env.clock.now()
    notices = Notifier(env.settings, env.masker).run_end(
        NotifyRule.of_template(env.template.data),
        run_id=request.run_id,
        pipeline=request.pipeline,
        status=status,
        error=error,
        release=request.release,
        ended=ended,
    )
    end = RunEnd(request.run_id, status, ended, context, errors, error, env.owner, notices)
    try:
        written = env.ends.record(end)
    except Exception:
        logger.exception("could not record the run's end (%s)", status.value, extra=extra)
        return
    if written is False:
        logger.warning(
            "run's end (%s) not recorded: the run was already closed by someone else "
            "(e.g. recorded CANCELLED at shutdown)",
            status.value,
            extra=extra,
        )


def _mask_error(error: ErrorRecord, masker: Masker) -> ErrorRecord:
    return replace(error, message=masker.text(error.message))
