"""The in-process executor: runs requests on threads of this process.

:class:`ThreadExecutor` implements the :class:`~ddeutil.workflow.dispatch.base.Executor`
seam (policies in :mod:`.base`). It works with any store, the in-memory one
included; the API and each daemon worker process run their runs on one. A
request's template is looked up in the template source when it is submitted
(a version the source does not know ends the run FAILED at once); an idle
thread takes the request from the queue and runs it
(:func:`~ddeutil.workflow.dispatch.execute.execute_request`).

**Not before its release.** A scheduled request may arrive before its release
instant (the scheduler dispatches the releases of a minute boundary a moment
ahead of it): the thread that took it holds it, pipeline template in hand, and
starts it (start handshake first) at the release instant of the wall clock. A
held run is not started yet: :meth:`ThreadExecutor.drop_held` and
:meth:`ThreadExecutor.shutdown` let it go without touching the store (it stays
PENDING and is dispatched after a restart), while :meth:`ThreadExecutor.cancel`
records it CANCELLED.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..cancellation import CancelToken, is_process_stop
from ..clock import Clock, SystemClock
from ..engine.pipeline_cache import DEFAULT_SIZE, PipelineCache
from ..loader import Loader, RawTemplate
from ..logs import RunLogRouter
from ..masking import Masker
from ..metrics import Meter
from ..result import ErrorRecord, Status
from ..settings import Settings
from ..store.base import RunStore
from ..store.ends import EndRecorder, RunEnd
from .base import (
    EventBuffer,
    SaturationLog,
    TemplateSource,
    TemplateUnavailable,
    log_extra,
    template_of,
)
from .execute import error_summary, execute_request
from .records import RunEvent, RunRequest

if TYPE_CHECKING:
    from ..engine.context import RunEvent as EngineEvent

__all__ = ["ThreadExecutor"]

logger = logging.getLogger(__name__)

LOADER_REFRESH_SECONDS = 2.0
"""A worker re-checks the conf folder for changes at most this often (between runs)."""


@dataclass
class _Active:
    request: RunRequest
    token: CancelToken


@dataclass(frozen=True)
class _Queued:
    request: RunRequest
    template: RawTemplate


class ThreadExecutor:
    """Runs requests on up to ``size`` threads of this process.

    Threads are created on demand and kept; extra requests wait in a FIFO queue.
    Threads are daemon threads, so a run that ignores cancellation cannot keep
    the process alive after :meth:`shutdown` gave up on it.

    Args:
        store: Run store the runs are recorded in.
        templates: Where the template of a request's pipeline and version comes from.
        settings: Engine settings (log folder, registry, ...).
        masker: Hides secrets in stored records (default: hides nothing).
        clock: Time source (default: the system clock).
        loader: Resolves templates the pipelines refer to (default: one over the
            conf folder). It is refreshed between runs when the conf changes.
        size: Runs executed at once (default ``WORKFLOW_APP_PIPELINE_PER_PROCESS``).
        cancel_grace: Seconds a cancelled run gets to end before it is recorded
            CANCELLED anyway and left behind.
        log_files: Write a log file per run (default ``WORKFLOW_LOG_ENABLE_WRITE``);
            a :class:`~ddeutil.workflow.logs.RunLogRouter` is attached to the
            package logger between :meth:`start` and :meth:`shutdown`.
        on_event: When given, each event is passed to it (from the run's thread)
            instead of being buffered for :meth:`drain_events`.
        name: Thread-name prefix and log label.
        pipeline_cache: Built pipelines kept for later runs of the same template
            version (see :mod:`~ddeutil.workflow.engine.pipeline_cache`); 0 builds every
            run's pipeline afresh.
        ends: Records the runs' ends, keeping those the store refuses (see
            :mod:`~ddeutil.workflow.store.ends`); default: one over ``store``
            without a journal. The executor closes it in :meth:`shutdown`.
        meter: Receives the duration of every stage the executor's runs end
            (the API's ``workflow_stage_duration_seconds``).
    """

    def __init__(
        self,
        *,
        store: RunStore,
        settings: Settings,
        templates: TemplateSource,
        masker: Masker | None = None,
        clock: Clock | None = None,
        loader: Loader | None = None,
        size: int | None = None,
        cancel_grace: float = 5.0,
        log_files: bool | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
        name: str = "thread executor",
        pipeline_cache: int = DEFAULT_SIZE,
        ends: EndRecorder | None = None,
        meter: Meter | None = None,
    ) -> None:
        self._store = store
        self._stage_events = None if meter is None else _StageMeter(meter)
        self._ends = ends or EndRecorder(store)
        self._settings = settings
        self._templates = templates
        self._masker = masker or Masker()
        self._clock = clock or SystemClock()
        self._loader = loader or Loader.from_settings(settings)
        self._loader_checked = time.monotonic()
        self._size = settings.app_pipeline_per_process if size is None else size
        if self._size < 1:
            raise ValueError(f"size must be at least 1, got {self._size}")
        self._grace = cancel_grace
        self._log_files = settings.log_enable_write if log_files is None else log_files
        self._on_event = on_event
        self._name = name
        self._events = EventBuffer()
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._queue: deque[_Queued] = deque()
        self._active: dict[str, _Active] = {}
        self._abandoned: set[str] = set()
        self._held: set[str] = set()
        self._dropped: set[str] = set()
        self._letting_go: str | None = None  # why runs are no longer held (sticky)
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._started = False
        self._closed = False
        self._router: RunLogRouter | None = None
        self._saturation = SaturationLog(self._size, name)
        self._pipelines = PipelineCache(pipeline_cache)

    def __repr__(self) -> str:
        return f"ThreadExecutor(size={self._size}, in_flight={self.in_flight()})"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Attach the per-run log router (when enabled). Idempotent."""
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
        if self._log_files:
            router = RunLogRouter(self._settings.log_path, self._masker)
            logging.getLogger("ddeutil.workflow").addHandler(router)
            self._router = router

    def shutdown(self, timeout: float, *, reason: str | None = None) -> None:
        """Stop taking work; wait, then cancel; record stragglers CANCELLED.

        Runs waiting for a slot are not started and stay PENDING in the store.
        Returns after at most ``timeout`` plus ``cancel_grace`` seconds.

        Args:
            timeout: Seconds running runs get to finish on their own.
            reason: Cancellation reason recorded for runs cancelled here.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            left = len(self._queue)
            self._queue.clear()
            self._saturation.drained()
            self._work.notify_all()
        self.drop_held("stopping")
        if left:
            logger.warning(
                "%s stopping: %d waiting run(s) not started; they stay PENDING and are "
                "dispatched after a restart",
                self._name,
                left,
            )
        deadline = time.monotonic() + max(timeout, 0.0)
        if not self._wait_idle(deadline):
            why = reason or f"stopping: not finished within {timeout:g}s"
            with self._lock:
                active = list(self._active.values())
            logger.warning("%s stopping: cancelling %d run(s): %s", self._name, len(active), why)
            for item in active:
                item.token.cancel(why)
            if not self._wait_idle(time.monotonic() + self._grace):
                self._abandon_running(why)
        join_by = time.monotonic() + 1.0
        for thread in list(self._threads):
            thread.join(timeout=max(join_by - time.monotonic(), 0.0))
        self._ends.close()  # ends the store refused: one more try, then the journal
        if self._router is not None:
            logging.getLogger("ddeutil.workflow").removeHandler(self._router)
            self._router.close()
            self._router = None
        self._events.close()

    # ------------------------------------------------------------ work

    def submit(self, request: RunRequest) -> None:
        """Queue ``request``; it starts as soon as a thread is free (FIFO)."""
        if not self._started:
            self.start()
        template = self._template_of(request)
        if template is None:
            return
        with self._lock:
            if self._closed:
                logger.warning(
                    "%s is shut down: run not started, it stays PENDING",
                    self._name,
                    extra=log_extra(request),
                )
                return
            self._queue.append(_Queued(request, template))
            if len(self._queue) > self._idle and len(self._threads) < self._size:
                self._spawn_locked(self._loop)
            waiting = len(self._queue) - (self._size - len(self._active))
            if waiting > 0:
                self._saturation.waiting(waiting)
            self._work.notify()

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel one run: a running one cooperatively, a waiting one at once.

        A waiting run is removed from the queue and recorded CANCELLED.

        Returns:
            False when the run is not in this executor.
        """
        with self._lock:
            active = self._active.get(run_id)
            queued = next((q for q in self._queue if q.request.run_id == run_id), None)
            if queued is not None:
                self._queue.remove(queued)
        if active is not None:
            active.token.cancel(reason)
            return True
        if queued is None:
            return False
        self._end_now(queued.request, Status.CANCELLED, f"cancelled before it started: {reason}")
        return True

    def drop_held(self, reason: str) -> int:
        """Let go of runs held for their release time: not started, they stay PENDING.

        Each ends with a ``finished`` event without a status, and so does every
        run that would be held from now on (the executor is about to stop).
        Returns how many were held.
        """
        with self._lock:
            self._letting_go = self._letting_go or reason
            held = [self._active[run_id] for run_id in self._held if run_id in self._active]
            self._dropped.update(item.request.run_id for item in held)
        for item in held:
            item.token.cancel(reason)
        if held:
            logger.info(
                "%s: %d run(s) held for their release time not started (%s); they stay PENDING",
                self._name,
                len(held),
                reason,
            )
        return len(held)

    def cancel_all(self, reason: str) -> None:
        """Cancel every running run (waiting runs are left waiting)."""
        with self._lock:
            active = list(self._active.values())
        for item in active:
            item.token.cancel(reason)

    def drain_events(self) -> list[RunEvent]:
        return self._events.drain()

    def wait_event(self, timeout: float) -> bool:
        return self._events.wait(timeout)

    def capacity(self) -> int:
        return self._size

    def in_flight(self) -> int:
        with self._lock:
            return len(self._queue) + len(self._active)

    # ------------------------------------------------------------ internals

    def _spawn_locked(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(
            target=target,
            name=f"{self._name}-{len(self._threads) + 1}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._idle += 1
                    self._work.wait()
                    self._idle -= 1
                if self._closed:
                    return
                queued = self._queue.popleft()
                if not self._queue:
                    self._saturation.drained()
                token = CancelToken()
                self._active[queued.request.run_id] = _Active(queued.request, token)
            self._run_and_report(queued, token)

    def _run_and_report(self, queued: _Queued, token: CancelToken) -> None:
        request = queued.request
        event = RunEvent("finished", request.run_id, Status.CANCELLED, "interrupted")
        try:
            event = self._run(queued, token)
        finally:  # whatever happened, the slot is freed (a process stop still unwinds)
            with self._lock:  # free the slot before telling anyone the run ended
                self._active.pop(request.run_id, None)
                abandoned = request.run_id in self._abandoned
                self._abandoned.discard(request.run_id)
                self._done.notify_all()
            if not abandoned:
                self._emit(event)

    def _run(self, queued: _Queued, token: CancelToken) -> RunEvent:
        """Execute one request; return its ``finished`` event (never raises)."""
        request = queued.request
        run_id = request.run_id
        loader = self._current_loader()
        if request.release is not None and request.release.at.timestamp() > time.time():
            # Held: build the pipeline now (kept in the cache), so that at the
            # release instant only the handshake and the run itself remain.
            with contextlib.suppress(Exception):  # the run reports a build error itself
                self._pipelines.get(
                    queued.template,
                    loader=loader,
                    settings=self._settings,
                    version=request.version,
                )
            ended = self._hold(request, token)
            if ended is not None:
                return ended
        try:
            result = execute_request(
                request,
                queued.template,
                store=self._store,
                settings=self._settings,
                masker=self._masker,
                clock=self._clock,
                cancel=token,
                loader=loader,
                router=self._router,
                on_start=lambda: self._emit(RunEvent("started", run_id)),
                pipelines=self._pipelines,
                ends=self._ends,
                on_event=self._stage_events,
            )
        except BaseException as exc:  # execute_request records its own failures; be safe
            if is_process_stop(exc):
                raise
            logger.error(
                "run crashed the executor thread: %s",
                type(exc).__name__,
                exc_info=isinstance(exc, Exception),
                extra=log_extra(request),
            )
            message = self._masker.text(f"{type(exc).__name__}: {exc}")
            return RunEvent("finished", run_id, Status.FAILED, message)
        if result is None:
            return RunEvent("finished", run_id, None, "not started (no longer PENDING)")
        return RunEvent("finished", run_id, result.status, error_summary(result))

    def _current_loader(self) -> Loader:
        with self._lock:
            loader = self._loader
            due = time.monotonic() - self._loader_checked >= LOADER_REFRESH_SECONDS
            if due:
                self._loader_checked = time.monotonic()
        if not due:
            return loader
        try:
            loader = loader.refreshed()
        except Exception:
            logger.exception("re-reading the conf folder failed; keeping the last one")
            return loader
        with self._lock:
            self._loader = loader
        return loader

    def _wait_idle(self, deadline: float) -> bool:
        with self._lock:
            while self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
            return True

    def _abandon_running(self, reason: str) -> None:
        with self._lock:
            stuck = list(self._active.values())
            for item in stuck:
                del self._active[item.request.run_id]
                self._abandoned.add(item.request.run_id)
            self._done.notify_all()
        for item in stuck:
            message = f"did not stop within {self._grace:g}s of being cancelled ({reason})"
            logger.error("run left behind: %s", message, extra=log_extra(item.request))
            self._end_now(item.request, Status.CANCELLED, message)

    def _template_of(self, request: RunRequest) -> RawTemplate | None:
        """The template of ``request``; ``None`` after ending the run FAILED."""
        try:
            return template_of(self._templates, request)
        except TemplateUnavailable as exc:
            logger.error("run not started: %s", exc, extra=log_extra(request))
            self._end_now(request, Status.FAILED, str(exc), kind="DispatchError")
            return None

    def _hold(self, request: RunRequest, token: CancelToken) -> RunEvent | None:
        """Wait for the release instant; ``None`` then, or the run's end when let go."""
        run_id = request.run_id
        at = request.release.at.timestamp() if request.release is not None else 0.0
        with self._lock:
            self._held.add(run_id)
            letting_go = self._letting_go
            if letting_go is not None:
                self._dropped.add(run_id)
        if letting_go is not None:
            token.cancel(letting_go)
        try:
            while (left := at - time.time()) > 0 and not token.wait(left):
                pass
        finally:
            with self._lock:
                self._held.discard(run_id)
                dropped = run_id in self._dropped
                self._dropped.discard(run_id)
        if not token.cancelled:
            return None
        if dropped:
            message = f"not started: {token.reason} before its release time (stays PENDING)"
            return RunEvent("finished", run_id, None, message)
        message = f"cancelled before it started: {token.reason}"
        self._record_end(request, Status.CANCELLED, message)
        return RunEvent("finished", run_id, Status.CANCELLED, message)

    def _end_now(
        self, request: RunRequest, status: Status, message: str, *, kind: str | None = None
    ) -> None:
        """Record a run that will not execute here as ended, and report its end."""
        self._record_end(request, status, message, kind=kind)
        self._emit(RunEvent("finished", request.run_id, status, message))

    def _record_end(
        self, request: RunRequest, status: Status, message: str, *, kind: str | None = None
    ) -> None:
        kind = kind or ("Cancelled" if status is Status.CANCELLED else "DispatchError")
        record = ErrorRecord(message=message, kind=kind)
        end = RunEnd(
            request.run_id, status, self._clock.now(), None, (record,), message, request.owner
        )
        try:
            self._ends.record(end)
        except Exception:
            logger.exception("could not record the run %s", status.value, extra=log_extra(request))

    def _emit(self, event: RunEvent) -> None:
        if self._on_event is None:
            self._events.put(event)
            return
        try:
            self._on_event(event)
        except Exception:
            logger.exception("event callback failed for %s", event)


class _StageMeter:
    """The engine-event callback that reports stage durations to a meter."""

    def __init__(self, meter: Meter) -> None:
        self._meter = meter

    def __call__(self, event: EngineEvent) -> None:
        if event.kind == "stage" and event.reused_from is None:  # a rerun's reuse took no time
            self._meter.stage_finished(event.duration)
