"""When each job and stage of a run started and ended: the run's ``timeline``.

A :class:`Timeline` is filled while a run executes (jobs and stages add one
:class:`Span` each when they end, from any thread) and stored in the run's
context under the top-level ``"timeline"`` key, next to ``"params"``, ``"jobs"``
and ``"needs"``, as ``{"spans": [...]}``. Each span is ``{"job", "stage",
"strategy", "name", "status", "start", "end"}`` with ISO-8601 times (``stage``
is ``null`` for the job's own span). Policies:

* **Times come from the run's clock**: the end is ``clock.now()`` when the span
  ends and the start is that end minus the measured (monotonic) duration, so a
  span is never negative even when the wall clock steps.
* **Bounded**: at most :data:`MAX_SPANS` spans are kept (the first ones); the
  others are counted under ``"dropped"``. A run with a huge matrix keeps a
  context of bounded size.
* **Non-breaking**: the key is added only for a pipeline with jobs (as ``needs``);
  jobs reused by a rerun and jobs that never started have no span.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..result import Status

__all__ = ["MAX_SPANS", "Span", "Timeline"]

MAX_SPANS = 5000
"""Spans kept per run (jobs and stages together)."""


@dataclass(frozen=True, slots=True)
class Span:
    """One job (``stage is None``) or one stage of one combination, start to end."""

    job: str
    stage: str | None
    strategy: str | None
    name: str
    status: Status
    start: datetime
    end: datetime

    def to_context(self) -> dict[str, Any]:
        """The JSON-friendly form stored in the run's context."""
        return {
            "job": self.job,
            "stage": self.stage,
            "strategy": self.strategy,
            "name": self.name,
            "status": self.status.value,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


class Timeline:
    """The spans of one run (thread-safe; see the module docstring)."""

    def __init__(self, limit: int = MAX_SPANS) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self._dropped = 0

    def add(
        self,
        *,
        job: str,
        stage: str | None,
        strategy: str | None,
        name: str,
        status: Status,
        end: datetime,
        duration: float,
    ) -> None:
        """Record a span that ended at ``end`` after ``duration`` seconds."""
        span = Span(
            job=job,
            stage=stage,
            strategy=strategy,
            name=name,
            status=status,
            start=end - timedelta(seconds=max(duration, 0.0)),
            end=end,
        )
        with self._lock:
            if len(self._spans) < self._limit:
                self._spans.append(span)
            else:
                self._dropped += 1

    @property
    def spans(self) -> tuple[Span, ...]:
        with self._lock:
            return tuple(self._spans)

    def to_context(self) -> dict[str, Any]:
        """``{"spans": [...]}`` ordered by start (plus ``"dropped"`` when some were)."""
        with self._lock:
            spans = sorted(self._spans, key=lambda s: (s.start, s.stage is not None))
            dropped = self._dropped
        out: dict[str, Any] = {"spans": [s.to_context() for s in spans]}
        if dropped:
            out["dropped"] = dropped
        return out
