"""The scheduler daemon process: lock, recover, tick each minute, stop cleanly.

Lifecycle of ``python -m ddeutil.workflow.app`` (and ``workflow scheduler``):

1. Read the settings (a bad value: message naming the variable, exit 2), set up
   JSON logging, open the run store and take its **scheduler lock**. On SQLite
   the lock is exclusive: a second daemon on the same store refuses to start
   with a clear message (exit 1). On PostgreSQL any number of daemons share the
   store (see :mod:`ddeutil.workflow.store.fleet`).
2. Join the store under a new owner id, start the worker processes and
   **recover**: the work of daemons that are gone is taken over (runs they left
   RUNNING are recorded FAILED, their claimed releases that never started are
   dispatched again).
3. **Tick at every minute boundary**, using the ``schedule`` library
   (``every().minute.at(":00")``). Between ticks the main thread sleeps exactly
   until the next boundary (``idle_seconds``), at most 60 s at a time so a wall
   clock that steps is noticed; a signal wakes it at once. It is not a polling
   loop. It wakes once :data:`PREPARE_LEAD` before the boundary to check the
   conf folder for changes and dispatch the releases of the boundary ahead
   (:meth:`Scheduler.prepare`): the workers hold them and start them at the
   release instant. A helper thread waits on executor events to start queued
   runs as soon as a slot frees up (asking the store every second while
   releases wait, since a slot may free up on another daemon), starts the
   releases a schedule's ``jitter`` held at their start instant, and calls
   :meth:`Scheduler.beat` every third of ``WORKFLOW_APP_LEASE_SECONDS``:
   heartbeat, takeover of daemons whose lease ran out. A thread of its own
   renews the lease (:meth:`Scheduler.keep_alive`) on the same rhythm, so a
   tick or takeover waiting on the database never lets the lease run out. A store that does not
   answer is retried at the next beat or tick, with the error logged once per
   outage, and the daemon goes on. A **retention** thread prunes runs older
   than ``WORKFLOW_RUN_RETENTION_DAYS`` (see
   :mod:`ddeutil.workflow.store.retention`): first :data:`PRUNE_FIRST` after
   start (start-up stays fast), then every :data:`PRUNE_EVERY`, in short batches
   that never hold the store long; it stops between batches on shutdown and an
   error is logged, never fatal. Every daemon on a shared store prunes: the
   batches are idempotent. A **cancel** thread hands the cancel requests of the
   daemon's runs (``workflow cancel``, the API) to the executor about once a
   second (:class:`~ddeutil.workflow.dispatch.cancel_watch.CancelWatch`). A
   **notify** thread (:class:`~ddeutil.workflow.notify.service.NotifyService`)
   records the ``missed`` notices of late releases and sends the notification
   outbox every few seconds.
4. Signals: **SIGTERM / SIGINT** stop ticking, let running pipelines finish for
   ``WORKFLOW_APP_STOP_TIMEOUT`` seconds, cancel the rest (shell children
   included; recorded CANCELLED) and exit 0. A **second** SIGTERM / SIGINT exits
   at once with status ``128 + signal`` (143 / 130); runs still RUNNING then are
   closed as FAILED (interrupted) at the next start. **SIGHUP** reloads the conf
   folder at the next tick. **SIGCHLD** reaps orphaned descendants (see
   :mod:`.reaper`), so the daemon leaves no zombies when it is PID 1.

Signal handlers only record the signal (and exit on the second stop signal);
the main loop does the work. A ``socketpair`` registered with
:func:`signal.set_wakeup_fd` interrupts the sleep, which avoids taking locks
inside a signal handler.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from types import FrameType
from typing import Any

import schedule

from ..clock import Clock, SystemClock
from ..dispatch.base import Executor, TemplateSource
from ..dispatch.cancel_watch import CancelWatch
from ..errors import SettingsError, StoreError, StoreLockedError, WorkflowError
from ..loader import Loader, RawTemplate
from ..logs import configure_logging
from ..masking import Masker
from ..metrics import NULL_METER, Meter
from ..notify.notices import Notifier
from ..notify.sender import Sender
from ..notify.service import SWEEP_WINDOW, NotifyService
from ..notify_rule import NotifyRule, Targets
from ..scheduling.scheduler import Scheduler, new_owner_id
from ..scheduling.validation import Validator
from ..settings import Settings
from ..startup import conf_path_problem, warn_unknown_variables
from ..store import open_store
from ..store.base import RunStore
from ..store.ends import EndJournal
from ..store.retention import PruneReport, Retention
from .metrics import DaemonMetrics, MetricsUnavailable, start_metrics
from .options import add_arguments
from .reaper import become_subreaper, reap_orphans

__all__ = ["Daemon", "main", "serve", "wait_readable"]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
MAX_SLEEP = 60.0
"""Longest single sleep: the boundary is recomputed at least this often."""
EVENT_WAIT = 5.0
"""Bounded wait of the event helper thread (it wakes at once on an event)."""
ADMIT_POLL = 1.0
"""How often the event helper asks the store for slots while releases wait."""
JITTER_LOOK = 0.1
"""Seconds after a boundary when the event helper looks for releases held for their jitter."""
PREPARE_LEAD = 0.05
"""Seconds before a boundary when the conf check and dispatch of the next tick are done."""
FINAL_STEP = 0.005
"""Length of the last, short sleep before a deadline (see :func:`wait_readable`)."""
PRUNE_FIRST = 600.0
"""Seconds after start when the retention thread prunes for the first time."""
PRUNE_EVERY = 86_400.0
"""Seconds between two retention passes."""
RETENTION_JOIN = 5.0
"""Seconds a stopping daemon waits for the retention thread (it stops between batches)."""

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Signals:
    """Records signals and wakes the main loop through a socket pair."""

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self.received: deque[int] = deque()
        self.stop_requested = False
        self._previous: dict[int, Any] = {}
        self._previous_fd: int | None = None

    def install(self) -> bool:
        """Install the handlers (main thread only); returns whether they were installed."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self._previous_fd = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        for signum in (*_STOP_SIGNALS, signal.SIGHUP, signal.SIGCHLD):
            self._previous[signum] = signal.signal(signum, self._handle)
        return True

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
            self._previous_fd = None
        self._read.close()
        self._write.close()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum in _STOP_SIGNALS:
            if self.stop_requested:
                os.write(2, b"workflow scheduler: second stop signal, exiting at once\n")
                os._exit(128 + signum)
            self.stop_requested = True
        self.received.append(signum)

    def wake(self) -> None:
        """Interrupt :meth:`wait` from another thread."""
        with contextlib.suppress(OSError):  # full (already awake) or closed
            self._write.send(b"\0")

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, or until a signal or :meth:`wake`."""
        wait_readable(self._read, timeout)
        try:
            while self._read.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass


def wait_readable(sock: socket.socket, timeout: float) -> bool:
    """Block until ``sock`` is readable or ``timeout`` seconds passed; True if readable.

    Linux lets ``select()`` overshoot by 0.1 % of its timeout (1 ms on a 1 s wait,
    60 ms on a minute). Each step but the last therefore stops short of the
    deadline by twice that (at least :data:`FINAL_STEP`), so even a minute's
    sleep never overshoots: the last, short step lands the wake-up within the
    kernel's 50 µs timer slack of the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        short = max(FINAL_STEP, left / 500)
        step = left - short if left > 2 * short else left
        if select.select([sock], [], [], step)[0]:
            return True


class Daemon:
    """Drives a :class:`~ddeutil.workflow.scheduling.scheduler.Scheduler` from the wall clock.

    Args:
        settings: Frozen settings (stop timeout).
        scheduler: The scheduler to start, tick and stop.
        executor: The scheduler's executor (the event helper waits on it).
        retention: Prunes old runs from a thread of its own (``None``: never).
        prune_first: Seconds after start of the first retention pass.
        prune_every: Seconds between retention passes.
        cancels: Hands the cancel requests of the daemon's runs to the executor
            (``workflow cancel``, the API), started with the scheduler and
            stopped after it.
        notify: Finds missed releases and sends the outbox on a thread, started
            with the scheduler and stopped after it (with ``once``: one pass
            at the end instead).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        scheduler: Scheduler,
        executor: Executor,
        retention: Retention | None = None,
        prune_first: float = PRUNE_FIRST,
        prune_every: float = PRUNE_EVERY,
        cancels: CancelWatch | None = None,
        notify: NotifyService | None = None,
    ) -> None:
        self._settings = settings
        self._notify = notify
        self._retention = retention
        self._prune_first = prune_first
        self._prune_every = prune_every
        self._stop_pruning = threading.Event()
        self._cancels = cancels
        self._scheduler = scheduler
        self._executor = executor
        self._beat_every = settings.app_lease_seconds / 3
        self._store_down = False
        self._store_state = threading.Lock()  # the outage is logged once, whichever thread saw it
        self._signals = _Signals()
        self._stop_events = threading.Event()
        self._stop_requested = False
        self._prepared = False

    @property
    def stopping(self) -> bool:
        return self._stop_requested or self._signals.stop_requested

    def request_stop(self) -> None:
        """Ask the loop to stop (thread-safe; what SIGTERM does)."""
        self._stop_requested = True
        self._signals.wake()

    def run(self, *, once: bool = False, freeze: bool = False) -> int:
        """Start, tick until asked to stop (or once), stop; return the exit code.

        Args:
            once: Tick once right away, wait for the dispatched runs (up to the stop
                timeout, then cancel them) and return: an operations and testing
                aid (``--once``).
            freeze: Once started, hide what is alive from the cyclic garbage
                collector (``gc.freeze``): the loaded catalog lives as long as the
                process, and a full collection walking it during a tick cost up to
                ~70 ms with 10,000 pipelines. For the process's own entry points.
        """
        self._signals.install()
        become_subreaper()
        helper: threading.Thread | None = None
        pruner: threading.Thread | None = None
        try:
            self._scheduler.start()
            if freeze:
                gc.collect()
                gc.freeze()
            if self._cancels is not None:
                self._cancels.start()
            if once:
                self._tick()
            else:
                if self._notify is not None:
                    self._notify.start()
                helper = threading.Thread(target=self._pump, name="scheduler-events", daemon=True)
                helper.start()
                lease = threading.Thread(
                    target=self._keep_alive, name="scheduler-lease", daemon=True
                )
                lease.start()
                if self._retention is not None:
                    pruner = threading.Thread(
                        target=self._retain, name="scheduler-retention", daemon=True
                    )
                    pruner.start()
                self._loop()
        finally:
            self._stop_pruning.set()  # before the drain: a prune stops at its next batch
            logger.info("scheduler stopping (stop timeout %gs)", self._settings.app_stop_timeout)
            self._scheduler.stop(self._settings.app_stop_timeout)
            if self._cancels is not None:
                self._cancels.close()
            if self._notify is not None:
                self._notify.stop()
                if once:
                    self._guarded("notify", self._notify.beat)
            self._stop_events.set()
            if helper is not None:
                helper.join(timeout=1.0)
            if pruner is not None:
                pruner.join(timeout=RETENTION_JOIN)
            reap_orphans()
            self._signals.restore()
        return EXIT_OK

    def _loop(self) -> None:
        jobs = schedule.Scheduler()
        jobs.every().minute.at(":00").do(self._tick)
        logger.info("scheduler ticks at every minute boundary; next at %s", jobs.next_run)
        while not self.stopping:
            jobs.run_pending()
            self._handle_signals()
            if self.stopping:
                return
            idle = jobs.idle_seconds
            left = max(idle if idle is not None else MAX_SLEEP, 0.0)
            if not self._prepared and left <= PREPARE_LEAD:
                self._prepare(jobs.next_run)
                continue
            lead = 0.0 if self._prepared else PREPARE_LEAD
            self._signals.wait(min(left - lead, MAX_SLEEP))
            self._handle_signals()

    def _prepare(self, next_run: datetime | None) -> None:
        """Conf check and dispatch ahead of the tick at ``next_run`` (naive local time)."""
        self._prepared = True
        boundary = None if next_run is None else next_run.astimezone(timezone.utc)
        try:
            self._scheduler.prepare(boundary)
        except Exception:
            logger.exception("dispatch before the tick failed; the tick retries it")

    def _tick(self) -> None:
        self._prepared = False
        self._guarded("tick", self._scheduler.tick, "the next tick retries (nothing is lost)")
        reap_orphans()

    def _guarded(self, what: str, call: Callable[[], object], then: str = "") -> None:
        """``call()``; a store that does not answer is logged once per outage, any
        other error with its traceback; an answer ends the outage."""
        try:
            call()
        except StoreError as exc:
            self._store_failed(what, exc)
        except Exception:
            logger.exception("%s failed%s", what, f"; {then}" if then else "")
        else:
            self._store_back()

    def _store_failed(self, what: str, exc: StoreError) -> None:
        """Log a store outage once (then at DEBUG until it answers again)."""
        with self._store_state:
            was_down, self._store_down = self._store_down, True
        if was_down:
            logger.debug("%s: run store still unavailable: %s", what, exc)
            return
        logger.error(
            "%s failed: the run store does not answer (%s); retrying at every beat and "
            "tick, missed releases are caught up by policy when it is back",
            what,
            exc,
        )

    def _store_back(self) -> None:
        with self._store_state:
            was_down, self._store_down = self._store_down, False
        if was_down:
            logger.warning("the run store answers again")

    def _handle_signals(self) -> None:
        while self._signals.received:
            signum = self._signals.received.popleft()
            if signum == signal.SIGHUP:
                logger.info("SIGHUP: the conf folder is reloaded at the next tick")
                self._scheduler.request_reload()
            elif signum == signal.SIGCHLD:
                reap_orphans()
            else:
                logger.info("%s received: stopping", signal.Signals(signum).name)

    def _keep_alive(self) -> None:
        """The lease thread: a heartbeat every third of the lease, whatever else waits."""
        while not self._stop_events.wait(self._beat_every):
            self._guarded("heartbeat", self._scheduler.keep_alive)

    def _retain(self) -> None:
        """The retention thread: a pass after ``prune_first``, then every ``prune_every``."""
        wait = self._prune_first
        while not self._stop_pruning.wait(wait):
            self._guarded("prune", self._prune_once, "the next pass retries")
            wait = self._prune_every

    def _prune_once(self) -> PruneReport:
        assert self._retention is not None
        report = self._retention.run(stop=self._stop_pruning)
        logger.info(
            "pruned %d runs created before %s, %d log files and %d sent notifications "
            "in %d batches, %.3fs (longest batch %.1f ms)%s",
            report.runs,
            report.before.isoformat(),
            report.log_files or 0,
            report.notices,
            report.batches,
            report.elapsed,
            report.longest_batch * 1000,
            "; stopped by the shutdown" if report.stopped else "",
        )
        return report

    def _pump(self) -> None:
        """The helper thread: executor events, waiting releases and the daemon's beat."""
        next_beat = time.monotonic() + self._beat_every
        while not self._stop_events.is_set():
            waiting = self._scheduler.waiting > 0
            wait = min(ADMIT_POLL if waiting else EVENT_WAIT, self._beat_every)
            wait = max(0.0, min(wait, next_beat - time.monotonic()))
            # Releases held for their jitter are added at a boundary: look again just
            # after it, and start the soonest at its start instant.
            wait = min(wait, 60.0 - time.time() % 60.0 + JITTER_LOOK)
            start = self._scheduler.next_start
            if start is not None:
                left = (start - datetime.now(timezone.utc)).total_seconds()
                wait = max(0.0, min(wait, left))
            try:
                if start is not None:
                    self._scheduler.start_held()
                if self._executor.wait_event(wait):
                    self._scheduler.process_events()
                elif waiting and not self._store_down:  # while it is down: at beats only
                    self._scheduler.admit_waiting()
            except StoreError as exc:
                self._store_failed("starting waiting runs", exc)
            except Exception:
                logger.exception("handling executor events failed")
            if time.monotonic() >= next_beat and not self._stop_events.is_set():
                next_beat = time.monotonic() + self._beat_every
                self._guarded("heartbeat", self._scheduler.beat)


def _build_executor(
    settings: Settings,
    store: RunStore,
    masker: Masker,
    clock: Clock,
    templates: TemplateSource,
    *,
    meter: Meter = NULL_METER,
) -> Executor:
    if settings.app_executor == "celery":
        from ..dispatch.celery_executor import CeleryExecutor

        return CeleryExecutor(
            settings=settings, templates=templates, store=store, masker=masker, clock=clock
        )
    from ..dispatch.processes import ProcessExecutor

    return ProcessExecutor(
        settings=settings,
        templates=templates,
        store=store,
        masker=masker,
        clock=clock,
        meter=meter,
    )


def _build_validator(settings: Settings) -> Validator:
    from ..scheduling.validator_process import ProcessValidator

    return ProcessValidator()


def serve(
    settings: Settings,
    *,
    masker: Masker,
    once: bool = False,
    clock: Clock | None = None,
    freeze: bool = False,
) -> int:
    """Run the daemon in the foreground until it is stopped; return the exit code.

    ``freeze``: the caller owns the process (see :meth:`Daemon.run`).

    Exit codes: 0 after a clean stop, 1 when the store cannot be opened, another
    daemon holds its lock or the metrics port cannot be bound, 2 when the conf
    folder is missing (a daemon with no pipelines is a misconfiguration, not a
    quiet success) or the metrics port is asked for without the ``metrics``
    extra, ``128 + signal`` on a second stop signal.
    """
    problem = conf_path_problem(settings)
    if problem is not None:
        logger.error("%s", problem)
        print(f"workflow scheduler: {problem}", file=sys.stderr)
        return EXIT_USAGE
    clock = clock or SystemClock()
    try:
        metrics = start_metrics(settings, clock)
    except MetricsUnavailable as exc:
        logger.error("%s", exc)
        print(f"workflow scheduler: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.usage else EXIT_FAILED
    try:
        return _serve(
            settings, masker=masker, once=once, clock=clock, metrics=metrics, freeze=freeze
        )
    finally:
        if metrics is not None:
            metrics.close()


def _serve(
    settings: Settings,
    *,
    masker: Masker,
    once: bool,
    clock: Clock,
    metrics: DaemonMetrics | None,
    freeze: bool = False,
) -> int:
    meter: Meter = NULL_METER if metrics is None else metrics.meter
    owner = new_owner_id()
    try:
        store = open_store(settings.api_db_url)
    except StoreError as exc:
        logger.error("cannot open the run store: %s", exc)
        print(masker.text(f"workflow scheduler: cannot open the run store: {exc}"), file=sys.stderr)
        return EXIT_FAILED
    try:
        with store.scheduler_lock(owner):
            logger.info(
                "scheduler lock taken on %s (owner %s; %s)",
                _safe_url(settings),
                owner,
                "shared with other daemons" if store.shared() else "this daemon only",
            )

            def templates(pipeline: str, version: str | None) -> RawTemplate | None:
                return scheduler.template(pipeline, version)  # the catalog's versions

            try:
                executor = _build_executor(settings, store, masker, clock, templates, meter=meter)
            except WorkflowError as exc:
                logger.error("cannot start the executor: %s", exc)
                print(masker.text(f"workflow scheduler: {exc}"), file=sys.stderr)
                return EXIT_USAGE
            validator = _build_validator(settings)  # the parent never imports the engine
            scheduler = Scheduler(
                settings=settings,
                store=store,
                executor=executor,
                clock=clock,
                loader=Loader.from_settings(settings),
                masker=masker,
                owner=owner,
                journal=EndJournal.for_store(settings, settings.api_db_url),
                validator=validator,
                meter=meter,
            )
            try:
                days = settings.run_retention_days
                retention = (
                    None
                    if days is None
                    else Retention(store=store, days=days, log_dir=settings.log_path, clock=clock)
                )
                cancels = CancelWatch(
                    store,
                    owner=lambda: scheduler.owner,  # a daemon joining again gets a new id
                    cancel=executor.cancel,
                    name="scheduler-cancels",
                )
                daemon = Daemon(
                    settings=settings,
                    scheduler=scheduler,
                    executor=executor,
                    retention=retention,
                    cancels=cancels,
                    notify=_notify_service(
                        settings,
                        store,
                        scheduler=scheduler,
                        masker=masker,
                        clock=clock,
                        owner=owner,
                    ),
                )
                return daemon.run(once=once, freeze=freeze)
            finally:
                validator.close()
    except StoreLockedError as exc:
        message = (
            f"another scheduler daemon is already running on this run store ({exc}); "
            "refusing to start"
        )
        logger.error(message)
        print(masker.text(f"workflow scheduler: {message}"), file=sys.stderr)
        return EXIT_FAILED
    except StoreError as exc:
        logger.error("run store error, the daemon stops: %s", exc)
        print(masker.text(f"workflow scheduler: run store error: {exc}"), file=sys.stderr)
        return EXIT_FAILED
    finally:
        store.close()


def _notify_service(
    settings: Settings,
    store: RunStore,
    *,
    scheduler: Scheduler,
    masker: Masker,
    clock: Clock,
    owner: str,
) -> NotifyService:
    """The daemon's notify thread: a pipeline's targets from its catalog template."""
    notifier = Notifier(settings, masker)

    def targets_of(pipeline: str) -> Targets:
        template = scheduler.template(pipeline, None)
        return notifier.targets(None if template is None else NotifyRule.of_template(template.data))

    sender = Sender(store, settings, owner=owner, clock=clock)
    window = SWEEP_WINDOW
    if settings.run_retention_days is not None:  # never further back than notices are kept
        window = min(window, timedelta(days=settings.run_retention_days))
    return NotifyService(
        store,
        sender,
        clock=clock,
        notifier=notifier,
        targets_of=targets_of,
        delay_of=scheduler.offset_of,
        sweep_window=window,
        name="scheduler-notify",
    )


def _safe_url(settings: Settings) -> str:
    url = settings.api_db_url
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ddeutil.workflow.app",
        description="Run the ddeutil-workflow scheduler daemon in the foreground.",
    )
    add_arguments(parser)
    parser.add_argument(
        "--log-format",
        choices=("auto", "text", "json"),
        default="auto",
        help="log line format: JSON lines on stdout unless stdout is a terminal",
    )
    parser.add_argument("--log-level", default=None, help="log level (default WORKFLOW_LOG_LEVEL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m ddeutil.workflow.app``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"workflow scheduler: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    masker = Masker.from_env(os.environ)
    fmt = args.log_format
    if fmt == "auto":
        fmt = "text" if sys.stdout.isatty() else "json"
    configure_logging(fmt=fmt, level=args.log_level or settings.log_level, masker=masker)
    warn_unknown_variables(os.environ)
    return serve(settings, masker=masker, once=args.once, freeze=argv is None)
