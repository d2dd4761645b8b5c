"""The executor seam: the protocol, the events executors report, shared helpers.

An :class:`Executor` takes :class:`~ddeutil.workflow.dispatch.execute.RunRequest` objects
for runs that are already PENDING in the run store and executes each with
:func:`~ddeutil.workflow.dispatch.execute.execute_request`. It reports back through
:class:`ExecEvent` records that the caller drains without blocking.

Policies shared by every executor:

* **Nothing is dropped.** When every slot is busy, requests wait in submit order;
  a warning with the queue depth is logged once per saturation episode
  (:class:`SaturationLog`).
* **Stopping** (:meth:`Executor.shutdown`) stops taking work, waits up to a
  timeout for running runs, then cancels the rest (bash process groups are
  killed by the engine) and makes sure each ends recorded CANCELLED: a run that
  ignores the cancel is recorded CANCELLED after a short bounded grace and left
  behind. Requests still waiting for a slot are not started and stay PENDING in
  the store: the daemon dispatches them after its restart.
* Every submitted run that was taken by a slot ends with exactly one
  ``finished`` event; its status is ``None`` when the start handshake refused the
  run (it was no longer PENDING), so the caller can stop tracking it.

The implementations: :class:`~ddeutil.workflow.dispatch.threads.ThreadExecutor` (threads
of this process; any store, the in-memory one included) and
:class:`~ddeutil.workflow.dispatch.processes.ProcessExecutor` (the daemon's worker processes).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Literal, Protocol

from ..result import Status
from .execute import RunRequest

__all__ = ["EventBuffer", "ExecEvent", "Executor", "RequestSource", "SaturationLog"]

logger = logging.getLogger("ddeutil.workflow.dispatch.threads")  # the executors' lines


@dataclass(frozen=True)
class ExecEvent:
    """Something that happened to a submitted run.

    Attributes:
        kind: ``started`` once the start handshake succeeded; ``finished`` when the
            run ended (or was refused by the handshake).
        run_id: The run.
        status: The terminal status of a ``finished`` event; ``None`` for
            ``started`` events and for runs the handshake refused.
        error: One-line reason of a run that did not succeed.
    """

    kind: Literal["started", "finished"]
    run_id: str
    status: Status | None = None
    error: str | None = None


class Executor(Protocol):
    """Executes submitted runs and reports :class:`ExecEvent` records.

    An executor may also offer ``prepare(requests)``: the scheduler calls it a
    moment before a minute boundary with the requests it is about to submit,
    so the executor can get them ready to send (the process executor pickles
    them). It is optional: the scheduler looks it up.
    """

    def start(self) -> None:
        """Get ready to take work. Idempotent."""
        ...

    def submit(self, request: RunRequest) -> None:
        """Hand over a PENDING run. Never drops it: queues in order when all slots are busy."""
        ...

    def drain_events(self) -> list[ExecEvent]:
        """Return (and forget) the events since the last call, oldest first. Non-blocking."""
        ...

    def wait_event(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until an event is available; True if one is."""
        ...

    def in_flight(self) -> int:
        """Runs submitted and not yet finished (waiting plus running)."""
        ...

    def running_pipelines(self) -> Counter[str]:
        """Per pipeline, runs submitted and not yet finished (waiting plus running)."""
        ...

    def cancel_all(self, reason: str) -> None:
        """Cancel every running run cooperatively; waiting ones are left waiting."""
        ...

    def shutdown(self, timeout: float) -> None:
        """Stop taking work, wait up to ``timeout``, then cancel what runs. Idempotent."""
        ...


class RequestSource(Protocol):
    """Where a :class:`ThreadExecutor` reads its requests itself (a worker's pipe)."""

    def next_request(self) -> RunRequest | None:
        """Block until the next request arrives; ``None`` when no more will come."""
        ...

    def close(self) -> None:
        """Make a pending and every later :meth:`next_request` return ``None``."""
        ...


class EventBuffer:
    """A thread-safe FIFO of events with a bounded wait."""

    def __init__(self) -> None:
        self._events: deque[ExecEvent] = deque()
        self._cond = threading.Condition()

    def put(self, event: ExecEvent) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def extend(self, events: list[ExecEvent]) -> None:
        """Append several events at once (one wake-up of the waiters)."""
        if not events:
            return
        with self._cond:
            self._events.extend(events)
            self._cond.notify_all()

    def drain(self) -> list[ExecEvent]:
        with self._cond:
            events = list(self._events)
            self._events.clear()
        return events

    def wait(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._events), timeout=max(timeout, 0.0))


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
