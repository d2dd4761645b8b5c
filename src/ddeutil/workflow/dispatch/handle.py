"""The daemon's handle on one worker process: start it, send it requests, reap it.

* :meth:`WorkerHandle.start` starts a worker process with its two pipes. Its
  target is :func:`~ddeutil.workflow.dispatch.entry.run_worker`, which imports
  the body (:mod:`.worker`) in the worker: the daemon's process never imports
  the engine.
* :meth:`WorkerHandle.send` never blocks the caller: a request frame (see
  :mod:`.wire`) is queued, in order, for the handle's writer thread, which
  waits on a full pipe. (Writing small frames straight from the caller saved
  nothing measurable: 5,000 runs through ``benchmarks/bench_dispatch.py`` all
  started after 2.4-3.2 s either way.)
* :meth:`WorkerHandle.reap` joins a dead worker (killing one whose pipe closed
  but that lives on), closes the pipes and says how it ended.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ..loader import RawTemplate
from .entry import run_worker
from .records import RunRequest
from .wire import SentVersions, WorkerConfig, frame

__all__ = ["Assigned", "WorkerHandle", "describe_exit"]

_WRITER_JOIN = 5.0
_FLUSH = 1.0
"""Seconds :meth:`WorkerHandle.close` waits for queued messages to be written."""


def describe_exit(pid: int | None, exitcode: int | None) -> str:
    """Say how a worker process ended: ``worker process 42 died: signal 9 (SIGKILL)``."""
    if exitcode is None:
        return f"worker process {pid} died (exit status unknown)"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"worker process {pid} died: signal {-exitcode} ({name})"
    return f"worker process {pid} exited with code {exitcode}"


@dataclass(frozen=True)
class Assigned:
    """A request waiting for a worker or assigned to one, with its template."""

    request: RunRequest
    template: RawTemplate
    payload: bytes
    """The pickled :class:`~ddeutil.workflow.dispatch.wire.Run` without the template."""


class WorkerHandle:
    """The daemon's handle on one worker process: the process, its pipes, its runs.

    Attributes:
        index: The worker's slot number.
        process: The :class:`multiprocessing.Process`.
        pid: Its process id.
        events: The daemon's end of the event pipe.
        runs: Requests assigned to this worker and not finished yet.
        versions: The template versions sent to this worker.
        ready: The worker reported ready.
        stopping: The worker was asked to stop.
    """

    def __init__(self, index: int, process: Any, requests: Connection, events: Connection) -> None:
        self.index = index
        self.process = process
        self.pid: int = process.pid
        self.events = events
        self.runs: dict[str, Assigned] = {}
        self.versions = SentVersions()
        self.ready = False
        self.stopping = False
        self._requests = requests
        self._fd = requests.fileno()
        os.set_blocking(self._fd, False)
        self._cond = threading.Condition()
        self._backlog: deque[bytes] = deque()
        self._closed = False
        self._broken = False
        self._writer = threading.Thread(
            target=self._write_loop, name=f"workflow-worker-{index}-send", daemon=True
        )
        self._writer.start()

    @classmethod
    def start(cls, ctx: Any, index: int, config: WorkerConfig) -> WorkerHandle:
        """Start worker process ``index`` from the multiprocessing context ``ctx``.

        The worker gets the read end of its request pipe and the write end of its
        event pipe, and nothing else of this process.

        Raises:
            Exception: the process could not be started.
        """
        requests_r, requests_w = ctx.Pipe(duplex=False)
        events_r, events_w = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=run_worker,
            args=(requests_r, events_w, config),
            name=f"workflow-worker-{index}",
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            requests_w.close()
            events_r.close()
            raise
        finally:
            requests_r.close()
            events_w.close()
        return cls(index, process, requests_w, events_r)

    def reap(self) -> str:
        """Join the (dead or dying) process, close the link; say how it ended.

        A process whose pipe closed but that is still alive is killed first: a
        worker that lost its link is dead to the daemon.
        """
        self.process.join(timeout=5.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5.0)
        cause = describe_exit(self.pid, self.process.exitcode)
        self.close()
        with contextlib.suppress(ValueError):
            self.process.close()
        return cause

    def send(self, payload: bytes) -> None:
        """Send one pickled message, in order; never blocks on a full pipe.

        A message that cannot be written (the worker is gone) is dropped: the
        daemon's reader thread notices the death and settles the worker's runs.
        """
        data = frame(payload)
        with self._cond:
            if self._closed or self._broken:
                return
            self._backlog.append(data)
            self._cond.notify()

    def close(self) -> None:
        """Let the writer thread write what is queued (for at most :data:`_FLUSH` seconds),
        then stop it (what still waits is dropped) and close the pipes."""
        deadline = time.monotonic() + _FLUSH
        with self._cond:
            while self._backlog and not self._broken and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            self._closed = True
            self._backlog.clear()
            self._cond.notify()
        self._writer.join(timeout=_WRITER_JOIN)
        self._requests.close()
        self.events.close()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._backlog and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                data = self._backlog[0]
            if not self._write_all(data):
                with self._cond:
                    self._broken = True
                    self._backlog.clear()
                    self._cond.notify_all()
                return
            with self._cond:
                if self._backlog and self._backlog[0] is data:
                    self._backlog.popleft()
                self._cond.notify_all()  # close() may wait for the backlog to drain

    def _write_all(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            if self._closed:
                return False
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                # Wait until the worker drained some of the pipe (or died: the
                # write end then selects writable and the write fails).
                poll = select.poll()
                poll.register(self._fd, select.POLLOUT)
                poll.poll(1000)
            except OSError:
                return False
        return True
