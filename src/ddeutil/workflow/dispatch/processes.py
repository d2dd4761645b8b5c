"""The daemon's executor: long-lived worker processes, each running runs on threads.

:class:`ProcessExecutor` starts ``WORKFLOW_APP_PROCESS_WORKER`` worker processes;
each runs up to ``WORKFLOW_APP_PIPELINE_PER_PROCESS`` runs at once on threads (a
:class:`~ddeutil.workflow.dispatch.threads.ThreadExecutor` inside the worker) and opens
its own run store from the store URL, so the worker that executes a run also
records its outcome. Policies:

* **Processes.** Workers are forked by a ``forkserver`` that preloads the engine
  modules, so the workers share those pages, and forking never happens from the
  (multi-threaded) daemon itself. A worker inherits no file descriptor of the
  daemon but its two pipes. The daemon's process never imports the engine: a
  worker's target is the tiny :mod:`.entry` module.
* **Templates.** The executor is given a template source (the scheduler's
  catalog): a request's template is looked up when it is submitted and sent to
  a worker with the first request of that version the worker gets (see
  :mod:`.wire`), so a worker runs exactly the version dispatched.
* **Assignment.** A request goes to the least-loaded worker with a free slot.
  When every slot is busy, requests wait in the daemon in submit order (never
  dropped) and a warning with the queue depth is logged once per episode. The
  caller of :meth:`ProcessExecutor.submit` writes a small request straight into
  the worker's pipe and never blocks (see :mod:`.handle`); a worker reports
  its events in batches.
* **A worker that dies** (killed, segfault, ``os._exit``) is detected at once
  (its pipe reaches EOF / its sentinel fires), joined (no zombie) and replaced;
  its runs are settled from the store (:mod:`.orphans`): started ones are
  recorded FAILED with the cause, unstarted ones go to another worker. Its bash
  process groups die with it, killed by their watchdogs (see
  :mod:`~ddeutil.workflow.engine.stages`), and it leaves no script file. A worker that dies
  before it is ready is restarted with a backoff.
* **A worker exits when the daemon dies** (see :mod:`.worker`, the body
  of a worker). ``PR_SET_PDEATHSIG`` is deliberately not used: a worker's parent
  is the forkserver, and a death signal would end the worker without
  cancelling, leaving its bash process groups behind.
* **Stopping** (:meth:`ProcessExecutor.shutdown`): requests still waiting in the
  daemon, and those a worker holds for their release time, stay PENDING
  (dispatched after a restart); running runs get the timeout
  to finish, then each worker cancels its runs, records stragglers CANCELLED
  after ``cancel_grace`` and exits; a worker that still does not exit is
  terminated, then killed, and its open runs are recorded CANCELLED.
* **Logs.** A worker configures logging like the daemon: the format and level of
  the handler :func:`~ddeutil.workflow.logs.configure_logging` installed there
  before :meth:`ProcessExecutor.start` (or the ``log_format`` / ``log_level``
  arguments), writing to its inherited stdout/stderr, so its JSON lines reach the
  same journal. Per-run log files are written by the worker when
  ``WORKFLOW_LOG_ENABLE_WRITE`` is on. A daemon that configured no logging gets
  workers that configure none either.

Workers always use the system clock; the store must be a URL store (SQLite or
PostgreSQL) that several processes can open.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import wait
from typing import Any, Literal

from ..clock import Clock, SystemClock
from ..errors import StoreError
from ..masking import Masker
from ..metrics import NULL_METER, Meter
from ..result import Status
from ..settings import Settings
from ..store import open_store
from ..store.base import RunStore
from .base import (
    EventBuffer,
    SaturationLog,
    TemplateSource,
    TemplateUnavailable,
    log_extra,
    template_of,
)
from .handle import Assigned, WorkerHandle, describe_exit
from .orphans import record_end, settle_orphan
from .records import RunEvent, RunRequest
from .wire import (
    Batch,
    Cancel,
    DropHeld,
    Ready,
    Run,
    StageTime,
    Stop,
    WorkerConfig,
    dumps,
    parent_log_config,
)

__all__ = ["PRELOAD", "ProcessExecutor", "describe_exit"]

logger = logging.getLogger(__name__)

PRELOAD = (
    "ddeutil.workflow.dispatch.worker",
    "ddeutil.workflow.engine.pipeline",
    "ddeutil.workflow.store",
)
"""Modules the forkserver imports once, so every worker shares their pages."""

_STOP_MARGIN = 5.0  # seconds a stopped worker gets beyond its cancel grace to exit
_MAX_BACKOFF = 30.0


class ProcessExecutor:
    """Runs requests on long-lived worker processes x threads (the daemon's executor).

    Args:
        settings: Settings (worker count and threads per worker by default).
        templates: Where the template of a request's pipeline and version comes
            from (the scheduler's catalog).
        store: The daemon's store, used to record runs of dead workers; default:
            one opened from ``store_url`` (and closed at shutdown).
        store_url: The URL workers open (default ``WORKFLOW_API_DB_URL``); must
            not be ``memory://``.
        masker: Hides secrets in stored records and worker log lines.
        clock: Time source of the records the daemon writes itself.
        workers: Worker processes (default ``WORKFLOW_APP_PROCESS_WORKER``).
        threads: Runs at once per worker (default ``WORKFLOW_APP_PIPELINE_PER_PROCESS``).
        cancel_grace: Seconds a cancelled run gets before it is recorded CANCELLED
            anyway (and a stopping worker before it is terminated).
        log_format: Worker logging; default: as the daemon's (see module doc),
            nothing when the daemon configured no logging.
        log_level: Worker log level (default: the daemon's root level).
        meter: Counts the worker processes that died and were replaced, and
            receives the duration of every stage the workers run.

    Raises:
        StoreError: ``store_url`` is an in-memory store.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        templates: TemplateSource,
        store: RunStore | None = None,
        store_url: str | None = None,
        masker: Masker | None = None,
        clock: Clock | None = None,
        workers: int | None = None,
        threads: int | None = None,
        cancel_grace: float = 5.0,
        log_format: Literal["json", "text"] | None = None,
        log_level: str | None = None,
        meter: Meter | None = None,
    ) -> None:
        url = store_url or settings.api_db_url
        if url.split("://", 1)[0].lower() == "memory" or ":memory:" in url:
            raise StoreError(
                "the process executor needs a store URL worker processes can open "
                f"(sqlite:/// or postgresql://), not {url!r}"
            )
        self._settings = settings
        self._templates = templates
        self._store = store
        self._owns_store = store is None
        self._url = url
        self._masker = masker or Masker()
        self._clock = clock or SystemClock()
        self._meter = meter or NULL_METER
        self._count = settings.app_process_worker if workers is None else workers
        self._threads = settings.app_pipeline_per_process if threads is None else threads
        if self._count < 1 or self._threads < 1:
            raise ValueError(f"workers and threads must be at least 1, got {workers}, {threads}")
        self._grace = cancel_grace
        self._log_format = log_format
        self._log_level = log_level
        self._config = WorkerConfig(
            index=0,
            settings=settings,
            store_url=url,
            masker=self._masker,
            threads=self._threads,
            cancel_grace=cancel_grace,
            log_format=None,
            log_level=settings.log_level,
            stage_times=meter is not None,
        )
        self._ctx = multiprocessing.get_context("forkserver")
        self._events = EventBuffer()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._workers: dict[int, WorkerHandle] = {}
        self._pending: deque[Assigned] = deque()
        self._failures: Counter[int] = Counter()
        self._restarts: dict[int, float] = {}
        self._saturation = SaturationLog(self._count * self._threads, "worker processes")
        self._started = False
        self._closing = False
        self._reader_done = False
        self._reader: threading.Thread | None = None
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        os.set_blocking(self._wake_w.fileno(), False)  # a wake-up never blocks a caller

    def __repr__(self) -> str:
        return (
            f"ProcessExecutor(workers={self._count}, threads={self._threads}, "
            f"in_flight={self.in_flight()})"
        )

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the worker processes and the event reader. Idempotent."""
        with self._lock:
            if self._started or self._closing:
                return
            self._started = True
        if self._store is None:
            self._store = open_store(self._url)
        parent_format, parent_level = parent_log_config()
        self._config = replace(
            self._config,
            log_format=self._log_format or parent_format,
            log_level=self._log_level or parent_level or self._settings.log_level,
        )
        self._ctx.set_forkserver_preload(list(PRELOAD))
        for index in range(self._count):
            self._spawn(index)
        self._reader = threading.Thread(
            target=self._read_loop, name="workflow-worker-reader", daemon=True
        )
        self._reader.start()

    def wait_ready(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until every worker reported ready."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not (
                len(self._workers) == self._count and all(w.ready for w in self._workers.values())
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def shutdown(self, timeout: float, *, reason: str | None = None) -> None:
        """Stop taking work; drain up to ``timeout``; cancel; stop the workers.

        Returns after at most about ``timeout + 2 * cancel_grace + 12`` seconds even
        when workers hang (they are terminated, then killed). Idempotent.
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
            started = self._started
            left = len(self._pending)
            self._pending.clear()
            self._saturation.drained()
            for worker in self._workers.values():
                worker.send(dumps(DropHeld("stopping")))
        if not started:
            self._close_handles()
            return
        if left:
            logger.warning(
                "stopping: %d waiting run(s) not started; they stay PENDING and are "
                "dispatched after a restart",
                left,
            )
        busy = not self._wait_until(lambda: not self._assigned_locked(), time.monotonic() + timeout)
        why = reason or (f"stopping: not finished within {timeout:g}s" if busy else "stopping")
        with self._lock:
            workers = list(self._workers.values())
            if busy:
                logger.warning("stopping: cancelling %d run(s): %s", self._assigned_locked(), why)
            for worker in workers:
                worker.stopping = True
                worker.send(dumps(Stop(why)))
        gone = lambda: not self._workers  # noqa: E731
        if not self._wait_until(gone, time.monotonic() + self._grace + _STOP_MARGIN):
            for worker in self._live_workers():
                logger.warning("worker process %d did not stop; terminating it", worker.pid)
                worker.process.terminate()
            if not self._wait_until(gone, time.monotonic() + self._grace + 2.0):
                for worker in self._live_workers():
                    logger.error("worker process %d ignored SIGTERM; killing it", worker.pid)
                    worker.process.kill()
                self._wait_until(gone, time.monotonic() + 5.0)
        with self._lock:
            self._reader_done = True
        self._wake()
        if self._reader is not None:
            self._reader.join(timeout=5.0)
        for worker in list(self._workers.values()):  # only if the reader could not
            self._on_death(worker)
        self._close_handles()

    def _close_handles(self) -> None:
        self._events.close()
        self._wake_r.close()
        self._wake_w.close()
        if self._owns_store and self._store is not None:
            self._store.close()

    # ------------------------------------------------------------ work

    def submit(self, request: RunRequest) -> None:
        """Queue ``request`` for the least-loaded worker with a free slot (FIFO)."""
        if not self._started:
            self.start()
        try:
            template = template_of(self._templates, request)
        except TemplateUnavailable as exc:
            self._end_now(request, Status.FAILED, str(exc), kind="DispatchError")
            return
        try:
            payload = dumps(Run(request))
        except Exception as exc:
            message = f"request cannot be sent to a worker process: {type(exc).__name__}: {exc}"
            self._end_now(request, Status.FAILED, message, kind="DispatchError")
            return
        with self._lock:
            if self._closing:
                logger.warning(
                    "executor is shut down: run not started, it stays PENDING",
                    extra=log_extra(request),
                )
                return
            self._pending.append(Assigned(request, template, payload))
            self._dispatch_locked()

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel one run: a waiting one at once (recorded CANCELLED), a running one
        cooperatively. Returns False when the run is not in this executor."""
        with self._lock:
            for item in self._pending:
                if item.request.run_id == run_id:
                    self._pending.remove(item)
                    break
            else:
                for worker in self._workers.values():
                    if run_id in worker.runs:
                        worker.send(dumps(Cancel(run_id, reason)))
                        return True
                return False
        message = f"cancelled before it started: {reason}"
        self._end_now(item.request, Status.CANCELLED, message, kind="Cancelled")
        return True

    def cancel_all(self, reason: str) -> None:
        """Ask every worker to cancel its running runs (waiting ones keep waiting)."""
        with self._lock:
            for worker in self._workers.values():
                worker.send(dumps(Cancel(None, reason)))

    def drain_events(self) -> list[RunEvent]:
        return self._events.drain()

    def wait_event(self, timeout: float) -> bool:
        return self._events.wait(timeout)

    def capacity(self) -> int:
        return self._count * self._threads

    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending) + self._assigned_locked()

    # ------------------------------------------------------------ internals

    def _spawn(self, index: int) -> None:
        try:
            worker = WorkerHandle.start(self._ctx, index, replace(self._config, index=index))
        except Exception:
            logger.exception("could not start worker process %d", index)
            self._schedule_restart(index, ready=False)
            return
        with self._lock:
            self._workers[index] = worker
            self._dispatch_locked()
            self._changed.notify_all()
        logger.info("worker process %d started (pid %d)", index, worker.pid)

    def _read_loop(self) -> None:
        while True:
            with self._lock:
                if self._reader_done:
                    return
                workers = list(self._workers.values())
                due = min(self._restarts.values(), default=None)
            waitables: dict[Any, WorkerHandle | None] = {self._wake_r: None}
            for worker in workers:
                waitables[worker.events] = worker
                waitables[worker.process.sentinel] = worker
            timeout = None if due is None else max(due - time.monotonic(), 0.0)
            dead: dict[int, WorkerHandle] = {}
            for ready in wait(list(waitables), timeout):
                owner = waitables[ready]
                if owner is None:
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
                elif ready is owner.events:
                    if not self._read_messages(owner):
                        dead[owner.index] = owner
                else:
                    dead[owner.index] = owner
            for worker in dead.values():
                self._on_death(worker)
            self._restart_due()

    def _read_messages(self, worker: WorkerHandle) -> bool:
        """Handle every message waiting on the worker's pipe; False at EOF."""
        try:
            while True:
                self._handle(worker, worker.events.recv())
                if not worker.events.poll():
                    return True
        except (EOFError, OSError):
            return False

    def _handle(self, worker: WorkerHandle, message: object) -> None:
        """Handle one :class:`~.wire.Batch` of ``worker`` under one lock acquisition."""
        if not isinstance(message, Batch):
            logger.error("worker process %d sent %r; ignored", worker.pid, type(message))
            return
        events: list[RunEvent] = []
        finished = False
        with self._lock:
            for item in message.messages:
                match item:
                    case Ready():
                        worker.ready = True
                        self._failures.pop(worker.index, None)
                    case RunEvent(kind="finished"):
                        events.append(item)
                        finished = True
                        worker.runs.pop(item.run_id, None)
                    case RunEvent():
                        events.append(item)
                    case StageTime():
                        self._meter.stage_finished(item.seconds)
            if finished:
                self._dispatch_locked()
            self._changed.notify_all()
        self._events.extend(events)

    def _on_death(self, worker: WorkerHandle) -> None:
        with self._lock:
            if self._workers.get(worker.index) is not worker:
                return
            del self._workers[worker.index]
        try:  # events written before the worker died still count
            while worker.events.poll():
                self._handle(worker, worker.events.recv())
        except (EOFError, OSError):
            pass
        cause = worker.reap()
        with self._lock:
            orphans = list(worker.runs.values())
            worker.runs.clear()
        if worker.stopping:
            logger.info("%s (stopped)", cause)
        else:
            logger.error("%s with %d run(s) assigned", cause, len(orphans))
        store = self._store
        assert store is not None
        requeue: list[Assigned] = []
        for item in orphans:
            settled = settle_orphan(
                store,
                item.request,
                cause,
                stopping=worker.stopping,
                closing=self._closing,
                now=self._clock.now(),
            )
            if settled.again:
                requeue.append(item)
            if settled.event is not None:
                self._events.put(settled.event)
        with self._lock:
            closing = self._closing
            if requeue and not closing:
                self._pending.extendleft(reversed(requeue))
            if not closing:
                self._meter.worker_restarted()
                self._schedule_restart(worker.index, ready=worker.ready)
            self._dispatch_locked()
            self._changed.notify_all()

    def _end_now(self, request: RunRequest, status: Status, message: str, *, kind: str) -> None:
        """Record a run that will not reach a worker as ended, and report its end."""
        log = logger.warning if status is Status.CANCELLED else logger.error  # asked for
        log("run not started: %s", message, extra=log_extra(request))
        if self._store is None:
            self._store = open_store(self._url)
        now = self._clock.now()
        record_end(
            self._store, request.run_id, status, message, kind=kind, now=now, owner=request.owner
        )
        self._events.put(RunEvent("finished", request.run_id, status, message))

    def _schedule_restart(self, index: int, *, ready: bool) -> None:
        """Restart at once after a crash; back off when workers die before being ready."""
        if ready:
            delay = 0.0
        else:
            self._failures[index] += 1
            delay = min(0.5 * 2 ** (self._failures[index] - 1), _MAX_BACKOFF)
            logger.error("worker process %d failed to start; retrying in %.1fs", index, delay)
        self._restarts[index] = time.monotonic() + delay
        self._wake()

    def _restart_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._closing:
                self._restarts.clear()
                return
            due = [i for i, at in self._restarts.items() if at <= now]
            for index in due:
                del self._restarts[index]
        for index in due:
            self._spawn(index)

    def _dispatch_locked(self) -> None:
        while self._pending:
            free = [
                w for w in self._workers.values() if not w.stopping and len(w.runs) < self._threads
            ]
            if not free:
                self._saturation.waiting(len(self._pending))
                return
            worker = min(free, key=lambda w: (len(w.runs), w.index))
            item = self._pending.popleft()
            payload = item.payload
            if worker.versions.needs(item.request):
                payload = dumps(Run(item.request, item.template))
                worker.versions.sent(item.request)
            worker.runs[item.request.run_id] = item
            worker.send(payload)
        self._saturation.drained()

    def _assigned_locked(self) -> int:
        return sum(len(w.runs) for w in self._workers.values())

    def _wait_until(self, done: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``done()`` (called under the lock) holds; False at the deadline."""
        with self._lock:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def _live_workers(self) -> list[WorkerHandle]:
        with self._lock:
            return list(self._workers.values())

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send_bytes(b"")
