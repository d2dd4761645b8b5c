"""What a takeover means for runs: why they end, and which the lost owner still holds.

Pure functions over the store's records, used by the
:class:`~ddeutil.workflow.scheduling.scheduler.Scheduler` when it takes over a
daemon or worker that is gone, and when it finds its own lease taken over.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..result import Status
from ..store.fleet import OwnerRecord, OwnerState
from ..store.records import RunState

__all__ = ["INTERRUPTED_REASON", "interrupted_reason", "started_elsewhere"]

INTERRUPTED_REASON = "interrupted by a restart"
"""Why a run left RUNNING is FAILED when the owner that ran it is proven dead (SQLite's lock)."""


def interrupted_reason(gone: OwnerRecord, *, exclusive: bool) -> str:
    """Why a started run of the daemon or worker ``gone`` is recorded FAILED.

    ``exclusive``: the taker holds an unshared store alone (every other daemon
    is proven dead by its lock).
    """
    if gone.kind == "worker":
        how = "it stopped" if gone.state is OwnerState.STOPPED else "no heartbeat"
        return (
            f"worker lost: worker {gone.owner} on {gone.host} ({how}; last heartbeat "
            f"{gone.heartbeat.isoformat()})"
        )
    if exclusive or not gone.owner:
        return INTERRUPTED_REASON
    if gone.state is OwnerState.STOPPED:
        return f"interrupted: owner {gone.owner} stopped"
    return f"interrupted: owner {gone.owner} lost (last heartbeat {gone.heartbeat.isoformat()})"


def started_elsewhere(states: Mapping[str, RunState], lost: str) -> set[str]:
    """The runs of ``states`` a worker started (no longer the lost owner's: they go on)."""
    return {
        run_id
        for run_id, state in states.items()
        if state.status is Status.RUNNING and state.owner not in (None, lost)
    }
