"""Run events -> meter calls: start lag, end status and duration of each submitted run.

:class:`RunMeter` sits next to whoever submits runs and drains the executor's
events (the scheduler, the API). It remembers what it needs of each submitted
run (pipeline, trigger, release instant, start instant) until the run's
``finished`` event, so a meter never sees a run id.

Policies:

* **Times are the caller's clock readings when it handles the event**: the
  start lag (release instant -> run start) and the duration include the trip of
  the event back from the worker (a few milliseconds, batched).
* **A run refused by the start handshake is not a run end** (its ``finished``
  event has no status): it is forgotten, not counted.
* **Bounded memory**: at most :data:`MAX_TRACKED` runs are remembered; beyond
  it the oldest is forgotten (its end is then not counted).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ..clock import Clock, ensure_utc
from ..metrics import Meter
from .records import RunEvent

__all__ = ["MAX_TRACKED", "RunMeter"]

MAX_TRACKED = 100_000
"""Most runs remembered between their submission and their end."""


@dataclass
class _Tracked:
    pipeline: str
    trigger: str
    release: datetime | None
    started: datetime | None = None


class RunMeter:
    """Reports the runs one submitter hands to an executor to a :class:`~ddeutil.workflow.metrics.Meter`.

    Args:
        meter: Where to report.
        clock: Reads the instant an event is handled.
        limit: Most runs remembered at once (:data:`MAX_TRACKED`).
    """

    def __init__(self, meter: Meter, clock: Clock, *, limit: int = MAX_TRACKED) -> None:
        self._meter = meter
        self._clock = clock
        self._limit = limit
        self._lock = threading.Lock()
        self._runs: dict[str, _Tracked] = {}

    def submitted(
        self, run_id: str, pipeline: str, *, trigger: str, release: datetime | None = None
    ) -> None:
        """Remember a run handed to the executor (``release``: its release instant)."""
        with self._lock:
            if run_id not in self._runs and len(self._runs) >= self._limit:
                del self._runs[next(iter(self._runs))]
            self._runs[run_id] = _Tracked(pipeline, trigger, release)

    def observe(self, events: Iterable[RunEvent]) -> None:
        """Report ``events`` (drained from the executor) to the meter."""
        now = ensure_utc(self._clock.now())
        for event in events:
            if event.kind == "started":
                self._started(event.run_id, now)
            else:
                self._finished(event, now)

    def _started(self, run_id: str, now: datetime) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                run.started = now
        release = run.release if run is not None else None
        lag = None if release is None else (now - release).total_seconds()
        self._meter.run_started(lag=lag)

    def _finished(self, event: RunEvent, now: datetime) -> None:
        with self._lock:
            run = self._runs.pop(event.run_id, None)
        if event.status is None or run is None:
            return
        seconds = None if run.started is None else (now - run.started).total_seconds()
        self._meter.run_finished(
            run.pipeline, status=event.status.value, trigger=run.trigger, seconds=seconds
        )
