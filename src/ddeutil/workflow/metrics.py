"""The metrics seam: what the scheduler, the executors and the API report, and a no-op default.

A :class:`Meter` receives one call per thing that happened (a release claimed or
skipped, a run started or finished, a worker process restarted, a run store
error, a heartbeat written) and the current load (runs in flight, runs waiting
for a slot). The engine, the scheduler and the executors only ever see this
protocol; :data:`NULL_METER` is their default, so nothing imports
``prometheus_client`` unless metrics are switched on (the Prometheus meter is
:mod:`ddeutil.workflow.prometheus`, built by the entry points).

Policies:

* **A meter never fails its caller.** Implementations do plain in-memory
  arithmetic; no call does I/O.
* **Labels are bounded.** The only user string a meter receives is a pipeline
  name (:meth:`Meter.run_finished`); the Prometheus meter caps the distinct
  pipeline label values (see :data:`MAX_PIPELINE_LABELS`).
* **Times are seconds as floats**, measured by the caller with its injected clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

__all__ = ["MAX_PIPELINE_LABELS", "NULL_METER", "Meter", "NullMeter", "SkipReason"]

SkipReason = Literal["concurrency", "paused", "catchup"]
"""Why a release did not run: ``concurrency: skip`` while a run was in flight, the
pipeline was paused, or the catch-up policy skipped a missed release."""

MAX_PIPELINE_LABELS = 1_000
"""Most distinct ``pipeline`` label values a meter keeps; later pipelines share
``pipeline="other"``."""


class Meter(Protocol):
    """Receives what happened, as it happens (thread-safe implementations)."""

    def release_claimed(self, *, late: bool) -> None:
        """A due release was claimed by this daemon (``late``: a missed one run by catch-up)."""
        ...

    def release_skipped(self, reason: SkipReason, count: int = 1) -> None:
        """``count`` due releases did not run, for ``reason``."""
        ...

    def run_started(self, *, lag: float | None) -> None:
        """A run started; ``lag`` is seconds from its release instant (``None``: no release)."""
        ...

    def run_finished(
        self, pipeline: str, *, status: str, trigger: str, seconds: float | None
    ) -> None:
        """A run ended with ``status``; ``seconds`` since it started (``None``: unknown)."""
        ...

    def stage_finished(self, seconds: float) -> None:
        """A stage of a run ended after ``seconds``."""
        ...

    def worker_restarted(self) -> None:
        """A worker process died and is replaced."""
        ...

    def store_error(self) -> None:
        """A call to the run store failed (it did not answer, or refused)."""
        ...

    def heartbeat(self, at: datetime) -> None:
        """This daemon wrote its heartbeat at ``at``."""
        ...

    def load(self, *, in_flight: int, waiting: int) -> None:
        """Runs in flight (dispatched, not finished) and claimed runs waiting for a slot."""
        ...


class NullMeter:
    """A :class:`Meter` that records nothing (the default everywhere)."""

    def release_claimed(self, *, late: bool) -> None:
        return None

    def release_skipped(self, reason: SkipReason, count: int = 1) -> None:
        return None

    def run_started(self, *, lag: float | None) -> None:
        return None

    def run_finished(
        self, pipeline: str, *, status: str, trigger: str, seconds: float | None
    ) -> None:
        return None

    def stage_finished(self, seconds: float) -> None:
        return None

    def worker_restarted(self) -> None:
        return None

    def store_error(self) -> None:
        return None

    def heartbeat(self, at: datetime) -> None:
        return None

    def load(self, *, in_flight: int, waiting: int) -> None:
        return None


NULL_METER: Meter = NullMeter()
"""The shared no-op meter."""
