"""The wire between the daemon and its worker processes: typed messages, framing, endpoints.

* **Messages** are frozen dataclasses matched by type, never string-tagged tuples.
  Daemon -> worker: :class:`Run` (a request, plus its template the first time
  this worker needs that version), :class:`Cancel` (one run, or every run),
  :class:`DropHeld` (let runs held for their release time go: they stay
  PENDING) and :class:`Stop`. Worker -> daemon: :class:`Batch` of :class:`Ready`,
  :class:`~ddeutil.workflow.dispatch.records.RunEvent` and (when the daemon serves
  metrics) :class:`StageTime` records.
* **Templates travel once per worker and version.** The daemon remembers, per
  worker, the versions it sent (:class:`SentVersions`) and the worker keeps the
  templates it received (:class:`KeptTemplates`); both forget the oldest first
  beyond :data:`KEPT_TEMPLATES`, in the same order, so the daemon always knows
  what its worker holds. A worker therefore runs exactly the version the
  scheduler dispatched, even after the file on disk changed or broke. A request
  without a version carries its template every time.
* **Requests** (daemon -> worker) are length-prefixed frames (:func:`frame`) of
  pickled messages, written with :meth:`WorkerHandle.send
  <ddeutil.workflow.dispatch.handle.WorkerHandle.send>` (never blocking) and read
  with :class:`FrameReader`, which takes every frame already in the pipe with one
  ``read`` and can be woken from another thread.
* **Events** (worker -> daemon) are sent by one sender thread of the worker
  (:class:`EventSender`) as a :class:`Batch` over a
  :class:`multiprocessing.connection.Connection`: the threads running pipelines
  only queue them, and a burst of events costs one pipe write.

This module (and :class:`WorkerConfig`) is imported by the daemon's process: it
imports neither the engine nor a store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Literal

from ..loader import RawTemplate
from ..masking import Masker
from ..settings import Settings
from .records import RunEvent, RunRequest

__all__ = [
    "KEPT_TEMPLATES",
    "Batch",
    "Cancel",
    "DropHeld",
    "EventSender",
    "FrameReader",
    "FromWorker",
    "KeptTemplates",
    "Ready",
    "Run",
    "SentVersions",
    "StageTime",
    "Stop",
    "WorkerConfig",
    "dumps",
    "frame",
    "parent_log_config",
]

_HEADER = struct.Struct("!I")
KEPT_TEMPLATES = 1024
"""Template versions a worker keeps (and its daemon remembers having sent)."""
_READ_SIZE = 1 << 16
_SENDER_JOIN = 5.0


# ---------------------------------------------------------------- messages


@dataclass(frozen=True)
class Run:
    """Run ``request``; ``template`` is set when the worker may not hold its version."""

    request: RunRequest
    template: RawTemplate | None = None


@dataclass(frozen=True)
class Cancel:
    """Cancel run ``run_id`` (``None``: every running run) with ``reason``."""

    run_id: str | None
    reason: str


@dataclass(frozen=True)
class DropHeld:
    """Do not start the runs still held for their release time (they stay PENDING)."""

    reason: str


@dataclass(frozen=True)
class Stop:
    """Cancel every run, record stragglers CANCELLED and exit."""

    reason: str


@dataclass(frozen=True)
class Ready:
    """The worker (process ``pid``) takes work."""

    pid: int


@dataclass(frozen=True)
class StageTime:
    """A stage of a run ended after ``seconds`` (sent only when the daemon serves metrics)."""

    seconds: float


FromWorker = Ready | RunEvent | StageTime


@dataclass(frozen=True)
class Batch:
    """Worker messages sent with one pipe write, oldest first."""

    messages: tuple[FromWorker, ...]


ToWorker = Run | Cancel | DropHeld | Stop


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
        stage_times: Send a :class:`StageTime` for every stage that ends (the
            daemon serves metrics).
    """

    index: int
    settings: Settings
    store_url: str
    masker: Masker
    threads: int
    cancel_grace: float
    log_format: Literal["json", "text"] | None
    log_level: str
    stage_times: bool = False


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


def dumps(message: ToWorker) -> bytes:
    """Pickle one message to a worker (raises when something in it cannot be pickled)."""
    return bytes(ForkingPickler.dumps(message))


# ---------------------------------------------------------------- templates


class SentVersions:
    """The template versions the daemon sent to one worker (its view of :class:`KeptTemplates`)."""

    def __init__(self, size: int = KEPT_TEMPLATES) -> None:
        self._size = size
        self._sent: OrderedDict[tuple[str, str], None] = OrderedDict()

    def needs(self, request: RunRequest) -> bool:
        """Whether a :class:`Run` of ``request`` must carry its template."""
        return request.version is None or (request.pipeline, request.version) not in self._sent

    def sent(self, request: RunRequest) -> None:
        """Record that a :class:`Run` of ``request`` carried its template."""
        if request.version is None:
            return
        self._sent[(request.pipeline, request.version)] = None
        while len(self._sent) > self._size:
            self._sent.popitem(last=False)


class KeptTemplates:
    """The templates a worker received, by pipeline and version (the worker's template source).

    Forgets the oldest version first beyond ``size``, exactly as
    :class:`SentVersions` does on the daemon's side. The template of a request
    without a version is kept only until the next one.
    """

    def __init__(self, size: int = KEPT_TEMPLATES) -> None:
        self._size = size
        self._kept: OrderedDict[tuple[str, str], RawTemplate] = OrderedDict()
        self._unversioned: dict[str, RawTemplate] = {}
        self._lock = threading.Lock()

    def put(self, request: RunRequest, template: RawTemplate) -> None:
        with self._lock:
            if request.version is None:
                self._unversioned[request.pipeline] = template
                return
            self._kept[(request.pipeline, request.version)] = template
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)

    def get(self, pipeline: str, version: str | None) -> RawTemplate | None:
        with self._lock:
            if version is None:
                return self._unversioned.get(pipeline)
            return self._kept.get((pipeline, version))


# ---------------------------------------------------------------- framing


def frame(payload: bytes) -> bytes:
    """``payload`` with its length prefix, as written on the request pipe."""
    return _HEADER.pack(len(payload)) + payload


class FrameReader:
    """Reads request messages from the worker's end of the request pipe.

    One read takes every byte already in the pipe (up to 64 KiB), so a burst of
    requests costs few system calls. :meth:`wake` (from another thread) makes a
    pending or later :meth:`recv` return ``None``.

    Args:
        fd: The read end of the request pipe (owned by the reader from now on).
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self._wake_r, self._wake_w = os.pipe()
        self._woken = False
        self._poll = select.poll()  # no FD_SETSIZE limit, unlike select()
        for watched in (fd, self._wake_r):
            self._poll.register(watched, select.POLLIN)

    @classmethod
    def over(cls, conn: Connection) -> FrameReader:
        """A reader over ``conn``'s pipe (``conn`` is closed; the reader owns a duplicate)."""
        fd = os.dup(conn.fileno())
        conn.close()
        return cls(fd)

    def recv(self) -> ToWorker | None:
        """The next message; blocks until one arrives. ``None`` once woken.

        Raises:
            EOFError: the daemon closed its end (or died).
        """
        header = self._read(_HEADER.size)
        if header is None:
            return None
        (size,) = _HEADER.unpack(header)
        payload = self._read(size)
        if payload is None:
            return None
        message = ForkingPickler.loads(payload)
        if not isinstance(message, Run | Cancel | DropHeld | Stop):
            raise TypeError(f"unexpected message on the request pipe: {type(message).__name__}")
        return message

    def wake(self) -> None:
        """Make the pending and every later :meth:`recv` return ``None``."""
        self._woken = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def close(self) -> None:
        for fd in (self._fd, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _read(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if self._woken:
                return None
            ready = {fd for fd, _ in self._poll.poll()}
            if self._fd not in ready:
                continue
            chunk = os.read(self._fd, _READ_SIZE)
            if not chunk:
                raise EOFError("the request pipe was closed")
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


class EventSender:
    """Sends a worker's messages to the daemon from one thread, in :class:`Batch` es.

    Args:
        conn: The worker's end of the event pipe.
        name: Thread name.
    """

    def __init__(self, conn: Connection, name: str) -> None:
        self._conn = conn
        self._queue: queue.SimpleQueue[FromWorker | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def put(self, message: FromWorker) -> None:
        """Queue ``message`` (thread-safe, never blocks)."""
        self._queue.put(message)

    def close(self) -> None:
        """Send what is queued, then stop the thread (bounded wait)."""
        self._queue.put(None)
        self._thread.join(timeout=_SENDER_JOIN)

    def _loop(self) -> None:
        gone = False
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            messages = [m for m in batch if m is not None]
            if messages and not gone:
                try:
                    self._conn.send(Batch(tuple(messages)))
                except OSError:  # the daemon is gone; the request pipe reports that too
                    gone = True
            if len(messages) < len(batch):
                return
