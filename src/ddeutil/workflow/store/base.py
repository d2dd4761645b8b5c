"""The run store contract: typed records and the :class:`RunStore` protocol.

The run store is the daemon's memory. It keeps every run (scheduled, manual or
API-triggered), the release claims that make scheduling exactly-once, the
watermarks, and the daemons that share it with their heartbeats (:mod:`.fleet`). Three implementations pass the same
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
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, get_args, runtime_checkable

from ..result import ErrorRecord, Status
from ..runs import ReleaseKey, TriggerKind
from ._codec import dump_errors, dumps_json, text_in, utc
from .fleet import Decide, OwnerKind, OwnerRecord, PipelineLoad, Quiet, RoundClaim, Takeover
from .outbox import Notice, OutboxItem, lease_until
from .records import (
    Claim,
    DuplicateRun,
    ReleaseRun,
    RunFilter,
    RunRecord,
    RunState,
    StatusFilter,
)

__all__ = [
    "Claim",
    "DuplicateRun",
    "ReleaseKey",
    "ReleaseRun",
    "RunFilter",
    "RunRecord",
    "RunState",
    "RunStore",
    "StatusFilter",
    "TriggerKind",
]


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

    def claim_many(
        self, claims: Sequence[Claim], *, now: datetime, owner: str | None = None
    ) -> list[bool]:
        """Claim several releases in one transaction; one flag per claim, in order.

        Same semantics as :meth:`claim` for each item (a release repeated inside
        the batch is claimed by its first occurrence). Much faster than single
        claims for a burst of due releases. The runs are recorded with ``owner``.
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
        owner: str | None = None,
        rerun_of: str | None = None,
    ) -> RunRecord:
        """Record a PENDING run that has no release (manual or API trigger).

        ``owner`` is the live client that executes it (see :meth:`join`), if
        any; ``rerun_of`` the run it reruns.

        Raises:
            DuplicateRun: ``idempotency_key`` was used before; nothing is written.
            StoreError: ``run_id`` is already taken.
        """
        ...

    def mark_running(
        self,
        run_id: str,
        *,
        now: datetime,
        owner: str | None = None,
        runner: str | None = None,
    ) -> bool:
        """The start handshake: move a PENDING run to RUNNING.

        Returns ``False`` (changing nothing) when the run is not PENDING (already
        started, finished, failed by recovery) or unknown, or when ``owner`` is
        given and the run is no longer that owner's (taken over: the fence); the
        caller must then not execute it.

        With ``runner`` (a worker's owner id), the same atomic update makes the
        run that worker's: its end is then fenced with ``finish(owner=runner)``,
        a daemon taking over the run's former owner leaves it alone, and the
        daemon that takes the worker over when it dies records it FAILED.
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
        owner: str | None = None,
        notices: Sequence[Notice] = (),
    ) -> bool:
        """Close a PENDING or RUNNING run with the terminal ``status``.

        Returns ``False`` (changing nothing) when the run is already terminal or
        unknown: the first terminal writer wins; likewise when ``owner`` is given
        and the run is no longer that owner's. ``context=None`` keeps what the
        record had. Raises ``ValueError`` for a non-terminal ``status``.

        ``notices`` go into the outbox (:mod:`.outbox`) in the same transaction,
        only if this call closes the run (a notice whose key exists is skipped;
        one with ``after_failure`` only if the pipeline's previous ended run failed).
        """
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        """Return one run, or ``None`` when the id is unknown."""
        ...

    # -- the notification outbox (see :mod:`.outbox`) ----------------------------

    def add_notices(self, notices: Sequence[Notice], *, now: datetime) -> list[bool]:
        """Insert ``notices`` due at ``now`` in one transaction; ``False`` for a key already there."""
        ...

    def claim_notices(
        self, owner: str, *, now: datetime, lease: timedelta, limit: int
    ) -> list[OutboxItem]:
        """Lease up to ``limit`` due pending outbox rows to ``owner`` (one more attempt each)."""
        ...

    def notice_sent(self, key: str, *, now: datetime) -> bool:
        """Mark the outbox row ``key`` sent; ``False`` when it is not pending."""
        ...

    def notice_failed(
        self, key: str, *, now: datetime, retry_at: datetime | None, error: str
    ) -> bool:
        """Record a failed attempt of ``key``: due again at ``retry_at``, given up when ``None``."""
        ...

    def notices(self, *, limit: int = 100) -> list[OutboxItem]:
        """Outbox rows, newest first."""
        ...

    def prune_notices(self, before: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` sent or given-up outbox rows created before ``before``."""
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
        """Close every RUNNING run that no owner holds (of ``trigger``, if given) as FAILED.

        Used at start-up: a run left RUNNING by a crash is recorded as failed with
        ``reason``, never re-run. Runs an owner holds (a daemon or a worker) are
        left alone: they are failed when that owner is taken over
        (:meth:`take_over`), never while it may still be executing them. PENDING
        runs are left alone too (they never started and may be dispatched).
        Returns the ids closed.
        """
        ...

    def request_cancel(self, run_id: str, *, now: datetime, reason: str) -> Status | None:
        """Ask that ``run_id`` be cancelled wherever it runs; return its status after.

        A PENDING run is recorded CANCELLED with ``reason`` at once (nobody starts
        it: the start handshake refuses it). A RUNNING run is marked
        (``cancel_requested``): whoever executes it sees it in
        :meth:`cancel_requests` and cancels it, and the run is then recorded
        CANCELLED by its executor. A terminal run is left alone. ``None``: unknown id.
        """
        ...

    def cancel_requests(self, owner: str | None) -> list[str]:
        """The RUNNING runs held by ``owner`` (``None``: nobody) with a cancel asked."""
        ...

    def pause(self, pipeline: str, *, now: datetime) -> bool:
        """Pause ``pipeline``'s schedules from ``now``; ``False`` when it already was."""
        ...

    def unpause(self, pipeline: str) -> datetime | None:
        """Resume ``pipeline``'s schedules; return when it was paused (``None``: it was not)."""
        ...

    def paused(self) -> dict[str, datetime]:
        """Every paused pipeline and when it was paused."""
        ...

    def skipped_releases(
        self, pipeline: str, *, reason: str, since: datetime, until: datetime, limit: int
    ) -> list[ReleaseKey]:
        """Up to ``limit`` of ``pipeline``'s releases recorded SKIPPED with ``reason``.

        Only releases in ``[since, until)``, oldest first (``unpause --catchup``
        pages through the releases a pause skipped with it).
        """
        ...

    def reclaim_skipped(
        self, claims: Sequence[Claim], *, reason: str, now: datetime, owner: str | None = None
    ) -> list[bool]:
        """Claim releases recorded SKIPPED with ``reason`` again; one flag per claim, in order.

        In one transaction, each release's SKIPPED run with that exact ``reason``
        is deleted and the claim recorded in its place (PENDING, as
        :meth:`claim_many` would), so a skipped release runs once, never twice,
        and is never lost between the two. A release whose record is anything
        else (it ran, or another caller reclaimed it first) is ``False``.
        """
        ...

    def newest_runs(self) -> dict[str, str]:
        """Each pipeline's newest run id (by ``created``, then run id): never pruned."""
        ...

    def prune_runs(self, before: datetime, *, limit: int, keep: Collection[str] = ()) -> list[str]:
        """Delete up to ``limit`` ended runs created before ``before``, oldest first.

        Runs not ended (PENDING, RUNNING) and the ids in ``keep`` are never
        deleted; a run's saved log goes with it (and with a scheduled run, its
        release claim). One short transaction: call it again until it returns
        fewer than ``limit`` ids. Returns the ids deleted.
        """
        ...

    def run_states(self, run_ids: Sequence[str]) -> dict[str, RunState]:
        """The current state of each known run of ``run_ids``; unknown ids are absent.

        Cheap enough to poll for thousands of runs in flight: a few queries (one
        per chunk of ids) that leave params and context unread.
        """
        ...

    def release_runs(self, releases: Sequence[ReleaseKey]) -> dict[ReleaseKey, ReleaseRun]:
        """The run holding the claim of each of ``releases`` that was claimed; others absent.

        Reads without locking (a claim made a moment later is not seen). Meant for
        a few hundred keys of one pipeline at a time (``workflow backfill``).
        """
        ...

    def save_log(self, run_id: str, text: str) -> None:
        """Keep the log of ``run_id`` (JSON lines), replacing what was kept.

        A Celery worker saves the log of each run it executed when the run ended,
        so ``workflow logs`` and the API read it on any machine.
        """
        ...

    def run_log(self, run_id: str) -> str | None:
        """The log :meth:`save_log` kept for ``run_id``, or ``None``."""
        ...

    def get_watermark(self) -> datetime | None:
        """The store's watermark, or ``None`` before the first tick ever.

        The newest boundary any daemon planned; a pipeline seen for the first
        time starts from it (each pipeline then has its own, see
        :meth:`claim_round`, which also moves this one forward).
        """
        ...

    def set_watermark(self, at: datetime) -> None:
        """Store ``at`` as the store's watermark, as given (also backwards)."""
        ...

    # -- several daemons (see :mod:`.fleet`) ------------------------------------

    def shared(self) -> bool:
        """Whether several daemons may run on this store at once (PostgreSQL).

        A store that is not shared is held by one daemon at a time through
        :meth:`scheduler_lock`; that daemon takes every other owner over at start.
        """
        ...

    def join(
        self, owner: str, *, now: datetime, host: str, pid: int, kind: OwnerKind = "scheduler"
    ) -> bool:
        """Register the live daemon or worker ``owner``; ``False`` (writing nothing) if the id was used.

        ``kind`` says which it is. An owner id is never live twice: a daemon or
        a worker picks another one then.
        """
        ...

    def heartbeat(self, *, now: datetime, owner: str) -> bool:
        """Renew ``owner``'s lease at ``now``.

        Returns ``False`` when ``owner`` is no longer live (it was taken over, or
        left): it must stop acting under that id and :meth:`join` again.
        """
        ...

    def leave(self, owner: str, *, now: datetime) -> None:
        """Record that ``owner`` stopped cleanly: its waiting claims go to others at once."""
        ...

    def owners(self) -> list[OwnerRecord]:
        """Every owner (daemon or worker) known to the store, newest heartbeat first."""
        ...

    def last_heartbeat(self) -> tuple[datetime, str] | None:
        """The newest heartbeat of any daemon and its owner, or ``None`` if none ever beat."""
        ...

    def take_over(
        self,
        owner: str,
        *,
        now: datetime,
        lease: timedelta,
        everyone: bool = False,
        unowned: bool = False,
        reason: Callable[[OwnerRecord], str],
    ) -> Takeover:
        """Adopt the work of the owners that are gone, for the live ``owner``.

        An owner is gone when it left, or when it is live with a heartbeat older
        than ``now - lease``. With ``everyone`` (for a daemon holding an unshared
        store's lock) every other scheduler counts as gone whatever its lease; a
        worker still only when it left or its lease ran out (its runs go on,
        whichever daemon holds the lock). Each gone owner is taken over in one transaction, by one
        caller only: its PENDING scheduled runs become ``owner``'s (without a
        slot: the caller dispatches them again), its RUNNING runs of any trigger
        are recorded FAILED with ``reason(that owner)``, and it is recorded lost
        (never live again). With ``unowned``, scheduled runs that have no owner
        (written before owners existed) are treated the same way, RUNNING ones
        failed with ``reason`` of a placeholder owner ``""``.

        Raises:
            OwnerLost: ``owner`` itself is no longer live.
        """
        ...

    def claim_round(
        self,
        pipelines: Sequence[str],
        *,
        owner: str,
        at: datetime,
        init: datetime,
        now: datetime,
        decide: Decide,
        batch: int = 64,
        claimed: Callable[[list[tuple[RoundClaim, bool]]], None] | None = None,
        quiet: Quiet | None = None,
    ) -> list[tuple[RoundClaim, bool]]:
        """Plan, claim and advance the watermarks of ``pipelines`` up to ``at``.

        Pipelines without a watermark start at ``init``. Repeatedly, in one
        transaction each: lock up to ``batch`` of those pipelines whose watermark
        is before ``at`` (later batches up to four times that; pipelines another
        caller holds are skipped, not waited for), show them to
        ``decide``, claim what it returns (owned by ``owner``, admitted, waiting
        or skipped as it says) and move their watermarks to ``at`` (never back).
        Returns each claim decided with whether it was won (a release claimed
        before is ``False``), in order; ``claimed`` gets them batch by batch as
        each commits, so the caller can dispatch before the round ends. The
        store's watermark
        (:meth:`get_watermark`) moves to ``at`` too, if it was before. A pipeline
        behind ``at`` for which ``quiet(name, watermark)`` is true has nothing due:
        it is never shown to ``decide`` (nor its load read); its watermark moves to
        ``at`` after the batches, in statements of their own (rows another caller
        holds are passed over). Watermarks only move forward, so what is quiet
        after the watermark read first is quiet after any later one.

        Raises:
            OwnerLost: ``owner`` is no longer live (nothing of the batch is written).
        """
        ...

    def admit(self, limits: Mapping[str, int], *, owner: str, now: datetime) -> list[str]:
        """Give free slots to ``owner``'s waiting claims; return the run ids admitted.

        ``limits`` maps each pipeline to its limit: at most that many scheduled
        runs of the pipeline hold a slot at once (RUNNING, or PENDING and
        admitted), fleet-wide. Free slots go to the oldest waiting releases
        first, whoever owns them; only ``owner``'s are admitted by this call
        (the others are left to their owners). One transaction for all of them.
        """
        ...

    def load(self, pipelines: Sequence[str]) -> dict[str, PipelineLoad]:
        """The scheduled runs not yet ended of each of ``pipelines`` that has some."""
        ...

    def scheduler_lock(self, owner: str) -> AbstractContextManager[None]:
        """Hold the store's scheduler lock for the ``with`` block.

        Exclusive across processes (and across store objects in one process) on
        a store that is not :attr:`shared`; on a shared store it is held in
        shared mode and only keeps out a daemon of an older version.
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


def owner_kind(kind: OwnerKind) -> OwnerKind:
    """Return ``kind``, refusing a value that is not an :data:`~.fleet.OwnerKind`."""
    if kind not in get_args(OwnerKind):
        raise ValueError(f"an owner is of kind 'scheduler', 'worker' or 'client', got {kind!r}")
    return kind


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
    owner: str | None = None
    rerun_of: str | None = None

    @classmethod
    def claimed(cls, claim: Claim, created: datetime, owner: str | None = None) -> NewRun:
        """The scheduled run that claiming ``claim`` at ``created`` records."""
        return cls(
            run_id=claim.run_id,
            pipeline=claim.release.pipeline,
            trigger=TriggerKind(claim.trigger),
            release=claim.release,
            logical_date=None if claim.logical_date is None else utc(claim.logical_date),
            params=dumps_json(dict(claim.params)),
            created=utc(created),
            owner=owner,
        )


@dataclass(frozen=True)
class Ending:
    """How :meth:`RunStore.finish` closes a run, in the form the stores keep.

    ``context`` and ``errors`` are JSON text; ``context=None`` keeps the stored one.
    ``owner``, when set, must still own the run (the fence).
    """

    status: Status
    ended: datetime
    context: str | None
    errors: str
    error: str | None
    owner: str | None = None
    notices: tuple[Notice, ...] = ()


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
    def claim_many(
        self, claims: Sequence[Claim], *, now: datetime, owner: str | None = None
    ) -> list[bool]: ...

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
        owner: str | None = None,
        rerun_of: str | None = None,
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
            owner=owner,
            rerun_of=rerun_of,
        )
        return self._create(run)

    def prune_runs(self, before: datetime, *, limit: int, keep: Collection[str] = ()) -> list[str]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        return self._prune(utc(before), limit, frozenset(keep))

    @abc.abstractmethod
    def _prune(self, before: datetime, limit: int, keep: frozenset[str]) -> list[str]:
        """:meth:`prune_runs` with its arguments checked."""

    def finish(
        self,
        run_id: str,
        *,
        status: Status,
        now: datetime,
        context: Mapping[str, Any] | None = None,
        errors: Sequence[ErrorRecord] = (),
        error: str | None = None,
        owner: str | None = None,
        notices: Sequence[Notice] = (),
    ) -> bool:
        ending = Ending(
            status=terminal_status(status),
            ended=utc(now),
            context=None if context is None else dumps_json(dict(context)),
            errors=dump_errors(errors),
            error=text_in(error),
            owner=owner,
            notices=tuple(notices),
        )
        return self._finish(run_id, ending)

    def claim_notices(
        self, owner: str, *, now: datetime, lease: timedelta, limit: int
    ) -> list[OutboxItem]:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        at = utc(now)
        return self._claim_notices(owner, at, lease_until(at, lease), limit)

    @abc.abstractmethod
    def _claim_notices(
        self, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[OutboxItem]:
        """:meth:`claim_notices` with its arguments checked (``until``: the lease's end)."""

    def prune_notices(self, before: datetime, *, limit: int) -> int:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        return self._prune_notices(utc(before), limit)

    @abc.abstractmethod
    def _prune_notices(self, before: datetime, limit: int) -> int:
        """:meth:`prune_notices` with its arguments checked."""

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

    def last_heartbeat(self) -> tuple[datetime, str] | None:
        beats = [(o.heartbeat, o.owner) for o in self.owners()]
        return max(beats) if beats else None

    @abc.abstractmethod
    def owners(self) -> list[OwnerRecord]: ...

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
