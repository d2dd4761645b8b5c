"""The body of one daemon worker process (the daemon side is :mod:`.processes`).

A worker runs the :class:`~ddeutil.workflow.dispatch.wire.Run` requests of its
request pipe on a :class:`~ddeutil.workflow.dispatch.threads.ThreadExecutor` of
its own and reports the executor's events on its event pipe. Its main thread
reads the pipe and hands each request to an idle executor thread. It opens its
own run store from the store URL, so the worker that executes a run also
records its outcome. Policies:

* **The version the daemon sent.** A run's template comes with its first request
  of that version and is kept by version
  (:class:`~ddeutil.workflow.dispatch.wire.KeptTemplates`); the executor builds
  the pipeline once per version and keeps it.
* **A worker exits when the daemon dies**: its request pipe reaches EOF; it then
  cancels its runs (the engine kills their bash process groups), records them
  CANCELLED and exits. It ignores SIGINT (the daemon owns Ctrl-C) and treats
  SIGTERM as "cancel everything and exit".
* **Logs.** A worker configures logging like the daemon (the format and level the
  daemon passes in :class:`~ddeutil.workflow.dispatch.wire.WorkerConfig`), writing
  to its inherited stdout/stderr, so its JSON lines reach the same journal.
  Per-run log files are written by the worker's executor when
  ``WORKFLOW_LOG_ENABLE_WRITE`` is on.

The messages and how they travel are described in :mod:`.wire`.
"""

from __future__ import annotations

import logging
import os
import signal
from multiprocessing.connection import Connection
from types import FrameType

from ..cancellation import ProcessStopping
from ..clock import SystemClock
from ..logs import configure_logging
from ..metrics import NullMeter
from ..store import open_store
from ..store.ends import EndJournal, EndRecorder
from .threads import ThreadExecutor
from .wire import (
    Cancel,
    DropHeld,
    EventSender,
    FrameReader,
    KeptTemplates,
    Ready,
    Run,
    StageTime,
    Stop,
    WorkerConfig,
)

__all__ = ["worker_main"]

logger = logging.getLogger(__name__)


class _Terminated(ProcessStopping):
    """Raised in a worker's main thread by SIGTERM (never caught by ``except Exception``)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    raise _Terminated


class _StageTimes(NullMeter):
    """The worker's meter: each stage's duration goes to the daemon in the event batches."""

    def __init__(self, sender: EventSender) -> None:
        self._sender = sender

    def stage_finished(self, seconds: float) -> None:
        self._sender.put(StageTime(seconds))


def worker_main(requests: Connection, events: Connection, config: WorkerConfig) -> None:
    """Body of a worker process: read requests, run them on threads, report events."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    console: logging.Handler | None = None
    if config.log_format is not None:
        console = configure_logging(
            fmt=config.log_format, level=config.log_level, masker=config.masker
        )
    sender = EventSender(events, name=f"workflow-worker-{config.index}-events")
    reader = FrameReader.over(requests)
    store = open_store(config.store_url)
    templates = KeptTemplates()
    executor = ThreadExecutor(
        store=store,
        settings=config.settings,
        templates=templates.get,
        masker=config.masker,
        clock=SystemClock(),
        size=config.threads,
        cancel_grace=config.cancel_grace,
        on_event=sender.put,
        name=f"worker {config.index}",
        ends=EndRecorder(store, journal=EndJournal.for_store(config.settings, config.store_url)),
        meter=_StageTimes(sender) if config.stage_times else None,
    )
    reason = "the daemon process exited"
    try:
        executor.start()
        sender.put(Ready(os.getpid()))
        while True:
            try:
                message = reader.recv()
            except EOFError:
                logger.warning("worker %d: daemon gone, cancelling runs", config.index)
                break
            match message:
                case Run(request=request, template=template):
                    if template is not None:
                        templates.put(request, template)
                    executor.submit(request)
                case Cancel(run_id=None, reason=why):
                    executor.cancel_all(why)
                case Cancel(run_id=str() as run_id, reason=why):
                    executor.cancel(run_id, why)
                case DropHeld(reason=why):
                    executor.drop_held(why)
                case Stop(reason=why):
                    reason = why
                    break
                case None:  # woken: closing
                    break
    except _Terminated:
        reason = "worker process terminated (SIGTERM)"
    finally:
        try:
            executor.shutdown(0.0, reason=reason)
        finally:
            sender.close()  # every event of the shutdown reaches the daemon first
            if console is not None:
                console.flush()  # a worker exits without logging.shutdown
            store.close()
            reader.close()
            events.close()
