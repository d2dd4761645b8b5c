"""Typed outcomes: the :class:`Status` enum and the frozen :class:`Result` record."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["ErrorRecord", "Result", "Status"]


class Status(str, enum.Enum):
    """Lifecycle state of a run, job or stage.

    A :class:`Result` always holds one of the four terminal states; ``PENDING``
    (claimed, not yet started) and ``RUNNING`` appear only in the run store.
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self not in (Status.PENDING, Status.RUNNING)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ErrorRecord:
    """One error of a run: where it happened and what it said."""

    message: str
    kind: str = "WorkflowError"
    job: str | None = None
    stage: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "job": self.job, "stage": self.stage, "message": self.message}


@dataclass(frozen=True)
class Result:
    """The outcome of one pipeline run.

    ``context`` is ``{"params": ..., "jobs": {job_id: {"matrix": ..., "stages":
    {...}}}, "needs": {job_id: [...]}}``; a job that ran several matrix
    combinations keeps them under ``strategies`` keyed by combination id, and
    ``needs`` is the run's job graph (absent for a pipeline without jobs). ``errors`` lists every failure with the
    job and stage it came from; a SUCCESS result has none (except stages that
    recorded errors under ``WORKFLOW_CORE_STAGE_RAISE_ERROR=false``).
    """

    status: Status
    run_id: str
    start: datetime
    end: datetime
    context: Mapping[str, Any] = field(default_factory=dict)
    errors: tuple[ErrorRecord, ...] = ()
    parent_run_id: str | None = None
    pipeline: str | None = None

    @property
    def duration(self) -> float:
        """Seconds between start and end."""
        return (self.end - self.start).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able view (datetimes as ISO 8601 strings)."""
        return {
            "pipeline": self.pipeline,
            "status": self.status.value,
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "duration": self.duration,
            "context": self.context,
            "errors": [e.to_dict() for e in self.errors],
        }
