"""The run store contract: typed records and the :class:`RunStore` protocol.

The run store is the daemon's memory. It keeps every run (scheduled, manual or
API-triggered), the release claims that make scheduling exactly-once, the
scheduler watermark and its heartbeat. Three implementations pass the same
contract suite: :class:`~.memory.MemoryRunStore` (tests, embedding),
:class:`~.sqlite.SqliteRunStore` (the default, one file) and
:class:`~.postgres.PostgresRunStore` (extra ``postgres``).

Policies every implementation follows:

* **A release is claimed at most once.** :meth:`RunStore.claim` inserts the claim
  and its PENDING run atomically; a second claim of the same (pipeline, schedule,
  UTC instant) returns ``False`` and writes nothing, across threads, processes and
  restarts.
* **A run starts at most once.** :meth:`RunStore.mark_running` is the start
  handshake: only a PENDING run moves to RUNNING, and only one caller wins.
* **The first terminal writer wins.** :meth:`RunStore.finish` only closes a run
  that is PENDING or RUNNING; later writers get ``False`` and change nothing.
* **Time is aware UTC.** Every datetime going in may be aware in any zone (a naive
  value is taken as UTC, as :func:`~ddeutil.workflow.clock.ensure_utc` does) and
  every datetime coming out is aware UTC, microsecond precision.
* **JSON values are stored as JSON.** ``params`` and ``context`` go through a
  lenient encoder (datetimes and dates as ISO 8601 text, ``Decimal`` as text, sets
  as lists, anything else as ``str()``), so they come back as plain JSON values:
  a ``datetime`` param is read back as its ISO string. The store never masks;
  callers pass values that are already masked.
* **Every record reads back.** A lone surrogate (a string UTF-8 cannot encode)
  in a JSON value or in ``error`` is stored as its ``\\uXXXX`` escape text, so
  no write fails on it and every record can be served.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeAlias, cast, runtime_checkable

from ..errors import StoreError
from ..result import ErrorRecord, Status
from ..runs import ReleaseKey, TriggerKind
from ._codec import dump_errors, dumps_json, text_in, utc

__all__ = [
    "Claim",
    "DuplicateRun",
    "ReleaseKey",
    "RunFilter",
    "RunRecord",
    "RunStore",
    "StatusFilter",
    "TriggerKind",
]


@dataclass(frozen=True)
class Claim:
    """One release to claim in a batch (see :meth:`RunStore.claim_many`)."""

    release: ReleaseKey
    run_id: str
    params: Mapping[str, Any] = field(default_factory=dict)
    logical_date: datetime | None = None


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
        }


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


@runtime_checkable
class RunStore(Protocol):
    """Where runs, release claims, the watermark and the heartbeat live.

    Every method is safe to call from many threads. Implementations backed by a
    URL (SQLite, PostgreSQL) are also safe across processes that each open their
    own store from the same URL. Write methods are atomic: they either apply
    completely or raise :class:`~ddeutil.workflow.errors.StoreError`.
    """

    def claim(
        self,
        release: ReleaseKey,
        *,
        run_id: str,
        params: Mapping[str, Any],
        logical_date: datetime,
        now: datetime,
    ) -> bool:
        """Claim ``release`` and record its PENDING scheduled run ``run_id``.

        Returns ``False``, writing nothing, when that release was claimed before
        (by anyone, ever). Raises ``StoreError`` if ``run_id`` is already taken.
        """
        ...

    def claim_many(self, claims: Sequence[Claim], *, now: datetime) -> list[bool]:
        """Claim several releases in one transaction; one flag per claim, in order.

        Same semantics as :meth:`claim` for each item (a release repeated inside
        the batch is claimed by its first occurrence). Much faster than single
        claims for a burst of due releases.
        """
        ...

    def create_run(
        self,
        *,
        run_id: str,
        pipeline: str,
        trigger: TriggerKind,
        params: Mapping[str, Any],
        now: datetime,
        idempotency_key: str | None = None,
        logical_date: datetime | None = None,
    ) -> RunRecord:
        """Record a PENDING run that has no release (manual or API trigger).

        Raises:
            DuplicateRun: ``idempotency_key`` was used before; nothing is written.
            StoreError: ``run_id`` is already taken.
        """
        ...

    def mark_running(self, run_id: str, *, now: datetime) -> bool:
        """The start handshake: move a PENDING run to RUNNING.

        Returns ``False`` (changing nothing) when the run is not PENDING (already
        started, finished, failed by recovery) or unknown; the caller must then
        not execute it.
        """
        ...

    def finish(
        self,
        run_id: str,
        *,
        status: Status,
        now: datetime,
        context: Mapping[str, Any] | None = None,
        errors: Sequence[ErrorRecord] = (),
        error: str | None = None,
    ) -> bool:
        """Close a PENDING or RUNNING run with the terminal ``status``.

        Returns ``False`` (changing nothing) when the run is already terminal or
        unknown: the first terminal writer wins. ``context=None`` keeps what the
        record had. Raises ``ValueError`` for a non-terminal ``status``.
        """
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        """Return one run, or ``None`` when the id is unknown."""
        ...

    def list_runs(
        self, where: RunFilter | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[RunRecord]:
        """Return the runs ``where`` selects (all when ``None``), newest first.

        Newest is by ``created``, then ``run_id`` descending. Raises ``ValueError``
        for a negative ``limit`` or ``offset``.
        """
        ...

    def count_runs(self, where: RunFilter | None = None) -> int:
        """Count the runs :meth:`list_runs` would page through."""
        ...

    def pending_runs(self, *, trigger: TriggerKind | None = None) -> list[RunRecord]:
        """PENDING runs, oldest release first (runs without one by ``created``)."""
        ...

    def fail_interrupted(
        self, *, now: datetime, reason: str, trigger: TriggerKind | None = None
    ) -> list[str]:
        """Close every RUNNING run (of ``trigger``, if given) as FAILED.

        Used at start-up: a run left RUNNING by a crash is recorded as failed with
        ``reason``, never re-run. PENDING runs are left alone (they never started
        and may be dispatched). Returns the ids closed.
        """
        ...

    def get_watermark(self) -> datetime | None:
        """The scheduler's watermark, or ``None`` before the first tick ever."""
        ...

    def set_watermark(self, at: datetime) -> None:
        """Store ``at`` as the watermark, as given.

        The store does not refuse to move it backwards; keeping it monotonic
        (``max(old, now)``) is the scheduler's policy.
        """
        ...

    def heartbeat(self, *, now: datetime, owner: str) -> None:
        """Record that ``owner`` (a daemon) was alive at ``now``."""
        ...

    def last_heartbeat(self) -> tuple[datetime, str] | None:
        """The last heartbeat and its owner, or ``None`` if there was none."""
        ...

    def scheduler_lock(self, owner: str) -> AbstractContextManager[None]:
        """Hold the store's scheduler lock for the ``with`` block.

        Exclusive across processes (and across store objects in one process).
        Raises ``StoreLockedError`` naming the holder when it is taken. The OS or
        the database releases it when the holder dies, even by ``kill -9``.
        """
        ...

    def ping(self) -> bool:
        """Return whether the store answers (never raises)."""
        ...

    def close(self) -> None:
        """Release connections; idempotent. Other calls then raise StoreError."""
        ...


def terminal_status(status: Status) -> Status:
    """Return ``status`` as a :class:`Status`, refusing non-terminal ones."""
    value = Status(status)
    if not value.is_terminal:
        raise ValueError(f"finish() needs a terminal status, got {value.value}")
    return value


def check_paging(limit: int, offset: int) -> None:
    """Refuse negative paging arguments (they would mean "everything" in SQL)."""
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0, got {limit}, {offset}")


@dataclass(frozen=True)
class NewRun:
    """A PENDING run about to be recorded, in the form the stores keep.

    :class:`RunStoreBase` builds one from the arguments of
    :meth:`RunStore.create_run` or from a :class:`Claim`: times aware UTC,
    ``params`` JSON text.
    """

    run_id: str
    pipeline: str
    trigger: TriggerKind
    release: ReleaseKey | None
    logical_date: datetime | None
    params: str
    created: datetime
    idempotency_key: str | None = None

    @classmethod
    def claimed(cls, claim: Claim, created: datetime) -> NewRun:
        """The scheduled run that claiming ``claim`` at ``created`` records."""
        return cls(
            run_id=claim.run_id,
            pipeline=claim.release.pipeline,
            trigger=TriggerKind.SCHEDULE,
            release=claim.release,
            logical_date=None if claim.logical_date is None else utc(claim.logical_date),
            params=dumps_json(dict(claim.params)),
            created=utc(created),
        )


@dataclass(frozen=True)
class Ending:
    """How :meth:`RunStore.finish` closes a run, in the form the stores keep.

    ``context`` and ``errors`` are JSON text; ``context=None`` keeps the stored one.
    """

    status: Status
    ended: datetime
    context: str | None
    errors: str
    error: str | None


class RunStoreBase(abc.ABC):
    """What the bundled stores share: the :class:`RunStore` methods that reduce to others.

    Arguments are checked and normalised here, once; a subclass implements
    :meth:`claim_many` and the primitives below, plus the rest of the protocol.
    """

    def claim(
        self,
        release: ReleaseKey,
        *,
        run_id: str,
        params: Mapping[str, Any],
        logical_date: datetime,
        now: datetime,
    ) -> bool:
        return self.claim_many([Claim(release, run_id, params, logical_date)], now=now)[0]

    @abc.abstractmethod
    def claim_many(self, claims: Sequence[Claim], *, now: datetime) -> list[bool]: ...

    def create_run(
        self,
        *,
        run_id: str,
        pipeline: str,
        trigger: TriggerKind,
        params: Mapping[str, Any],
        now: datetime,
        idempotency_key: str | None = None,
        logical_date: datetime | None = None,
    ) -> RunRecord:
        run = NewRun(
            run_id=run_id,
            pipeline=pipeline,
            trigger=TriggerKind(trigger),
            release=None,
            logical_date=None if logical_date is None else utc(logical_date),
            params=dumps_json(dict(params)),
            created=utc(now),
            idempotency_key=idempotency_key,
        )
        return self._create(run)

    def finish(
        self,
        run_id: str,
        *,
        status: Status,
        now: datetime,
        context: Mapping[str, Any] | None = None,
        errors: Sequence[ErrorRecord] = (),
        error: str | None = None,
    ) -> bool:
        ending = Ending(
            status=terminal_status(status),
            ended=utc(now),
            context=None if context is None else dumps_json(dict(context)),
            errors=dump_errors(errors),
            error=text_in(error),
        )
        return self._finish(run_id, ending)

    def list_runs(
        self, where: RunFilter | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[RunRecord]:
        check_paging(limit, offset)
        return self._list(RunFilter() if where is None else where, limit, offset)

    def count_runs(self, where: RunFilter | None = None) -> int:
        return self._count(RunFilter() if where is None else where)

    def pending_runs(self, *, trigger: TriggerKind | None = None) -> list[RunRecord]:
        return self._pending(trigger)

    def get_watermark(self) -> datetime | None:
        state = self._get_state("watermark")
        return None if state is None else state[0]

    def set_watermark(self, at: datetime) -> None:
        self._set_state("watermark", at, "")

    def heartbeat(self, *, now: datetime, owner: str) -> None:
        self._set_state("heartbeat", now, owner)

    def last_heartbeat(self) -> tuple[datetime, str] | None:
        return self._get_state("heartbeat")

    @abc.abstractmethod
    def _create(self, run: NewRun) -> RunRecord:
        """Record ``run`` and return it as stored.

        Raises:
            DuplicateRun: its idempotency key was used before; nothing is written.
            StoreError: its run id is already taken.
        """

    @abc.abstractmethod
    def _finish(self, run_id: str, ending: Ending) -> bool:
        """Apply ``ending`` to a PENDING or RUNNING run; ``False`` when there is none."""

    @abc.abstractmethod
    def _list(self, where: RunFilter, limit: int, offset: int) -> list[RunRecord]:
        """The page of runs ``where`` selects, newest first (paging already checked)."""

    @abc.abstractmethod
    def _count(self, where: RunFilter) -> int:
        """How many runs ``where`` selects."""

    @abc.abstractmethod
    def _pending(self, trigger: TriggerKind | None) -> list[RunRecord]:
        """The PENDING runs (of ``trigger``, if given) in :meth:`pending_runs` order."""

    @abc.abstractmethod
    def _get_state(self, name: str) -> tuple[datetime, str] | None:
        """The instant and owner stored under ``name``, or ``None``."""

    @abc.abstractmethod
    def _set_state(self, name: str, at: datetime, owner: str) -> None:
        """Store ``at`` (aware UTC once stored) and ``owner`` under ``name``."""
