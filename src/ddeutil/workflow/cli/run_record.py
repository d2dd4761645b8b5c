"""``workflow run`` with its run recorded in the run store (a manual run in the history).

Imported only when the run is recorded (see :func:`~.run.recording_url`), so a
``workflow run`` without a run store loads no store module. Policies:

* **Recorded like a daemon run.** The run is created PENDING with trigger
  ``manual`` and the masked params, held by a client owner
  (:class:`~ddeutil.workflow.dispatch.client.ClientLease`), then executed by the
  same :func:`~ddeutil.workflow.dispatch.execute.execute_request` as the
  daemon's workers: start handshake, per-run log file, masked context and
  errors, the end retried and journaled when the store refuses it. No release
  is claimed, so it never competes with a daemon.
* **A client that dies is cleaned up**: the lease is taken over by a daemon once
  it ran out, and the run is recorded FAILED, never left RUNNING.
* **Cancel from anywhere.** Ctrl-C / SIGTERM cancel the run (``run.py``); so
  does ``workflow cancel RUN_ID`` or the API from another shell or machine,
  through the lease thread, which asks the store once a second. Either way the
  run ends recorded CANCELLED.
* **A store that does not answer before the run starts** stops the command
  (:class:`RecordingUnavailableError`, exit 2, naming the store): nothing has run.
  Afterwards the run goes on and its end is kept like a daemon's.
* **Lean**: the lease thread is the only thread added; no pool.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..clock import Clock, SystemClock
from ..dispatch.cancel_watch import CANCEL_REASON
from ..dispatch.client import ClientLease
from ..dispatch.execute import execute_request
from ..dispatch.records import RunRequest
from ..dispatch.rerun import Rerun
from ..engine.context import RunEvent, new_run_id
from ..errors import StoreError
from ..loader import Loader, RawTemplate, template_version
from ..logs import RunLogRouter
from ..result import Result, Status
from ..runs import TriggerKind
from ..store import open_store
from ..store.base import RunStore
from ..store.ends import EndJournal, EndRecorder

if TYPE_CHECKING:
    from ..cancellation import CancelToken
    from ..engine.pipeline import Pipeline
    from . import CliContext

__all__ = ["RecordingUnavailableError", "execute_recorded", "safe_url"]

logger = logging.getLogger(__name__)

NOT_STARTED = "cancelled before it started"


class RecordingUnavailableError(StoreError):
    """The run store did not answer before the run started: nothing ran."""


def safe_url(url: str) -> str:
    """``url`` without its credentials (what is printed and logged)."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def execute_recorded(
    url: str,
    pipeline: Pipeline,
    loader: Loader,
    params: Mapping[str, Any],
    *,
    ctx: CliContext,
    token: CancelToken,
    on_event: Callable[[RunEvent], None] | None = None,
    clock: Clock | None = None,
    rerun: Rerun | None = None,
    logical_date: datetime | None = None,
) -> tuple[str, Result | None]:
    """Record and run ``pipeline`` with ``params`` (see the module); return its run id and result.

    The result is ``None`` when the run never started (cancelled while PENDING,
    by Ctrl-C or ``workflow cancel``); it is then recorded CANCELLED. With
    ``rerun`` (``workflow rerun``) the run is that rerun: recorded with
    ``rerun_of``, its logical date and the outputs it reuses taken over.

    Raises:
        ParamError: a param value is invalid (nothing is recorded).
        RecordingUnavailableError: the store did not answer before the run started.
    """
    settings, masker = ctx.settings, ctx.masker
    clock = clock or SystemClock()
    resolved = pipeline.params.resolve(params, pipeline=pipeline.name)
    template = loader.get(pipeline.name)
    try:
        store = open_store(url)
    except StoreError as exc:
        raise RecordingUnavailableError(_unavailable(url, exc)) from None
    try:
        lease = ClientLease(
            store,
            lease=settings.app_lease_seconds,
            on_cancel=lambda _run_id: token.cancel(CANCEL_REASON),
            clock=clock,
        )
        try:
            lease.__enter__()  # joins the store; left by closing() below
        except StoreError as exc:
            raise RecordingUnavailableError(_unavailable(url, exc)) from None
        with contextlib.closing(lease):
            try:
                run_id = _create(
                    store,
                    pipeline.name,
                    params=masker.data(resolved),
                    owner=lease.owner,
                    ctx=ctx,
                    clock=clock,
                    rerun_of=None if rerun is None else rerun.source.run_id,
                    logical_date=logical_date,
                )
            except StoreError as exc:
                raise RecordingUnavailableError(_unavailable(url, exc)) from None
            version = template_version(template)
            if rerun is None:
                request = RunRequest(
                    run_id=run_id,
                    pipeline=pipeline.name,
                    version=version,
                    params=resolved,
                    logical_date=logical_date,
                    trigger=TriggerKind.MANUAL,
                    owner=lease.owner,
                )
            else:
                request = replace(
                    rerun.request(
                        run_id, version=version, trigger=TriggerKind.MANUAL, owner=lease.owner
                    ),
                    params=resolved,
                )
            result = _execute(
                request,
                template,
                store=store,
                pipeline=pipeline,
                loader=loader,
                ctx=ctx,
                token=token,
                on_event=on_event,
                clock=clock,
                url=url,
            )
            if result is None:
                _close_unstarted(store, run_id, lease.owner, clock, token)
        return run_id, result
    finally:
        store.close()


def _execute(
    request: RunRequest,
    template: RawTemplate,
    *,
    store: RunStore,
    pipeline: Pipeline,
    loader: Loader,
    ctx: CliContext,
    token: CancelToken,
    on_event: Callable[[RunEvent], None] | None,
    clock: Clock,
    url: str,
) -> Result | None:
    settings = ctx.settings
    router = RunLogRouter(settings.log_path, ctx.masker) if settings.log_enable_write else None
    package = logging.getLogger("ddeutil.workflow")
    if router is not None:
        package.addHandler(router)
    ends = EndRecorder(store, journal=EndJournal.for_store(settings, url))
    try:
        return execute_request(
            request,
            template,
            store=store,
            settings=settings,
            masker=ctx.masker,
            clock=clock,
            cancel=token,
            loader=loader,
            router=router,
            ends=ends,
            pipeline=pipeline,
            on_event=on_event,
        )
    finally:
        ends.close()
        if router is not None:
            package.removeHandler(router)
            router.close()


def _create(
    store: RunStore,
    name: str,
    *,
    params: Mapping[str, Any],
    owner: str,
    ctx: CliContext,
    clock: Clock,
    rerun_of: str | None = None,
    logical_date: datetime | None = None,
) -> str:
    """Record the PENDING run; a run id drawn twice in one second is drawn again."""
    for attempt in range(3):
        run_id = new_run_id(clock)
        try:
            store.create_run(
                run_id=run_id,
                pipeline=name,
                trigger=TriggerKind.MANUAL,
                params=params,
                now=clock.now(),
                owner=owner,
                rerun_of=rerun_of,
                logical_date=logical_date,
            )
        except StoreError:
            if attempt < 2 and store.get_run(run_id) is not None:
                continue
            raise
        return run_id
    raise AssertionError("unreachable")  # pragma: no cover


def _close_unstarted(
    store: RunStore, run_id: str, owner: str, clock: Clock, token: CancelToken
) -> None:
    """A run cancelled before its start handshake ends CANCELLED, not PENDING."""
    reason = f"{NOT_STARTED}: {token.reason}" if token.reason else NOT_STARTED
    try:
        store.finish(run_id, status=Status.CANCELLED, now=clock.now(), error=reason, owner=owner)
    except StoreError as exc:
        logger.warning("could not record the run CANCELLED: %s", exc, extra={"run_id": run_id})


def _unavailable(url: str, exc: Exception) -> str:
    return (
        f"cannot record the run in the run store {safe_url(url)}: {exc} "
        "(nothing ran; use --no-record to run without recording it)"
    )
