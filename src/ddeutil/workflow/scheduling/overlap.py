"""This daemon's share of the overlap control: its waiting releases and runs in flight.

Whether a claimed release may run is decided by the run store, fleet-wide
(:meth:`RunStore.admit <ddeutil.workflow.store.base.RunStore.admit>`: at most
the pipeline's limit of runs hold a slot, oldest release first). The scheduler
keeps its own side of it in :class:`RunQueues`:

* every claimed release that waits for a slot enters its pipeline's FIFO
  (:meth:`RunQueues.hold`), in release order;
* the releases the store admitted leave it (:meth:`RunQueues.take`) and are
  handed to the executor, then reported with :meth:`RunQueues.started`;
* a finished run leaves the in-flight set (:meth:`RunQueues.finished`), which
  is when the scheduler asks the store for the next slots of its pipeline.

Not thread-safe: the scheduler calls it under its own lock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
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
        start: When the run may start, for a release its schedule's jitter delays
            (the fire time plus the offset); ``None``: at its release instant.
    """

    run_id: str
    release: ReleaseKey | None
    logical_date: datetime | None
    start: datetime | None = None


class RunQueues:
    """The FIFO of waiting releases and the set of runs in flight of every pipeline."""

    def __init__(self) -> None:
        self._waiting: dict[str, deque[Waiting]] = {}
        self._in_flight: dict[str, set[str]] = {}
        self._pipeline_of: dict[str, str] = {}

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

    def take(self, name: str, run_ids: Iterable[str] | None = None) -> list[Waiting]:
        """Take the waiting releases ``run_ids`` of ``name`` (all when ``None``), in FIFO order."""
        queue = self._waiting.get(name)
        if not queue:
            return []
        wanted = None if run_ids is None else set(run_ids)
        taken = [item for item in queue if wanted is None or item.run_id in wanted]
        if taken:
            kept = [item for item in queue if wanted is not None and item.run_id not in wanted]
            if kept:
                self._waiting[name] = deque(kept)
            else:
                self._waiting.pop(name, None)
        return taken

    def in_flight_count(self) -> int:
        """Runs started and not finished."""
        return len(self._pipeline_of)

    def in_flight_ids(self) -> list[str]:
        """Every run in flight."""
        return list(self._pipeline_of)

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
