"""Several daemons on one store: owners, leases, takeover and claim rounds.

Records of the part of the run store contract that lets any number of
scheduler daemons share one PostgreSQL store (and that a single daemon on
SQLite goes through as well):

* **Owners.** Each daemon joins the store under an owner id that is never
  reused (:meth:`RunStore.join`); every claim it makes and every run it
  dispatches carries that id. It renews its lease with
  :meth:`RunStore.heartbeat`; a clean stop hands its waiting claims over
  (:meth:`RunStore.leave`). A worker that executes runs on another machine
  joins and beats the same way as an owner of kind ``worker``; a run it
  starts becomes its own (``mark_running(runner=...)``), so a worker that
  dies has its started runs recorded FAILED by the daemon that takes it over.
* **Takeover.** An owner whose heartbeat is older than the lease, or that left,
  is taken over by a live one in one transaction (:meth:`RunStore.take_over`):
  its claims that never started move to the taker (dispatched again, once); its
  runs that started are recorded FAILED, once. The owner is then *lost* and is
  never live again under that id.
* **Fencing.** The owner id is the fencing token: the start handshake, a run's
  end and every claim name the owner in the same statement that checks it, so
  a daemon that was paused past its lease and comes back cannot start, finish
  or claim anything that was taken over. A paused daemon learns it was taken
  over from its next heartbeat (``False``) and joins again under a new id.
* **Claim rounds.** :meth:`RunStore.claim_round` plans and claims a boundary
  pipeline by pipeline: each pipeline has its own watermark row, locked while
  its releases are claimed and advanced in the same transaction, so daemons
  share a boundary's work (a row another daemon holds is skipped, not waited
  for) and no restart or lag can skip or replay a release.
* **Admission.** A claimed release runs only once its pipeline has a free slot
  fleet-wide (:meth:`RunStore.admit`), oldest release first, so
  ``WORKFLOW_CORE_MAX_PIPELINE_POKING`` and ``concurrency: queue | skip`` hold
  across daemons.
"""

from __future__ import annotations

import enum
import os
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from ..errors import StoreError
from ._codec import utc
from .records import Claim, RunRecord

__all__ = [
    "ClaimState",
    "DaemonState",
    "DaemonView",
    "Decide",
    "Decision",
    "OwnerKind",
    "OwnerLost",
    "OwnerRecord",
    "OwnerState",
    "PipelineLoad",
    "Quiet",
    "RoundClaim",
    "RoundView",
    "Takeover",
    "daemon_views",
    "new_owner_id",
]


def new_owner_id() -> str:
    """An owner id for a daemon or a worker: ``<host>:<pid>:<random>``, never the same twice."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class OwnerLost(StoreError):  # noqa: N818 - names the situation, like KeyError
    """The calling daemon's owner id was taken over (or left); it must join again."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        super().__init__(
            f"owner {owner} is no longer live on this run store: its lease expired and "
            "another daemon took its work over"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.owner,))


OwnerKind = Literal["scheduler", "worker", "client"]
"""What an owner is: a scheduler daemon, a worker that executes the runs it starts, or
a client (``workflow run``, ``workflow backfill``) executing runs it recorded itself.
Workers and clients are taken over only when their lease runs out or they left."""


class OwnerState(str, enum.Enum):
    """Where one daemon (owner) stands on the store."""

    LIVE = "live"
    """Heartbeating (or presumed so until its lease runs out)."""
    STOPPED = "stopped"
    """Left cleanly; its waiting claims are adopted at once."""
    LOST = "lost"
    """Its lease expired and another daemon took its work over."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class OwnerRecord:
    """One owner (a daemon or a worker, ``kind``) as the store knows it.

    ``taken_by`` names the daemon that adopted its work (after it stopped or
    was lost); ``ended`` is when that happened or when it stopped.
    """

    owner: str
    host: str
    pid: int
    started: datetime
    heartbeat: datetime
    state: OwnerState
    taken_by: str | None = None
    ended: datetime | None = None
    kind: OwnerKind = "scheduler"


@dataclass(frozen=True)
class Takeover:
    """What one :meth:`RunStore.take_over` call did.

    Attributes:
        owners: The owners taken over (as they were just before).
        adopted: Claimed runs that had not started, now owned by the caller
            (oldest release first); the caller dispatches them.
        failed: Runs that had started, recorded FAILED (interrupted).
    """

    owners: tuple[OwnerRecord, ...] = ()
    adopted: tuple[RunRecord, ...] = ()
    failed: tuple[str, ...] = ()


class ClaimState(str, enum.Enum):
    """How a release claimed in a round is recorded."""

    ADMITTED = "admitted"
    """PENDING and holding one of its pipeline's slots: dispatch it now."""
    WAITING = "waiting"
    """PENDING without a slot: it waits (see :meth:`RunStore.admit`)."""
    SKIPPED = "skipped"
    """Recorded SKIPPED at once (``concurrency: skip`` while a run is in flight)."""


@dataclass(frozen=True)
class PipelineLoad:
    """A pipeline's scheduled runs not yet ended, fleet-wide.

    ``running``: RUNNING, or PENDING and admitted (holding a slot);
    ``waiting``: PENDING without a slot.
    """

    running: int = 0
    waiting: int = 0


@dataclass(frozen=True)
class RoundView:
    """What a claim round shows its ``decide`` callback for one batch.

    ``watermarks`` maps each pipeline of the batch (locked for this caller
    until the batch commits) to its watermark; ``load`` holds the pipelines of
    the batch that have runs not yet ended.
    """

    watermarks: Mapping[str, datetime]
    load: Mapping[str, PipelineLoad] = field(default_factory=dict)


@dataclass(frozen=True)
class RoundClaim:
    """One release to claim in a round, and how to record it."""

    claim: Claim
    state: ClaimState
    reason: str | None = None
    """The error text of a SKIPPED claim."""


@dataclass(frozen=True)
class Decision:
    """What ``decide`` returns for one batch: the claims, in release order."""

    claims: Sequence[RoundClaim] = ()


Decide = Callable[[RoundView], Decision]

Quiet = Callable[[str, datetime], bool]
"""Whether a pipeline whose watermark is the given instant has no release due at the
round's boundary (a claim round then advances its watermark without showing it to
``decide`` or reading its load)."""
"""Plans one batch of a claim round (runs inside the batch's transaction)."""


# -- how a daemon stands, for `workflow health` and /health -----------------------

DaemonState = Literal["live", "unresponsive", "stopped", "lost"]


@dataclass(frozen=True)
class DaemonView:
    """One daemon of the run store as ``workflow health`` shows it at one instant.

    Attributes:
        record: The daemon as the store knows it.
        state: ``live``; ``unresponsive`` (live, but silent for longer than the
            lease: another daemon on a shared store takes its work over);
            ``stopped`` (left cleanly) or ``lost`` (taken over).
        age: Seconds since its last heartbeat (never negative).
        stale: Its last heartbeat is older than the stale window.
        current: ``False`` for a daemon that stopped or was lost more than the
            stale window ago: kept on the store for the record only.
    """

    record: OwnerRecord
    state: DaemonState
    age: float
    stale: bool
    current: bool

    @property
    def live(self) -> bool:
        """Live on the store (``live`` or ``unresponsive``)."""
        return self.record.state is OwnerState.LIVE

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view, with the field names of the API's ``schedulers`` items."""
        record = self.record
        return {
            "owner": record.owner,
            "host": record.host,
            "pid": record.pid,
            "state": self.state,
            "started": record.started.isoformat(),
            "last_heartbeat": record.heartbeat.isoformat(),
            "age_seconds": round(self.age, 3),
            "stale": self.stale,
            "taken_by": record.taken_by,
            "ended": None if record.ended is None else record.ended.isoformat(),
            "current": self.current,
        }


def daemon_views(
    owners: Sequence[OwnerRecord], *, now: datetime, lease: timedelta, stale: timedelta
) -> list[DaemonView]:
    """How each daemon in ``owners`` stands at ``now`` (same order).

    A live daemon silent for longer than ``lease`` is ``unresponsive`` (it is
    taken over); a daemon that stopped or was lost (ended) more than ``stale``
    ago is no longer ``current``.
    """
    now = utc(now)
    views = []
    for record in owners:
        silent = max(now - record.heartbeat, timedelta(0))
        state: DaemonState
        current = True
        if record.state is OwnerState.LIVE:
            state = "unresponsive" if silent > lease else "live"
        else:
            state = "stopped" if record.state is OwnerState.STOPPED else "lost"
            ended = record.ended if record.ended is not None else record.heartbeat
            current = now - ended <= stale
        views.append(DaemonView(record, state, silent.total_seconds(), silent > stale, current))
    return views
