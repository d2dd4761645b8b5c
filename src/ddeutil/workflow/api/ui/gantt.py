"""The run page's timeline: Gantt-style bars from a run's stored ``timeline`` spans.

Each job gets a row (its stages indented under it, one row per stage and matrix
combination) with a bar placed at its start and sized to its duration, as
percentages of the whole run so the page needs no script to draw it. Jobs that
have no span (skipped, reused by a rerun, never started) get a row with no bar
and their status. Bars are at least :data:`MIN_WIDTH` percent wide so an instant
stage stays visible. At most :data:`MAX_ROWS` rows are drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["MAX_ROWS", "MIN_WIDTH", "Bar", "Gantt", "gantt"]

MIN_WIDTH = 0.5
MAX_ROWS = 1000


@dataclass(frozen=True, slots=True)
class Bar:
    """One row of the timeline."""

    label: str
    job: str
    stage: str | None
    status: str
    left: float | None
    width: float | None
    duration: float | None

    @property
    def duration_text(self) -> str:
        return "" if self.duration is None else _seconds(self.duration)


@dataclass(frozen=True, slots=True)
class Gantt:
    """The rows and the run's span (``total`` seconds from its first start)."""

    bars: tuple[Bar, ...]
    total: float
    dropped: int

    @property
    def total_text(self) -> str:
        return _seconds(self.total)


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _spans(context: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    timeline = context.get("timeline")
    if not isinstance(timeline, Mapping):
        return [], 0
    raw = timeline.get("spans")
    dropped = timeline.get("dropped", 0)
    spans = []
    for span in raw if isinstance(raw, list) else []:
        if not isinstance(span, Mapping):
            continue
        start, end = _when(span.get("start")), _when(span.get("end"))
        if start is None or end is None or start.tzinfo is None or end.tzinfo is None:
            continue
        spans.append({**span, "start": start, "end": end})
    return spans, dropped if isinstance(dropped, int) else 0


def gantt(context: Mapping[str, Any] | None) -> Gantt:
    """The timeline of a run's stored ``context`` (empty when it has none)."""
    if not context:
        return Gantt((), 0.0, 0)
    spans, dropped = _spans(context)
    jobs = context.get("jobs")
    jobs = jobs if isinstance(jobs, Mapping) else {}
    origin = min((s["start"] for s in spans), default=None)
    last = max((s["end"] for s in spans), default=None)
    total = (last - origin).total_seconds() if origin and last else 0.0
    scale = 100.0 / total if total > 0 else 0.0
    by_job: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_job.setdefault(str(span.get("job", "")), []).append(span)
    order = [str(j) for j in jobs] + [j for j in by_job if j not in jobs]
    bars: list[Bar] = []
    for job in order:
        rows = sorted(by_job.get(job, ()), key=lambda s: (s.get("stage") is not None, s["start"]))
        if not any(r.get("stage") is None for r in rows):
            entry = jobs.get(job)
            status = entry.get("status") if isinstance(entry, Mapping) else None
            bars.append(Bar(job, job, None, str(status or "UNKNOWN"), None, None, None))
        for span in rows:
            assert origin is not None
            duration = (span["end"] - span["start"]).total_seconds()
            left = (span["start"] - origin).total_seconds() * scale
            width = max(duration * scale, MIN_WIDTH) if scale else 100.0
            stage = span.get("stage")
            label = job if stage is None else str(span.get("name") or stage)
            if stage is not None and span.get("strategy"):
                label = f"{label} [{span['strategy']}]"
            bars.append(
                Bar(
                    label=label,
                    job=job,
                    stage=None if stage is None else str(stage),
                    status=str(span.get("status", "UNKNOWN")),
                    left=min(left, 100.0 - MIN_WIDTH),
                    width=min(width, 100.0 - min(left, 100.0 - MIN_WIDTH)),
                    duration=duration,
                )
            )
        if len(bars) >= MAX_ROWS:
            return Gantt(tuple(bars[:MAX_ROWS]), total, dropped + len(bars) - MAX_ROWS)
    return Gantt(tuple(bars), total, dropped)
