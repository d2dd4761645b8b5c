"""The wire between the daemon and its worker processes: framing, codecs, endpoints.

* **Requests** (daemon -> worker) are length-prefixed frames (:func:`frame`) of
  pickled messages: ``("run", ...)`` (see :class:`RunEncoder`), ``("cancel",
  run_id | None, reason)`` (``None``: every run), ``("stop", reason)``. The
  daemon writes them with :meth:`WorkerHandle.send
  <ddeutil.workflow.dispatch.handle.WorkerHandle.send>`, never blocking. The
  worker reads them with :class:`FrameReader`, which takes every frame already
  in the pipe with one ``read`` and can be woken from another thread.
* **Events** (worker -> daemon) are sent by one sender thread of the worker
  (:class:`EventSender`) as ``("batch", [message, ...])`` over a
  :class:`multiprocessing.connection.Connection`, with the messages
  ``("ready", pid)`` and ``("event", ExecEvent)``: the threads running pipelines
  only queue them, and a burst of events costs one pipe write.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import struct
import threading
from collections import OrderedDict
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

from ..engine.pipeline_cache import template_version
from ..loader import RawTemplate
from ..store.base import TriggerKind
from .execute import RunRequest

__all__ = ["EventSender", "FrameReader", "RunDecoder", "RunEncoder", "dumps", "frame"]

_HEADER = struct.Struct("!I")
_KEPT_TEMPLATES = 1024
"""Template versions each side keeps (pickled in the daemon, unpickled in a worker)."""
_READ_SIZE = 1 << 16
_SENDER_JOIN = 5.0


def dumps(message: tuple[Any, ...]) -> bytes:
    """Pickle one request message (raises when something in it cannot be pickled)."""
    return bytes(ForkingPickler.dumps(message))


class RunEncoder:
    """Pickles ``run`` messages for workers (daemon side).

    A run travels as its own fields plus its template, pickled once per template
    version and kept: a run of a known version costs the pickling of a few small
    fields. The message is self-contained (a worker needs no earlier message to
    read it); :class:`RunDecoder` skips unpickling a template it already has.
    """

    def __init__(self) -> None:
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, request: RunRequest) -> bytes:
        """The pickled ``run`` message of ``request``.

        Raises:
            Exception: something in the request cannot be pickled.
        """
        version = request.version or template_version(request.template)
        with self._lock:
            blob = self._blobs.get(version)
            if blob is not None:
                self._blobs.move_to_end(version)
        if blob is None:
            blob = bytes(ForkingPickler.dumps(request.template))
            with self._lock:
                self._blobs[version] = blob
                while len(self._blobs) > _KEPT_TEMPLATES:
                    self._blobs.popitem(last=False)
        return dumps(
            (
                "run",
                request.run_id,
                request.pipeline,
                version,
                blob,
                dict(request.params),
                request.logical_date,
                request.release,
                request.trigger.value,
            )
        )


class RunDecoder:
    """Rebuilds :class:`RunRequest` objects from ``run`` messages (worker side).

    Templates are kept by version (the last :data:`_KEPT_TEMPLATES`), so a run
    of a version seen before reuses the template object instead of unpickling it.
    """

    def __init__(self) -> None:
        self._templates: OrderedDict[str, RawTemplate] = OrderedDict()

    def decode(self, message: tuple[Any, ...]) -> RunRequest:
        _, run_id, pipeline, version, blob, params, logical_date, release, trigger = message
        template = self._templates.get(version)
        if template is None:
            template = ForkingPickler.loads(blob)
            self._templates[version] = template
            while len(self._templates) > _KEPT_TEMPLATES:
                self._templates.popitem(last=False)
        else:
            self._templates.move_to_end(version)
        return RunRequest(
            run_id=run_id,
            pipeline=pipeline,
            template=template,
            params=params,
            logical_date=logical_date,
            release=release,
            trigger=TriggerKind(trigger),
            version=version,
        )


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

    def recv(self) -> Any:
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
        return ForkingPickler.loads(payload)

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
    """Sends a worker's messages to the daemon from one thread, in batches.

    Args:
        conn: The worker's end of the event pipe.
        name: Thread name.
    """

    def __init__(self, conn: Connection, name: str) -> None:
        self._conn = conn
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def put(self, message: tuple[Any, ...]) -> None:
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
                    self._conn.send(("batch", messages))
                except OSError:  # the daemon is gone; the request pipe reports that too
                    gone = True
            if len(messages) < len(batch):
                return
