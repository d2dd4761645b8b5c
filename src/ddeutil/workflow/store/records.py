"""The run store's records: claims, runs, run states and run filters.

A leaf of the store package (the protocol in :mod:`.base` and the fleet records
in :mod:`.fleet` build on it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias, cast

from ..errors import StoreError
from ..result import ErrorRecord, Status
from ..runs import ReleaseKey, TriggerKind
from ._codec import utc

__all__ = [
    "Claim",
    "DuplicateRun",
    "ReleaseRun",
    "RunFilter",
    "RunRecord",
    "RunState",
    "StatusFilter",
]


@dataclass(frozen=True)
class Claim:
    """One release to claim in a batch (see :meth:`RunStore.claim_many`)."""

    release: ReleaseKey
    run_id: str
    params: Mapping[str, Any] = field(default_factory=dict)
    logical_date: datetime | None = None
    trigger: TriggerKind = TriggerKind.SCHEDULE
    """``SCHEDULE`` (the daemon) or ``BACKFILL``: the same release claim either way."""


@dataclass(frozen=True)
class RunRecord:
    """One run as the store knows it.

    ``release`` is set for scheduled runs only. ``created`` is when the run was
    recorded (claimed or triggered), ``started`` when the start handshake
    succeeded and ``ended`` when it reached a terminal status. ``error`` is a
    one-line summary of why a run failed; ``errors`` holds each error with the job
    and stage it came from.
    """

    run_id: str
    pipeline: str
    trigger: TriggerKind
    status: Status
    release: ReleaseKey | None
    logical_date: datetime | None
    params: Mapping[str, Any]
    context: Mapping[str, Any] | None
    errors: tuple[ErrorRecord, ...]
    created: datetime
    started: datetime | None
    ended: datetime | None
    error: str | None
    idempotency_key: str | None
    owner: str | None = None
    """Who holds the run: the daemon that claimed (or adopted) a scheduled run, the
    worker that started it, the client (``workflow run``, ``backfill``) that
    executes it; ``None`` for a run nobody holds."""
    rerun_of: str | None = None
    """The run this one reruns (``workflow rerun``), if any."""
    cancel_requested: datetime | None = None
    """When a cancel of this RUNNING run was asked (:meth:`RunStore.request_cancel`)."""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able view (datetimes as ISO 8601 text)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        release = None
        if self.release is not None:
            release = {
                "pipeline": self.release.pipeline,
                "schedule": self.release.schedule,
                "at": self.release.at.isoformat(),
            }
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "trigger": self.trigger.value,
            "status": self.status.value,
            "release": release,
            "logical_date": iso(self.logical_date),
            "params": dict(self.params),
            "context": dict(self.context) if self.context is not None else None,
            "errors": [e.to_dict() for e in self.errors],
            "created": self.created.isoformat(),
            "started": iso(self.started),
            "ended": iso(self.ended),
            "error": self.error,
            "idempotency_key": self.idempotency_key,
            "owner": self.owner,
            "rerun_of": self.rerun_of,
            "cancel_requested": iso(self.cancel_requested),
        }


@dataclass(frozen=True)
class RunState:
    """Where one run stands, without its params and context (see :meth:`RunStore.run_states`).

    ``error`` is the one-line summary of a failed run, ``owner`` who holds the
    run (see :attr:`RunRecord.owner`) and ``started`` when the start handshake
    succeeded.
    """

    status: Status
    error: str | None
    owner: str | None
    started: datetime | None


@dataclass(frozen=True)
class ReleaseRun:
    """The run that holds one release's claim (see :meth:`RunStore.release_runs`).

    ``trigger`` says who claimed it: ``SCHEDULE`` a daemon, ``BACKFILL`` a backfill.
    """

    run_id: str
    trigger: TriggerKind
    status: Status
    owner: str | None


class DuplicateRun(StoreError):  # noqa: N818 - names the situation, like KeyError
    """An idempotency key was used before; ``run_id`` names the existing run.

    Idempotency keys are unique across the whole store (all pipelines); a caller
    that wants per-pipeline keys prefixes them with the pipeline name.
    """

    def __init__(self, run_id: str, idempotency_key: str | None = None) -> None:
        self.run_id = run_id
        self.idempotency_key = idempotency_key
        key = f" {idempotency_key!r}" if idempotency_key is not None else ""
        super().__init__(f"idempotency key{key} was already used by run {run_id}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.run_id, self.idempotency_key))


StatusFilter: TypeAlias = Status | Collection[Status] | None
"""One status, several statuses (any of them) or ``None`` (all)."""


@dataclass(frozen=True)
class RunFilter:
    """Which runs :meth:`RunStore.list_runs` and :meth:`RunStore.count_runs` select.

    A field left ``None`` does not filter; the fields that are set must all hold.
    ``status`` is one status or several (any of them; none selects no run),
    ``since`` (inclusive) and ``until`` (exclusive) bound ``created``. Values are
    normalised on construction, so equal filters compare equal: ``status``
    becomes a tuple of :class:`~ddeutil.workflow.result.Status` (an unknown
    status raises ``ValueError``), ``since`` and ``until`` aware UTC (a naive
    value is taken as UTC) and ``trigger`` a :class:`TriggerKind`.
    """

    pipeline: str | None = None
    status: StatusFilter = None
    since: datetime | None = None
    until: datetime | None = None
    trigger: TriggerKind | None = None

    def __post_init__(self) -> None:
        status = self.status
        if status is not None:
            statuses = (status,) if isinstance(status, str) else tuple(status)
            object.__setattr__(self, "status", tuple(Status(s) for s in statuses))
        if self.since is not None:
            object.__setattr__(self, "since", utc(self.since))
        if self.until is not None:
            object.__setattr__(self, "until", utc(self.until))
        if self.trigger is not None:
            object.__setattr__(self, "trigger", TriggerKind(self.trigger))

    @property
    def statuses(self) -> tuple[Status, ...] | None:
        """The statuses selected (``None``: any, ``()``: none)."""
        return cast("tuple[Status, ...] | None", self.status)
