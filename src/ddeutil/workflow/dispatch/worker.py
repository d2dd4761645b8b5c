"""The body of one daemon worker process (the daemon side is :mod:`.workers`).

A worker runs the ``run`` requests of its request pipe on a
:class:`~ddeutil.workflow.dispatch.threads.ThreadExecutor` of its own whose threads read
the pipe themselves (the thread that reads a request runs it: no hand-off
between threads on the way to a stage), and reports the executor's events on
its event pipe. It opens its own run store from the store
URL, so the worker that executes a run also records its outcome. Policies:

* **A worker exits when the daemon dies**: its request pipe reaches EOF; it then
  cancels its runs (the engine kills their bash process groups), records them
  CANCELLED and exits. It ignores SIGINT (the daemon owns Ctrl-C) and treats
  SIGTERM as "cancel everything and exit".
* **Logs.** A worker configures logging like the daemon (the format and level the
  daemon passes in :class:`WorkerConfig`), writing to its inherited
  stdout/stderr, so its JSON lines reach the same journal. Per-run log files are
  written by the worker's executor when ``WORKFLOW_LOG_ENABLE_WRITE`` is on.

The messages and how they travel are described in :mod:`.worker_link`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import FrameType
from typing import Literal

from ..cancellation import ProcessStopping
from ..clock import SystemClock
from ..logs import configure_logging
from ..masking import Masker
from ..settings import Settings
from ..store import open_store
from ..store.ends import EndJournal, EndRecorder
from .execute import RunRequest
from .threads import ThreadExecutor
from .wire import EventSender, FrameReader, RunDecoder

__all__ = ["WorkerConfig", "parent_log_config", "worker_main"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process is started with (pickled to it).

    Attributes:
        index: The worker's slot number in the daemon (log label).
        settings: The daemon's settings.
        store_url: The run store the worker opens.
        masker: Hides secrets in stored records and log lines.
        threads: Runs executed at once.
        cancel_grace: Seconds a cancelled run gets before it is recorded CANCELLED.
        log_format: Console logging like the daemon's; ``None``: configure none.
        log_level: Console log level.
    """

    index: int
    settings: Settings
    store_url: str
    masker: Masker
    threads: int
    cancel_grace: float
    log_format: Literal["json", "text"] | None
    log_level: str


class _Terminated(ProcessStopping):
    """Raised in a worker's main thread by SIGTERM (never caught by ``except Exception``)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    raise _Terminated


class _RequestPipe:
    """The request pipe as the executor's :class:`~ddeutil.workflow.dispatch.threads.RequestSource`.

    The executor's threads take turns reading it; a ``run`` request goes to the
    thread that read it, ``cancel`` is applied at once, and ``stop`` or the end
    of the pipe (the daemon is gone) ends it: every reader then gets ``None``
    and :attr:`ended` is set for the worker's main thread.
    """

    def __init__(self, reader: FrameReader, index: int) -> None:
        self._reader = reader
        self._index = index
        self.executor: ThreadExecutor | None = None
        self._runs = RunDecoder()
        self.ended = threading.Event()
        self.reason = "the daemon process exited"

    def next_request(self) -> RunRequest | None:
        while True:
            try:
                message = self._reader.recv()
            except EOFError:
                logger.warning("worker %d: daemon gone, cancelling runs", self._index)
                self._end(self.reason)
                return None
            if message is None:  # woken: ended or closed
                return None
            if message[0] == "run":
                return self._runs.decode(message)
            if message[0] == "cancel" and self.executor is not None:
                if message[1] is None:
                    self.executor.cancel_all(message[2])
                else:
                    self.executor.cancel(message[1], message[2])
            elif message[0] == "stop":
                self._end(message[1])
                return None

    def close(self) -> None:
        self._reader.wake()

    def _end(self, reason: str) -> None:
        self.reason = reason
        self.ended.set()
        self._reader.wake()


def worker_main(requests: Connection, events: Connection, config: WorkerConfig) -> None:
    """Body of a worker process: read requests, run them on threads, report events."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if config.log_format is not None:
        configure_logging(fmt=config.log_format, level=config.log_level, masker=config.masker)
    sender = EventSender(events, name=f"workflow-worker-{config.index}-events")
    reader = FrameReader.over(requests)
    pipe = _RequestPipe(reader, config.index)
    store = open_store(config.store_url)
    executor = ThreadExecutor(
        store=store,
        settings=config.settings,
        masker=config.masker,
        clock=SystemClock(),
        size=config.threads,
        cancel_grace=config.cancel_grace,
        on_event=lambda event: sender.put(("event", event)),
        name=f"worker {config.index}",
        source=pipe,
        ends=EndRecorder(store, journal=EndJournal.for_store(config.settings, config.store_url)),
    )
    pipe.executor = executor
    reason = pipe.reason
    try:
        executor.start()
        sender.put(("ready", os.getpid()))
        pipe.ended.wait()  # interrupted by SIGTERM
        reason = pipe.reason
    except _Terminated:
        reason = "worker process terminated (SIGTERM)"
    finally:
        try:
            executor.shutdown(0.0, reason=reason)
        finally:
            sender.close()  # every event of the shutdown reaches the daemon first
            store.close()
            pipe.close()
            reader.close()
            events.close()


def parent_log_config() -> tuple[Literal["json", "text"] | None, str | None]:
    """The format and level :func:`~ddeutil.workflow.logs.configure_logging` set up here.

    The daemon passes them to its workers, so they log like it; ``(None, None)``
    when this process configured no logging.
    """
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "_ddeutil_workflow", False):
            # the JSON formatter may be a subclass defined elsewhere: look at its bases
            kinds = type(handler.formatter).__mro__
            is_json = any(kind.__module__.startswith("pythonjsonlogger") for kind in kinds)
            return ("json" if is_json else "text"), logging.getLevelName(root.level)
    return None, None
