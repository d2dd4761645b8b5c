"""The body of ``workflow worker``: run the run messages of a Celery queue.

:func:`serve_worker` starts a Celery worker (threads pool, ``--concurrency``
runs at once) on the queues given, with a :class:`WorkerRuntime` that holds what
every run of this process shares: the run store, the conf folder, built
pipelines, per-run log files and this worker's **lease** in the store. Policies:

* **Conditional start, then the run is the worker's.** A message's first step is
  the start handshake: PENDING to RUNNING only if the run is still PENDING and
  still the dispatching daemon's (not taken over). The same update makes the
  worker the run's owner, so its end is fenced with the worker's id, and a
  duplicate delivery (a redelivery after a lost worker or a visibility timeout,
  a resend) finds the run started and does nothing.
* **The version the daemon sent.** A worker reads the same conf folder (the
  folder may have another path: a version does not depend on it). It re-reads
  the folder when it changed and keeps the versions it has seen, so a run of
  the daemon's last good version still runs after an edit. A message naming a
  version this worker does not have fails the run clearly (recorded FAILED,
  naming both versions) rather than running a different pipeline (see
  :mod:`.worker_templates`).
* **Lease.** The worker joins the run store as an owner of kind ``worker`` and
  renews its heartbeat every third of ``WORKFLOW_APP_LEASE_SECONDS``. When it
  dies, a daemon takes it over once its lease ran out and records each of its
  RUNNING runs FAILED (worker lost), once. A worker whose lease was taken over
  (it was paused or cut off for longer than the lease) cancels its runs, whose
  ends are no longer its to record, and joins again under a new id.
* **Before the start, retry; after it, never.** A message that cannot start
  because the run store does not answer is sent again with backoff, at most
  ``WORKFLOW_CELERY_MAX_RETRIES`` times, then given up (logged, and recorded
  FAILED if the store answers by then). A run that started is never started
  again: side effects may have happened.
* **Cancel and stop.** The ``workflow_cancel`` remote control command (sent with
  a revoke by the daemon or the API) cancels a running run's token; the engine
  kills its shell process groups and the run is recorded CANCELLED. On SIGTERM
  the worker stops taking messages, gives its runs ``WORKFLOW_APP_STOP_TIMEOUT``
  seconds, cancels the rest and exits; messages it reserved but did not start
  go back to the queue, and a scheduled run it held for its release instant is
  handed back (requeued) untouched. A cancel asked through the run store
  (``workflow cancel``, the API) reaches the worker's running runs too: a
  :class:`~.cancel_watch.CancelWatch` asks the store about once a second for
  the runs it holds whose cancel was asked, and cancels their tokens.
* **Logs.** The worker logs like the daemon (JSON lines), and writes per-run log
  files under ``WORKFLOW_LOG_PATH`` like a daemon worker process does. When a run
  ends, its log (the last :data:`LOG_KEPT` bytes) is saved in the run store too,
  where ``workflow logs`` and the API read it on any machine.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..cancellation import CancelToken
from ..clock import Clock, SystemClock
from ..engine.pipeline_cache import PipelineCache
from ..errors import StoreError
from ..loader import Loader
from ..logs import RunLogRouter, run_log_path
from ..masking import Masker
from ..result import Status
from ..settings import Settings
from ..store import open_store
from ..store.base import RunStore
from ..store.ends import EndJournal, EndRecorder
from ..store.fleet import new_owner_id
from .base import log_extra
from .cancel_watch import CancelWatch
from .celery_app import CANCEL_COMMAND, RUN_TASK, celery_app, safe_broker_url
from .execute import execute_request
from .orphans import record_end
from .records import RunRequest
from .worker_templates import WorkerTemplates

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["WorkerRuntime", "install", "serve_worker"]

logger = logging.getLogger(__name__)

LOG_KEPT = 1 << 20
"""Bytes of a run's log saved in the store (its end, when longer)."""
RETRY_BASE = 2.0
"""Seconds before the first retry of a message that could not start; doubles each time."""


class Handback(Exception):  # noqa: N818 - reads as what happens to the message
    """The message goes back to its queue untouched (raised to the task wrapper)."""


@dataclass(frozen=True)
class Outcome:
    """What became of one message (for logs and tests)."""

    run_id: str | None
    what: str
    """``finished``, ``refused`` (not PENDING or not the sender's any more),
    ``failed`` (recorded FAILED before the start), ``retry``, ``dropped``."""
    again: Mapping[str, Any] | None = None
    """The message to send again (``retry``): sent once this one is done here."""


class WorkerRuntime:
    """What the runs of one worker process share (see the module docstring).

    Args:
        settings: Settings (store URL, conf folder, lease, stop timeout, retries).
        masker: Hides secrets in stored records and log lines.
        store: The run store (default: opened from ``WORKFLOW_API_DB_URL``, and
            closed by :meth:`close`).
        clock: Time source of the records.
        owner: This worker's owner id (default: a new one).
        cancel_grace: Seconds a cancelled run gets before the stop goes on.
    """

    def __init__(
        self,
        settings: Settings,
        masker: Masker,
        *,
        store: RunStore | None = None,
        clock: Clock | None = None,
        owner: str | None = None,
        cancel_grace: float = 5.0,
    ) -> None:
        self.settings = settings
        self.masker = masker
        self._owns_store = store is None
        self.store = store if store is not None else open_store(settings.api_db_url)
        self.clock = clock or SystemClock()
        self._base_owner = owner or new_owner_id()
        self.owner = self._base_owner
        self._joins = 0
        self._grace = cancel_grace
        self.templates = WorkerTemplates(Loader.from_settings(settings))
        self._pipelines = PipelineCache()
        self._ends = EndRecorder(
            self.store, journal=EndJournal.for_store(settings, settings.api_db_url)
        )
        self._router: RunLogRouter | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active: dict[str, CancelToken] = {}
        self._held: set[str] = set()
        self._stopping: str | None = None
        self._closed = threading.Event()
        self._stopped = threading.Event()
        self._store_down = False
        self._lease: threading.Thread | None = None
        self._cancels = CancelWatch(
            self.store, owner=lambda: self.owner, cancel=self.cancel, name="worker-cancels"
        )

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Join the run store as a worker, start the lease thread and per-run log files."""
        self._join()
        if self.settings.log_enable_write:
            self._router = RunLogRouter(self.settings.log_path, self.masker)
            logging.getLogger("ddeutil.workflow").addHandler(self._router)
        self._lease = threading.Thread(target=self._keep_alive, name="worker-lease", daemon=True)
        self._lease.start()
        self._cancels.start()
        logger.info("worker joined the run store as %s", self.owner, extra={"owner": self.owner})

    def drain(self, timeout: float | None = None) -> None:
        """Stop: give running runs ``timeout`` seconds (default the stop timeout), cancel the rest.

        Held runs are handed back at once. Returns once no run is active, or after
        ``timeout`` plus the cancel grace.
        """
        wait = self.settings.app_stop_timeout if timeout is None else timeout
        with self._lock:
            if self._stopping is None:
                self._stopping = "worker stopping"
            self._stopped.set()
            active = list(self._active.values())
            held = [self._active[run_id] for run_id in self._held if run_id in self._active]
        logger.info("worker stopping: %d run(s) running, waiting up to %gs", len(active), wait)
        for token in held:
            token.cancel("worker stopping")
        if self._wait_idle(time.monotonic() + wait):
            return
        why = f"worker stopping: not finished within {wait:g}s"
        with self._lock:
            active = list(self._active.values())
        logger.warning("worker stopping: cancelling %d run(s): %s", len(active), why)
        for token in active:
            token.cancel(why)
        if not self._wait_idle(time.monotonic() + self._grace):
            self._abandon(why)

    def _abandon(self, why: str) -> None:
        """Record runs that ignored the cancel CANCELLED: none is left RUNNING behind."""
        with self._lock:
            left = list(self._active)
        logger.error(
            "worker stopping: %d run(s) ignored the cancel for %gs; recorded CANCELLED and "
            "left behind",
            len(left),
            self._grace,
        )
        message = f"cancelled: {why} (the run ignored the cancel)"
        for run_id in left:
            record_end(
                self.store,
                run_id,
                Status.CANCELLED,
                message,
                kind="Cancelled",
                now=self.clock.now(),
                owner=self.owner,
            )

    def close(self) -> None:
        """Leave the run store (after :meth:`drain`) and release what the worker holds."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._cancels.close()
        if self._lease is not None:
            self._lease.join(timeout=2.0)
        try:
            self.store.leave(self.owner, now=self.clock.now())
        except Exception as exc:
            logger.warning("could not record leaving the run store: %s", exc)
        self._ends.close()
        if self._router is not None:
            logging.getLogger("ddeutil.workflow").removeHandler(self._router)
            self._router.close()
            self._router = None
        if self._owns_store:
            self.store.close()

    @property
    def active(self) -> list[str]:
        """Run ids this worker is running (or holding for their release instant)."""
        with self._lock:
            return list(self._active)

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel a run this worker is running; ``False`` when it is not here."""
        with self._lock:
            token = self._active.get(run_id)
        if token is None:
            return False
        logger.info("cancelling run: %s", reason, extra={"run_id": run_id})
        token.cancel(reason)
        return True

    # ------------------------------------------------------------ one message

    def handle(self, payload: Any, *, retry: Callable[[Mapping[str, Any]], Any]) -> Outcome:
        """Execute the run of one message (see the module docstring).

        Args:
            payload: The message's argument: a :class:`RunRequest` as JSON values.
            retry: Sends the message again (with its new attempt); called, after
                a backoff, when the run could not start because the store did not
                answer.

        Raises:
            Handback: the worker is stopping before a held run's release instant:
                the message goes back to the queue.
        """
        try:
            request = RunRequest.from_dict(payload)
        except Exception as exc:
            logger.error("run message dropped: not a run request (%s: %s)", type(exc).__name__, exc)
            return Outcome(None, "dropped")
        extra = log_extra(request)
        token = CancelToken()
        with self._lock:
            if request.run_id in self._active:
                logger.info("duplicate delivery of a run already running here", extra=extra)
                return Outcome(request.run_id, "refused")
            if self._stopping is not None:
                raise Handback(self._stopping)
            self._active[request.run_id] = token
        try:
            outcome = self._handle(request, token)
        finally:
            with self._lock:
                self._active.pop(request.run_id, None)
                self._idle.notify_all()
        if outcome.again is not None:  # not before: this worker may take it at once
            retry(outcome.again)
        return outcome

    def _handle(self, request: RunRequest, token: CancelToken) -> Outcome:
        extra = log_extra(request)
        try:
            template = self.templates.get(request.pipeline, request.version)
        except LookupError as exc:
            return self._fail_unstarted(request, str(exc), "VersionMismatch")
        self._hold(request, token)
        try:
            result = execute_request(
                request,
                template,
                store=self.store,
                settings=self.settings,
                masker=self.masker,
                clock=self.clock,
                cancel=token,
                loader=self.templates.loader,
                router=self._router,
                pipelines=self._pipelines,
                ends=self._ends,
                runner=self.owner,
                retry_start=True,
            )
        except StoreError as exc:
            return self._retry(request, exc)
        if result is None:
            return Outcome(request.run_id, "refused")
        self._save_log(request)
        logger.debug("run message done: %s", result.status.value, extra=extra)
        return Outcome(request.run_id, "finished")

    def _save_log(self, request: RunRequest) -> None:
        """Keep the run's log file in the store, for readers on other machines."""
        if self._router is None:
            return
        path = run_log_path(self.settings.log_path, request.run_id)
        try:
            with path.open("rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(size - LOG_KEPT, 0))
                data = fh.read()
            text = data.decode("utf-8", errors="replace")
            if size > LOG_KEPT:  # the end is what explains how it ended
                text = text.partition("\n")[2]
                dropped = {"level": "WARNING", "message": f"[{size - len(data)}+ bytes dropped]"}
                text = json.dumps(dropped) + "\n" + text
            self.store.save_log(request.run_id, text)
        except Exception as exc:
            logger.warning("run log not saved in the store: %s", exc, extra=log_extra(request))

    def _hold(self, request: RunRequest, token: CancelToken) -> None:
        """Wait for a scheduled run's release instant; hand it back if the worker stops."""
        if request.release is None:
            return
        at = request.release.at.timestamp()
        if at <= time.time():
            return
        with self._lock:
            stopping = self._stopping
            self._held.add(request.run_id)
        try:
            if stopping is None:
                while (left := at - time.time()) > 0 and not token.wait(left):
                    pass
        finally:
            with self._lock:
                self._held.discard(request.run_id)
                stopping = self._stopping
        if stopping is not None:  # another cancel: the start sees the token and does nothing
            raise Handback(stopping)

    def _retry(self, request: RunRequest, exc: StoreError) -> Outcome:
        extra = log_extra(request)
        cap = self.settings.celery_max_retries
        if request.attempt > cap:
            reason = (
                f"gave up after {request.attempt} deliveries: the run could not start "
                f"(run store: {exc})"
            )
            logger.error("run message given up: %s", reason, extra=extra)
            self._fail_unstarted(request, reason, "DeliveryFailed", log=False)
            return Outcome(request.run_id, "dropped")
        delay = RETRY_BASE * 2 ** (request.attempt - 1)
        logger.warning(
            "run could not start (run store: %s); delivery %d of %d, sent again in %gs",
            exc,
            request.attempt,
            cap + 1,
            delay,
            extra=extra,
        )
        # The backoff holds this thread (a store that does not answer fails every run
        # anyway); a stopping worker sends the message again at once.
        self._stopped.wait(delay)
        again = replace(request, attempt=request.attempt + 1).to_dict()
        return Outcome(request.run_id, "retry", again)

    def _fail_unstarted(
        self, request: RunRequest, reason: str, kind: str, *, log: bool = True
    ) -> Outcome:
        """Record a run that cannot start FAILED (if still PENDING and the sender's)."""
        message = self.masker.text(reason)
        if log:
            logger.error("run not started: %s", message, extra=log_extra(request))
        written = record_end(
            self.store,
            request.run_id,
            Status.FAILED,
            message,
            kind=kind,
            now=self.clock.now(),
            owner=request.owner,
        )
        if written is None:  # the store failed (logged)
            return Outcome(request.run_id, "dropped")
        return Outcome(request.run_id, "failed" if written else "refused")

    # ------------------------------------------------------------ lease

    def _join(self) -> None:
        at = self.clock.now()
        host, pid = socket.gethostname(), os.getpid()
        while not self.store.join(self.owner, now=at, host=host, pid=pid, kind="worker"):
            self._joins += 1
            self.owner = f"{self._base_owner}/{self._joins + 1}"

    def beat(self, now: datetime | None = None) -> bool:
        """Renew the lease; on a lease taken over, cancel the runs and join again.

        Returns whether the lease was still this worker's.

        Raises:
            StoreError: the store does not answer.
        """
        at = now if now is not None else self.clock.now()
        if self.store.heartbeat(now=at, owner=self.owner):
            return True
        lost = self.owner
        with self._lock:
            active = list(self._active.items())
        logger.error(
            "worker lease lost: owner %s was taken over (no heartbeat for more than %gs: "
            "paused, or cut off from the run store); its %d run(s) are cancelled here "
            "(recorded FAILED, worker lost, by the daemon); joining again",
            lost,
            self.settings.app_lease_seconds,
            len(active),
        )
        for _, token in active:
            token.cancel(f"worker {lost} lost its lease")
        self._join()
        return False

    def _keep_alive(self) -> None:
        every = self.settings.app_lease_seconds / 3
        while not self._closed.wait(every):
            try:
                self.beat()
            except StoreError as exc:
                if not self._store_down:
                    logger.error("heartbeat failed: the run store does not answer (%s)", exc)
                self._store_down = True
            except Exception:
                logger.exception("heartbeat failed")
            else:
                if self._store_down:
                    logger.warning("the run store answers again")
                self._store_down = False

    def _wait_idle(self, deadline: float) -> bool:
        with self._lock:
            while self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True


def install(app: Celery, runtime: WorkerRuntime) -> None:
    """Register the run task and the cancel command of ``runtime`` on ``app``."""
    from celery.exceptions import Reject
    from celery.worker.control import control_command

    app.workflow_runtime = runtime  # the cancel command finds it on the worker's app

    @app.task(name=RUN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
    def run(task: Any, payload: Any) -> str:
        def again(body: Mapping[str, Any]) -> None:
            task.apply_async(
                args=[dict(body)],
                task_id=task.request.id,
                queue=(task.request.delivery_info or {}).get("routing_key"),
            )

        try:
            return runtime.handle(payload, retry=again).what
        except Handback as exc:
            logger.info("run message handed back to its queue: %s", exc)
            raise Reject(str(exc), requeue=True) from None

    if CANCEL_COMMAND not in _registered_commands():

        @control_command(  # type: ignore[untyped-decorator]
            args=[("run_id", str), ("reason", str)], signature="<run_id> <reason>"
        )
        def workflow_cancel(state: Any, run_id: str, reason: str = "cancelled") -> dict[str, Any]:
            current = getattr(state.consumer.app, "workflow_runtime", None)
            found = isinstance(current, WorkerRuntime) and current.cancel(run_id, reason)
            return {"ok": "cancelled"} if found else {"ok": "not here"}


def _tick() -> None:
    """Nothing: a timer that bounds the event loop's wait."""


def _registered_commands() -> Sequence[str]:
    from celery.worker.control import Panel

    return list(Panel.data)


def serve_worker(
    settings: Settings,
    masker: Masker,
    *,
    concurrency: int,
    queues: Sequence[str],
    log_level: str,
) -> int:
    """Run a Celery worker in the foreground until it is stopped; return its exit code."""
    app = celery_app(settings, name="ddeutil-workflow-worker")
    runtime = WorkerRuntime(settings, masker)
    install(app, runtime)
    from celery.signals import worker_ready, worker_shutting_down

    def on_ready(sender: Any = None, **_: Any) -> None:
        hub = getattr(getattr(sender, "controller", None), "hub", None)
        if hub is not None:  # a stop signal is seen within a second, not at the next timer
            hub.call_repeatedly(1.0, _tick)
        logger.info("worker ready: consuming %s", ",".join(queues))

    def on_stop(**_: Any) -> None:
        threading.Thread(target=runtime.drain, name="worker-drain", daemon=True).start()

    if logging.getLevelName(log_level) != logging.DEBUG:  # a line per message, params included
        logging.getLogger("celery").setLevel(logging.WARNING)
    worker_ready.connect(on_ready, weak=False)
    worker_shutting_down.connect(on_stop, weak=False)
    runtime.start()
    logger.info(
        "worker started: %d run(s) at once, queues %s, broker %s, store %s",
        concurrency,
        ",".join(queues),
        safe_broker_url(settings.celery_broker_url),
        runtime.store,
    )
    try:
        worker = app.Worker(
            pool="threads",
            concurrency=concurrency,
            queues=list(queues),
            loglevel=log_level,
            hostname=f"workflow-{os.getpid()}@{socket.gethostname()}",
            without_mingle=True,
            without_gossip=True,
            without_heartbeat=True,
            quiet=True,
        )
        worker.start()
        code = int(worker.exitcode or 0)
    finally:
        if runtime.active:  # Celery gave up waiting for them (a second stop signal)
            runtime.drain(0.0)
        runtime.close()
    logger.info("worker stopped")
    return code
