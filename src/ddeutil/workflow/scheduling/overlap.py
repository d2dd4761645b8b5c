"""Per-pipeline overlap control: runs in flight and claimed releases waiting their turn.

The scheduler admits a pipeline's runs through :class:`RunQueues`:

* every claimed release that is to run enters its pipeline's FIFO
  (:meth:`RunQueues.hold`), in release order;
* :meth:`RunQueues.admit` takes releases from the head of that FIFO while the
  pipeline has fewer runs in flight than its limit (1 for ``concurrency: queue``
  and ``skip``, ``WORKFLOW_CORE_MAX_PIPELINE_POKING`` for ``allow``); the
  caller hands each one to the executor and reports it with
  :meth:`RunQueues.started`;
* a finished run leaves the in-flight set (:meth:`RunQueues.finished`), which
  lets the next waiting release of its pipeline in.

A pipeline is *busy* while it has a run in flight or a release waiting; that is
what ``concurrency: skip`` looks at. Not thread-safe: the scheduler calls it
under its own lock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from ..runs import ReleaseKey

__all__ = ["RunQueues", "Waiting"]


@dataclass(frozen=True)
class Waiting:
    """A claimed release waiting for a slot of its pipeline.

    Attributes:
        run_id: The claimed (PENDING) run.
        release: The release it was claimed for.
        logical_date: ``release.logical_date`` of the run.
    """

    run_id: str
    release: ReleaseKey | None
    logical_date: datetime | None


class RunQueues:
    """The FIFO of waiting releases and the set of runs in flight of every pipeline."""

    def __init__(self) -> None:
        self._waiting: dict[str, deque[Waiting]] = {}
        self._in_flight: dict[str, set[str]] = {}
        self._pipeline_of: dict[str, str] = {}

    def busy(self, name: str) -> bool:
        """Whether ``name`` has a run in flight or a release waiting."""
        return bool(self._in_flight.get(name)) or bool(self._waiting.get(name))

    def waiting_count(self) -> int:
        """Releases waiting, all pipelines together."""
        return sum(len(q) for q in self._waiting.values())

    def with_waiting(self) -> list[str]:
        """Pipelines with at least one release waiting."""
        return [name for name, queue in self._waiting.items() if queue]

    def pipeline_of(self, run_id: str) -> str | None:
        """The pipeline of a run in flight."""
        return self._pipeline_of.get(run_id)

    def in_flight(self) -> list[tuple[str, set[str]]]:
        """``(pipeline, run ids in flight)`` for every pipeline with runs in flight."""
        return [(name, runs) for name, runs in self._in_flight.items() if runs]

    def hold(self, name: str, item: Waiting) -> None:
        """Put ``item`` at the end of ``name``'s FIFO."""
        self._waiting.setdefault(name, deque()).append(item)

    def admit(self, name: str, limit: int | None) -> Iterator[Waiting]:
        """Take waiting releases of ``name`` while it has fewer than ``limit`` in flight.

        ``None`` takes every waiting release (for a pipeline that is gone). The
        caller reports each release it started with :meth:`started` before taking
        the next one.
        """
        queue = self._waiting.get(name)
        running = self._in_flight.setdefault(name, set())
        while queue and (limit is None or len(running) < limit):
            yield queue.popleft()
        if not queue:
            self._waiting.pop(name, None)

    def started(self, name: str, run_id: str) -> None:
        """Record that ``run_id`` of ``name`` was handed to the executor."""
        self._in_flight.setdefault(name, set()).add(run_id)
        self._pipeline_of[run_id] = name

    def finished(self, run_id: str) -> str | None:
        """Take ``run_id`` out of flight; return its pipeline (``None`` if unknown)."""
        name = self._pipeline_of.pop(run_id, None)
        if name is not None:
            self._in_flight.get(name, set()).discard(run_id)
        return name
