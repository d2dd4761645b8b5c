"""The executor seam: the protocol, the template source, helpers shared by executors.

An :class:`Executor` takes :class:`~ddeutil.workflow.dispatch.records.RunRequest`
records for runs that are already PENDING in the run store, executes each
(whoever executes it starts it with the store's PENDING -> RUNNING handshake, so
a duplicate delivery does nothing) and reports back through
:class:`~ddeutil.workflow.dispatch.records.RunEvent` records that the caller
drains without blocking. An executor gets the template of a request's
``(pipeline, version)`` from the :data:`TemplateSource` it was built with.

Policies shared by every executor:

* **Nothing is dropped.** When every slot is busy, requests wait in submit order;
  a warning with the queue depth is logged once per saturation episode
  (:class:`SaturationLog`).
* **A request runs the version it names.** The template is looked up when the
  request is submitted and kept with it; a request whose version the source
  does not know ends FAILED at once (``finished`` event, recorded in the store
  by the executor that owns the store write).
* **Stopping** (:meth:`Executor.shutdown`) stops taking work, waits up to a
  timeout for running runs, then cancels the rest (bash process groups are
  killed by the engine) and makes sure each ends recorded CANCELLED: a run that
  ignores the cancel is recorded CANCELLED after a short bounded grace and left
  behind. Requests still waiting for a slot are not started and stay PENDING in
  the store: the daemon dispatches them after its restart.
* Every submitted run that was taken by a slot ends with exactly one
  ``finished`` event (see :mod:`.records`).

The implementations: :class:`~ddeutil.workflow.dispatch.threads.ThreadExecutor`
(threads of this process; any store, the in-memory one included; the API and
each daemon worker process) and
:class:`~ddeutil.workflow.dispatch.processes.ProcessExecutor` (the daemon's
worker processes). This module imports neither the engine nor a store.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .records import RunEvent, RunRequest

if TYPE_CHECKING:
    from ..loader import RawTemplate

__all__ = [
    "EventBuffer",
    "Executor",
    "SaturationLog",
    "TemplateSource",
    "TemplateUnavailable",
    "log_extra",
    "template_of",
]

logger = logging.getLogger("ddeutil.workflow.dispatch.threads")  # the executors' lines

TemplateSource = Callable[[str, "str | None"], "RawTemplate | None"]
"""``(pipeline, version) -> raw template``: the template a request names, ``None``
when the source does not know that version (``version=None``: the current one)."""


class Executor(Protocol):
    """Executes submitted runs and reports :class:`RunEvent` records."""

    def start(self) -> None:
        """Get ready to take work (start threads, worker processes). Idempotent."""
        ...

    def submit(self, request: RunRequest) -> None:
        """Hand over a PENDING run. Never drops it: queues in order when all slots are busy."""
        ...

    def drain_events(self) -> list[RunEvent]:
        """Return (and forget) the events since the last call, oldest first. Non-blocking."""
        ...

    def wait_event(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until an event is available; True if one is.

        After :meth:`shutdown` it returns at once: nothing waits on a stopped executor.
        """
        ...

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel one run: a waiting one at once (recorded CANCELLED), a running one
        cooperatively. False when the run is not in this executor."""
        ...

    def capacity(self) -> int:
        """Runs executed at once when every slot is busy."""
        ...

    def in_flight(self) -> int:
        """Runs submitted and not yet finished (waiting plus running)."""
        ...

    def shutdown(self, timeout: float, *, reason: str | None = None) -> None:
        """Stop taking work, wait up to ``timeout``, then cancel what runs. Idempotent."""
        ...


class TemplateUnavailable(LookupError):  # noqa: N818 - reads as what happened
    """The template source has no template for a request (the run ends FAILED at once)."""


def template_of(templates: TemplateSource, request: RunRequest) -> RawTemplate:
    """The template ``request`` names, from ``templates``.

    Raises:
        TemplateUnavailable: the source does not know that version, or failed;
            the message is the one-line reason the run is recorded with.
    """
    try:
        template = templates(request.pipeline, request.version)
    except Exception as exc:
        template, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = "the template source does not know it"
    if template is None:
        version = request.version or "current"
        raise TemplateUnavailable(
            f"no template of pipeline {request.pipeline!r} version {version}: {why}"
        )
    return template


def log_extra(request: RunRequest) -> dict[str, Any]:
    """The ``extra=`` context of log records about ``request``."""
    extra: dict[str, Any] = {"run_id": request.run_id, "pipeline": request.pipeline}
    if request.release is not None:
        extra["release"] = request.release.at.isoformat()
    return extra


class EventBuffer:
    """A thread-safe FIFO of events with a bounded wait (none once closed)."""

    def __init__(self) -> None:
        self._events: deque[RunEvent] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, event: RunEvent) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def extend(self, events: list[RunEvent]) -> None:
        """Append several events at once (one wake-up of the waiters)."""
        if not events:
            return
        with self._cond:
            self._events.extend(events)
            self._cond.notify_all()

    def drain(self) -> list[RunEvent]:
        with self._cond:
            events = list(self._events)
            self._events.clear()
        return events

    def wait(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: bool(self._events) or self._closed, timeout=max(timeout, 0.0)
            ) and bool(self._events)

    def close(self) -> None:
        """Wake every waiter; from now on :meth:`wait` returns at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class SaturationLog:
    """Logs one warning per saturation episode (all slots busy, runs waiting).

    The warning gives the queue depth when the episode began; the end of the
    episode is logged at INFO with the peak depth. Not thread-safe on its own:
    call it under the executor's lock.
    """

    def __init__(self, slots: int, what: str) -> None:
        self._slots = slots
        self._what = what
        self._peak = 0

    def waiting(self, depth: int) -> None:
        """Record that ``depth`` runs wait for a slot (warns on the first one)."""
        if depth <= 0:
            self.drained()
            return
        if not self._peak:
            logger.warning(
                "all %d run slots of the %s are busy: %d run(s) wait in submit order "
                "(none is dropped)",
                self._slots,
                self._what,
                depth,
            )
        self._peak = max(self._peak, depth)

    def drained(self) -> None:
        """Record that no run waits any more (ends the episode)."""
        if self._peak:
            logger.info(
                "run queue of the %s drained: every waiting run got a slot (peak %d waiting)",
                self._what,
                self._peak,
            )
            self._peak = 0
