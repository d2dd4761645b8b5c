"""What the API does, without HTTP: triggers, run history, logs and health.

:class:`ApiService` owns the API process's run pool and its side of the run
store. Policies:

* **Runs execute in a bounded pool of this process**: ``WORKFLOW_API_RUN_WORKERS``
  threads (a :class:`~ddeutil.workflow.dispatch.threads.ThreadExecutor`); more triggers
  wait in FIFO order, none is dropped. Each run is recorded in the run store
  with trigger kind ``api`` before it is queued, so it is visible at once and
  survives the process as a record.
* **Params are validated strictly** before anything is recorded: undeclared
  names are rejected and every problem is reported at once. The stored params
  are masked; the run itself receives the real values.
* **Idempotency keys** are unique across the whole store: reusing one answers
  409 ``duplicate_run`` naming the run it created, whatever the pipeline.
* **Restart recovery**: at start-up, run ends the store refused before are
  replayed from the run-end journal (:mod:`~ddeutil.workflow.store.ends`); then
  API runs left RUNNING by a previous API
  process are closed FAILED ("interrupted by an API restart") and API runs it
  accepted but never started are closed FAILED too (their real params were never
  stored, so they cannot be re-run faithfully). Run **one API process per run
  store**: a second one starting would close the first one's runs.
* **Cancel reaches a run wherever it runs**: ``POST /runs/{id}/cancel`` writes
  the request into the store (:mod:`~ddeutil.workflow.store.cancel`); this
  process's own runs (held by nobody) are cancelled by its
  :class:`~ddeutil.workflow.dispatch.cancel_watch.CancelWatch`, which asks the
  store once a second, whichever process the request came from.
* **Stopping** waits up to ``WORKFLOW_APP_STOP_TIMEOUT`` seconds for running
  runs, then cancels them (recorded CANCELLED); triggers still waiting for a
  slot are recorded CANCELLED ("not started").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import anyio

from ..__about__ import __version__
from ..clock import Clock, ensure_utc
from ..dispatch.base import Executor
from ..dispatch.cancel_watch import CANCEL_REASON, CancelWatch
from ..dispatch.records import RunEvent, RunRequest
from ..dispatch.rerun import prepare_rerun
from ..dispatch.run_meter import RunMeter
from ..dispatch.threads import ThreadExecutor
from ..engine.context import new_run_id
from ..errors import ParamError, RerunError, StoreError
from ..loader import Loader, RawTemplate, template_version
from ..logs import run_log_path
from ..masking import Masker
from ..metrics import NULL_METER, Meter
from ..notify.sender import Sender
from ..notify.service import NotifyService
from ..result import Status
from ..settings import Settings
from ..store import open_store
from ..store.base import DuplicateRun, RunFilter, RunRecord, RunStore, TriggerKind
from ..store.cancel import ask_cancel
from ..store.ends import EndJournal, EndRecorder
from ..store.retention import cutoff, prune
from .backfills import ApiBackfills
from .catalog import Catalog
from .errors import ApiError
from .models import (
    BackfillAccepted,
    BackfillPlan,
    CancelResponse,
    ErrorDetail,
    HealthResponse,
    PauseResponse,
    PipelineDetail,
    PipelineList,
    PipelineSummary,
    PruneResponse,
    RunDetail,
    RunLogs,
    RunPage,
    RunSummary,
    SchedulerHealth,
    SchedulerInfo,
    StoreHealth,
    TriggerResponse,
)
from .views import (
    pipeline_detail,
    pipeline_summary,
    read_log,
    run_detail,
    run_summary,
    scheduler_info,
)

__all__ = ["API_PREFIX", "INTERRUPTED_REASON", "NOT_STARTED_REASON", "ApiService", "run_path"]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
INTERRUPTED_REASON = "interrupted by an API restart"
NOT_STARTED_REASON = "not started: the API process that accepted it stopped (API restart)"
SHUTDOWN_REASON = "not started: the API stopped before the run began"
POLL_SECONDS = 0.1
KEPT_TEMPLATES = 256
"""Template versions the run pool can look up (the triggers' own, newest kept)."""
"""How often a long-poll re-reads a run that another process executes."""


@dataclass
class _Waiter:
    """Wakes the threads and the event loops waiting for one run to end."""

    done: threading.Event = field(default_factory=threading.Event)
    loops: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)

    def set(self) -> None:
        self.done.set()
        for loop, event in self.loops:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(event.set)


def run_path(run_id: str) -> str:
    """The URL path of a run (the ``Location`` of a trigger)."""
    return f"{API_PREFIX}/runs/{run_id}"


class ApiService:
    """The API's state and operations (see the module docstring).

    Args:
        settings: Read once by the caller.
        masker: Hides secrets in stored params and in the run pool's records.
        clock: Time source for records, run ids and next fire times.
        store: The run store (default: opened from ``settings.api_db_url`` at
            :meth:`start` and closed at :meth:`stop`).
        executor: Run pool to use instead of the API's own ``ThreadExecutor``;
            it is started here but stopped by its owner.
        loader: Initial template loader (default: read the conf folder).
        meter: Receives the ends (status, duration) and starts of the runs this
            process accepts, the durations of the stages its own pool runs, and
            run store errors (see :mod:`ddeutil.workflow.metrics`).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        masker: Masker,
        clock: Clock,
        store: RunStore | None = None,
        executor: Executor | None = None,
        loader: Loader | None = None,
        meter: Meter | None = None,
    ) -> None:
        self.settings = settings
        self.meter = meter or NULL_METER
        self._runs = RunMeter(self.meter, clock)
        self.masker = masker
        self.clock = clock
        self.catalog = Catalog(settings, loader)
        self._owns_store = store is None
        self._store = store
        self._given_executor = executor
        self._executor: Executor | None = None
        self._lock = threading.Lock()
        self._waiters: dict[str, _Waiter] = {}
        self._templates: OrderedDict[tuple[str, str], RawTemplate] = OrderedDict()
        self._started = False
        self._stop = threading.Event()
        self._pump: threading.Thread | None = None
        self._cancels: CancelWatch | None = None
        self._notify: NotifyService | None = None
        self._backfills = ApiBackfills(
            settings=settings,
            masker=masker,
            clock=clock,
            catalog=lambda: self.catalog,
            follow=lambda name: f"{API_PREFIX}/runs?pipeline={name}&trigger=backfill",
        )

    # ------------------------------------------------------------ lifecycle

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """Open the store, close what a previous API process left, start the pool."""
        if self._started:
            return
        if self._store is None:
            self._store = open_store(self.settings.api_db_url)
        journal = EndJournal.for_store(self.settings, self.settings.api_db_url)
        journal.replay(self._store)  # ends recorded late are not "interrupted"
        self._recover(self._store)
        self._stop.clear()
        if self._given_executor is None and self.settings.app_executor == "celery":
            from ..dispatch.celery_executor import CeleryExecutor

            self._executor = CeleryExecutor(
                settings=self.settings,
                templates=self.template,
                store=self._store,
                masker=self.masker,
                clock=self.clock,
            )
            self._pump = threading.Thread(target=self._pump_events, name="api events", daemon=True)
            self._pump.start()
        elif self._given_executor is None:
            self._executor = ThreadExecutor(
                ends=EndRecorder(self._store, journal=journal),
                store=self._store,
                settings=self.settings,
                templates=self.template,
                masker=self.masker,
                clock=self.clock,
                loader=self.catalog.loader(),
                size=self.settings.api_run_workers,
                on_event=self._on_event,
                name="api run pool",
                meter=self.meter,
            )
        else:
            self._executor = self._given_executor
            self._pump = threading.Thread(target=self._pump_events, name="api events", daemon=True)
            self._pump.start()
        self._executor.start()
        self._cancels = CancelWatch(
            self._store, owner=lambda: None, cancel=self._cancel_own, name="api-cancels"
        ).start()
        if self.settings.notify_api_sender:
            owner = f"api-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            sender = Sender(self._store, self.settings, owner=owner, clock=self.clock)
            self._notify = NotifyService(self._store, sender, clock=self.clock, name="api-notify")
            self._notify.start()
        self._started = True
        logger.info(
            "API started: run pool of %d, store %s", self.settings.api_run_workers, self._store
        )

    def stop(self, timeout: float | None = None) -> None:
        """Stop the pool (see the module docstring) and close an owned store. Idempotent."""
        if not self._started:
            return
        self._started = False
        self._stop.set()
        self._backfills.stop(self.settings.app_stop_timeout if timeout is None else timeout)
        executor, store = self._executor, self._store
        if self._cancels is not None:
            self._cancels.close()
            self._cancels = None
        if self._notify is not None:
            self._notify.stop()
            self._notify = None
        if executor is not None and self._given_executor is None:
            wait = self.settings.app_stop_timeout if timeout is None else timeout
            with self._lock:
                waiting = sorted(self._waiters)
            if waiting:  # say what the stop waits for, not a silent pause
                logger.info(
                    "API stopping: waiting up to %gs for %d run(s) in flight (%s), then "
                    "cancelling them",
                    wait,
                    len(waiting),
                    ", ".join(waiting[:10]) + (", ..." if len(waiting) > 10 else ""),
                )
            executor.shutdown(wait)
            if self.settings.app_executor == "local":  # sent runs start on the workers
                self._cancel_unstarted()
        if self._pump is not None:
            self._pump.join(timeout=2.0)
            self._pump = None
        with self._lock:
            waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            waiter.set()
        if self._owns_store and store is not None:
            store.close()
            self._store = None

    def _recover(self, store: RunStore) -> None:
        now = self.clock.now()
        for run_id in store.fail_interrupted(
            now=now, reason=INTERRUPTED_REASON, trigger=TriggerKind.API
        ):
            logger.warning(
                "API run %s was RUNNING when the previous API process stopped: recorded FAILED",
                run_id,
                extra={"run_id": run_id},
            )
        for run in store.pending_runs(trigger=TriggerKind.API):
            if store.finish(run.run_id, status=Status.FAILED, now=now, error=NOT_STARTED_REASON):
                logger.warning(
                    "API run %s was accepted but never started: recorded FAILED",
                    run.run_id,
                    extra={"run_id": run.run_id, "pipeline": run.pipeline},
                )

    def _cancel_unstarted(self) -> None:
        """Close triggers that were still waiting for a slot when the pool stopped."""
        with self._lock:
            left = list(self._waiters)
        store = self._store
        if store is None:
            return
        for run_id in left:
            record = store.get_run(run_id)
            if record is not None and record.status is Status.PENDING:
                store.finish(
                    run_id, status=Status.CANCELLED, now=self.clock.now(), error=SHUTDOWN_REASON
                )

    def template(self, pipeline: str, version: str | None) -> RawTemplate | None:
        """The template a trigger validated (the run pool's template source)."""
        with self._lock:
            return self._templates.get((pipeline, version or ""))

    def _on_event(self, event: RunEvent) -> None:
        self._runs.observe((event,))
        if event.kind != "finished":
            return
        with self._lock:
            waiter = self._waiters.pop(event.run_id, None)
        if waiter is not None:
            waiter.set()

    def _pump_events(self) -> None:
        executor = self._executor
        assert executor is not None
        while not self._stop.is_set():
            if executor.wait_event(0.2):
                for event in executor.drain_events():
                    self._on_event(event)

    def _cancel_own(self, run_id: str, reason: str) -> bool:
        """Cancel a run of this process's pool (the cancel watch's hand-over).

        The runs nobody holds that a cancel was asked for are this process's
        triggers (one API process per store); a run this process did not accept
        is left alone.
        """
        with self._lock:
            mine = run_id in self._waiters
        executor = self._executor
        return mine and executor is not None and executor.cancel(run_id, reason)

    def _ready(self) -> tuple[RunStore, Executor]:
        store, executor = self._store, self._executor
        if not self._started or store is None or executor is None:
            raise ApiError(503, "the API is not started (or is stopping)", code="unavailable")
        return store, executor

    def in_flight(self) -> int:
        """API runs accepted by this process that have not finished."""
        with self._lock:
            return len(self._waiters)

    def wait(self, run_id: str, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until ``run_id`` is terminal; True if it is."""
        store, _ = self._ready()
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._lock:
            waiter = self._waiters.get(run_id)
        if waiter is not None:
            waiter.done.wait(max(timeout, 0.0))
        while True:
            record = store.get_run(run_id)
            if record is None or record.status.is_terminal:
                return record is not None
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.wait(min(POLL_SECONDS, left)):
                return False

    async def wait_async(self, run_id: str, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for ``run_id`` to end, holding no thread.

        A run of this process's pool wakes the waiter the moment it ends; a run
        executed elsewhere (the daemon, another process) is re-read from the store
        every :data:`POLL_SECONDS`.
        """
        store, _ = self._ready()
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            waiter = self._waiters.get(run_id)
            if waiter is not None:
                waiter.loops.append(entry)
        if waiter is not None:
            try:
                with anyio.move_on_after(timeout):
                    await event.wait()
            finally:
                with self._lock, contextlib.suppress(ValueError):
                    waiter.loops.remove(entry)
            return
        deadline = anyio.current_time() + timeout
        while not self._stop.is_set():
            record = await anyio.to_thread.run_sync(store.get_run, run_id)
            if record is None or record.status.is_terminal:
                return
            left = deadline - anyio.current_time()
            if left <= 0:
                return
            await anyio.sleep(min(POLL_SECONDS, left))

    # ------------------------------------------------------------ pipelines

    def pipelines(self, count: int) -> PipelineList:
        """Every usable pipeline with ``count`` next fire times per schedule."""
        pipelines, problems = self.catalog.all()
        now = self.clock.now()
        paused = self._paused()
        items = [
            _with_pause(pipeline_summary(p, now, count), paused.get(p.name)) for p in pipelines
        ]
        return PipelineList(items=items, total=len(items), problems=problems)

    def pipeline(self, name: str, count: int) -> PipelineDetail:
        """One pipeline (404 unknown, 422 invalid)."""
        entry = self.catalog.get(name)
        assert entry.pipeline is not None
        detail = pipeline_detail(entry.pipeline, self.clock.now(), count)
        return _with_pause(detail, self._paused().get(name))

    def _paused(self) -> dict[str, datetime]:
        store = self._store
        return {} if store is None or not self._started else store.paused()

    def pause(self, name: str) -> PauseResponse:
        """Pause ``name`` (404 unknown, 422 invalid): every daemon skips its releases."""
        store, _ = self._ready()
        self.catalog.get(name)
        changed = store.pause(name, now=self.clock.now())
        since = store.paused().get(name)
        logger.info("pipeline %r paused through the API", name)
        return PauseResponse(pipeline=name, paused=True, paused_at=since, changed=changed)

    def unpause(
        self,
        name: str,
        *,
        catchup: bool = False,
        since: str | None = None,
        parallel: int | None = None,
    ) -> PauseResponse:
        """Resume ``name``; a pipeline neither paused nor in the conf folder is 404.

        With ``catchup`` the releases the pause skipped (since ``since``, default
        since it began, or ever when it is not paused) run in this process like a
        backfill (:mod:`~ddeutil.workflow.scheduling.catchup`); everything is
        checked first, so a refused catch-up (422, 409) leaves the pause as it was.
        """
        store, _ = self._ready()
        if catchup:
            return self._backfills.catch_up(store, name, since=since, parallel=parallel)
        paused_at = store.unpause(name)
        if paused_at is None:
            self.catalog.get(name)
        else:
            logger.info("pipeline %r unpaused through the API", name)
        return PauseResponse(
            pipeline=name, paused=False, paused_at=paused_at, changed=paused_at is not None
        )

    def trigger(
        self, name: str, params: Mapping[str, Any], idempotency_key: str | None
    ) -> TriggerResponse:
        """Validate, record (PENDING, trigger ``api``) and queue one run of ``name``."""
        store, executor = self._ready()
        entry = self.catalog.get(name)
        pipeline = entry.pipeline
        assert pipeline is not None
        try:
            resolved = pipeline.params.resolve(params, strict=True, pipeline=name)
        except ParamError as exc:
            raise ApiError(
                422,
                f"invalid params for pipeline {name!r}",
                code="invalid_params",
                details=[
                    ErrorDetail(location="params", name=p.name, message=p.message)
                    for p in exc.problems
                ],
            ) from None
        record = self._create(store, name, self.masker.data(resolved), idempotency_key)
        request = RunRequest(
            run_id=record.run_id,
            pipeline=name,
            version=template_version(entry.template),
            params=resolved,
            trigger=TriggerKind.API,
        )
        return self._queue(store, executor, record, request, entry.template)

    def rerun(self, run_id: str, from_job: str | None, force: bool) -> TriggerResponse:
        """Record and queue a rerun of ``run_id`` (trigger ``api``, ``rerun_of`` it).

        404: no such run, or its pipeline is gone; 422: ``from_job`` is not a job
        of the pipeline; 409: the run cannot be rerun (not ended, nothing to
        rerun, a masked param, or the template changed and ``force`` is off).
        """
        store, executor = self._ready()
        source = store.get_run(run_id)
        if source is None:
            raise ApiError(404, f"no run with id {run_id!r}")
        entry = self.catalog.get(source.pipeline)
        pipeline = entry.pipeline
        assert pipeline is not None
        if from_job is not None and from_job not in pipeline.jobs:
            known = ", ".join(sorted(pipeline.jobs)) or "none"
            raise ApiError(
                422,
                f"pipeline {source.pipeline!r} has no job {from_job!r} (its jobs: {known})",
                code="invalid_request",
            )
        try:
            rerun = prepare_rerun(source, pipeline, self.settings, from_job=from_job, force=force)
        except RerunError as exc:
            raise ApiError(
                409,
                str(exc),
                code="rerun_refused",
                run_id=run_id,
                details=[
                    ErrorDetail(location="run", name=run_id, message=problem)
                    for problem in exc.problems
                ],
            ) from None
        record = self._create(store, source.pipeline, rerun.params, None, rerun_of=run_id)
        version = template_version(entry.template)
        request = rerun.request(record.run_id, version=version, trigger=TriggerKind.API)
        logger.info("API rerun of run %s accepted", run_id, extra={"run_id": record.run_id})
        return self._queue(store, executor, record, request, entry.template)

    def _queue(
        self,
        store: RunStore,
        executor: Executor,
        record: RunRecord,
        request: RunRequest,
        template: RawTemplate,
    ) -> TriggerResponse:
        """Hand the recorded ``request`` to the run pool (its end is awaited by waiters)."""
        name, version = request.pipeline, request.version or ""
        with self._lock:
            self._waiters[record.run_id] = _Waiter()
            self._templates[(name, version)] = template
            self._templates.move_to_end((name, version))
            while len(self._templates) > KEPT_TEMPLATES:
                self._templates.popitem(last=False)
        self._runs.submitted(record.run_id, name, trigger=request.trigger.value)
        try:
            executor.submit(request)
        except Exception as exc:
            with self._lock:
                self._waiters.pop(record.run_id, None)
            message = f"could not be queued: {type(exc).__name__}: {exc}"
            store.finish(record.run_id, status=Status.FAILED, now=self.clock.now(), error=message)
            logger.exception("queueing an API run failed", extra={"run_id": record.run_id})
            raise ApiError(503, f"run {record.run_id} {message}", run_id=record.run_id) from exc
        logger.info("API run accepted", extra={"run_id": record.run_id, "pipeline": name})
        return TriggerResponse(
            run_id=record.run_id,
            pipeline=name,
            status=record.status,
            location=run_path(record.run_id),
        )

    def _create(
        self,
        store: RunStore,
        name: str,
        params: Mapping[str, Any],
        key: str | None,
        *,
        rerun_of: str | None = None,
    ) -> RunRecord:
        attempts = 3
        for attempt in range(attempts):
            run_id = new_run_id(self.clock)
            try:
                return store.create_run(
                    run_id=run_id,
                    pipeline=name,
                    trigger=TriggerKind.API,
                    params=params,
                    now=self.clock.now(),
                    idempotency_key=key,
                    rerun_of=rerun_of,
                )
            except DuplicateRun as exc:
                raise ApiError(
                    409,
                    f"Idempotency-Key was already used by run {exc.run_id}",
                    code="duplicate_run",
                    run_id=exc.run_id,
                    headers={"Location": run_path(exc.run_id)},
                ) from None
            except StoreError:
                # A run id drawn twice in one second (32 random bits): draw again.
                if attempt + 1 < attempts and store.get_run(run_id) is not None:
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ runs

    def run(self, run_id: str) -> RunDetail:
        """One run (404 when unknown)."""
        store, _ = self._ready()
        record = store.get_run(run_id)
        if record is None:
            raise ApiError(404, f"no run with id {run_id!r}")
        return run_detail(record)

    def runs(
        self,
        *,
        pipeline: str | None,
        status: Sequence[Status] | None,
        trigger: TriggerKind | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        offset: int,
    ) -> RunPage:
        """A page of the history, newest first, with the total for the filters."""
        store, _ = self._ready()
        where = RunFilter(
            pipeline=pipeline,
            status=status or None,
            trigger=trigger,
            since=_utc(since, "since"),
            until=_utc(until, "until"),
        )
        records = store.list_runs(where, limit=limit, offset=offset)
        total = store.count_runs(where)
        return RunPage(
            items=[run_summary(r) for r in records], total=total, limit=limit, offset=offset
        )

    def last_runs(self, names: Sequence[str]) -> dict[str, RunSummary]:
        """The newest run of each of ``names`` that has one (one indexed query each)."""
        store, _ = self._ready()
        found: dict[str, RunSummary] = {}
        for name in names:
            newest = store.list_runs(RunFilter(pipeline=name), limit=1)
            if newest:
                found[name] = run_summary(newest[0])
        return found

    def logs(self, run_id: str, offset: int, limit: int) -> RunLogs:
        """Lines of a run's log file, else of the log a Celery worker kept in the store
        (404 when the run does not exist)."""
        store, _ = self._ready()
        path = run_log_path(self.settings.log_path, run_id)
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                lines, total = read_log(fh, offset, limit)
        except FileNotFoundError:
            if store.get_run(run_id) is None:
                raise ApiError(404, f"no run with id {run_id!r}") from None
            kept = store.run_log(run_id)  # a run a Celery worker ran elsewhere
            lines, total = read_log(iter(kept.splitlines() if kept else ()), offset, limit)
        return RunLogs(run_id=run_id, lines=lines, total=total, offset=offset, limit=limit)

    def cancel(self, run_id: str, reason: str | None) -> CancelResponse:
        """Cancel a run wherever it executes (404 unknown, 409 already ended).

        See :mod:`ddeutil.workflow.store.cancel`: a PENDING run is recorded
        CANCELLED at once; a RUNNING one is marked in the store and cancelled by
        the process executing it (at once when it is this process's own run,
        else by that process's cancel watch).
        """
        store, _ = self._ready()
        outcome = ask_cancel(store, run_id, now=self.clock.now(), reason=reason)
        if outcome is None:
            raise ApiError(404, f"no run with id {run_id!r}")
        if outcome.what == "ended":
            status = outcome.status.value
            raise ApiError(
                409,
                f"run {run_id} already ended: {status}",
                code="run_ended",
                details=[ErrorDetail(location="run", name="status", message=status)],
                run_id=run_id,
            )
        if outcome.cancel_requested and outcome.owner is None:
            # A run of this process's pool stops now, not at the watch's next look.
            self._cancel_own(run_id, CANCEL_REASON)
        logger.info(
            "cancel %s",
            "asked" if outcome.cancel_requested else "recorded",
            extra={"run_id": run_id},
        )
        return CancelResponse(
            run_id=run_id,
            status=outcome.status,
            cancel_requested=outcome.cancel_requested,
            owner=outcome.owner,
        )

    # ---------------------------------------------------------------- health

    def health(self) -> HealthResponse:
        """Store reachability and every scheduler daemon's heartbeat age (never raises).

        ``degraded`` when daemons are known but none is live with a heartbeat
        fresher than ``WORKFLOW_APP_HEALTH_STALE`` (``workflow health`` exits 1
        then); ``scheduler`` is the newest heartbeat of any daemon. Celery workers
        are listed apart and do not count as daemons.
        """
        store = self._store
        reachable = self._started and store is not None and store.ping()
        scheduler = None
        schedulers: list[SchedulerInfo] = []
        workers: list[SchedulerInfo] = []
        if reachable and store is not None:
            try:
                owners = store.owners()
            except StoreError:
                reachable, owners = False, []
            now = self.clock.now()
            lease = timedelta(seconds=self.settings.app_lease_seconds)
            stale = timedelta(seconds=self.settings.app_health_stale)
            infos = {o.owner: scheduler_info(o, now=now, lease=lease, stale=stale) for o in owners}
            schedulers = [infos[o.owner] for o in owners if o.kind == "scheduler"]
            workers = [infos[o.owner] for o in owners if o.kind == "worker"]
            if schedulers:
                newest = max(schedulers, key=lambda s: s.last_heartbeat)
                scheduler = SchedulerHealth(
                    last_heartbeat=newest.last_heartbeat,
                    owner=newest.owner,
                    age_seconds=newest.age_seconds,
                    stale=newest.stale,
                )
        status = "ok" if reachable else "unavailable"
        live = [s for s in schedulers if s.state in ("live", "unresponsive") and not s.stale]
        if reachable and schedulers and not live:
            status = "degraded"
        return HealthResponse(
            status=status,
            version=__version__,
            store=StoreHealth(reachable=reachable),
            scheduler=scheduler,
            schedulers=schedulers,
            workers=workers,
            runs_in_flight=self.in_flight(),
        )

    def heartbeat_age(self) -> float | None:
        """Seconds since the newest heartbeat of any scheduler daemon; ``None``: none known.

        One read of the store's owners (a row per daemon and worker); a store
        that does not answer counts as a store error and gives ``None``.
        """
        store = self._store
        if not self._started or store is None:
            return None
        try:
            owners = store.owners()
        except StoreError:
            self.meter.store_error()
            return None
        beats = [o.heartbeat for o in owners if o.kind == "scheduler"]
        if not beats:
            return None
        return max((self.clock.now() - max(beats)).total_seconds(), 0.0)

    # -------------------------------------------------------------- backfill

    def backfill(
        self, name: str, *, start: str, end: str, parallel: int | None, dry_run: bool
    ) -> BackfillPlan | BackfillAccepted:
        """Plan (``dry_run``) or start a backfill of ``name`` in this process (see
        :class:`~.backfills.ApiBackfills`)."""
        store, _ = self._ready()
        return self._backfills.backfill(
            store, name, start=start, end=end, parallel=parallel, dry_run=dry_run
        )

    def backfills(self) -> list[str]:
        """The pipelines with a backfill (or catch-up) running in this process."""
        return self._backfills.running()

    # ------------------------------------------------------------- retention

    def prune(self, older_than_days: float | None, dry_run: bool) -> PruneResponse:
        """Prune the ended runs older than ``older_than_days`` (default: the setting).

        The same loop as ``workflow prune`` and the daemon (bounded batches, on a
        pool thread); 422 when no age is given and the setting is ``0`` (keep forever).
        """
        store, _ = self._ready()
        days = older_than_days if older_than_days is not None else self.settings.run_retention_days
        if days is None:
            raise ApiError(
                422,
                "older_than_days is required: WORKFLOW_RUN_RETENTION_DAYS is 0 (keep forever)",
                code="validation_error",
                details=[
                    ErrorDetail(
                        location="body", name="older_than_days", message="required (retention off)"
                    )
                ],
            )
        before = cutoff(self.clock.now(), days)
        report = prune(store, before=before, log_dir=self.settings.log_path, dry_run=dry_run)
        return PruneResponse(
            before=report.before,
            dry_run=report.dry_run,
            runs=report.runs,
            log_files=report.log_files,
            batches=report.batches,
            elapsed_seconds=report.elapsed,
            longest_batch_seconds=report.longest_batch,
        )


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return ensure_utc(value)
    except (OverflowError, ValueError):
        raise ApiError(
            422,
            f"{name} is out of range",
            code="validation_error",
            details=[ErrorDetail(location="query", name=name, message="date-time out of range")],
        ) from None


_Shown = TypeVar("_Shown", PipelineSummary, PipelineDetail)


def _with_pause(shown: _Shown, since: datetime | None) -> _Shown:
    """``shown`` with its pause state."""
    if since is None:
        return shown
    return shown.model_copy(update={"paused": True, "paused_at": since})
