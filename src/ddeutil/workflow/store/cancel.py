"""Asking for a run's cancel, and what the answer means: ``workflow cancel`` and the API.

:func:`ask_cancel` wraps :meth:`RunStore.request_cancel
<ddeutil.workflow.store.base.RunStore.request_cancel>` with the read that tells
the three outcomes apart (the store's answer alone cannot: a PENDING run
cancelled now and a run cancelled long ago both read CANCELLED). Policies:

* **PENDING: cancelled at once** (``cancelled``), recorded CANCELLED with the
  reason; no executor starts it (the start handshake refuses it).
* **RUNNING: asked** (``asked``): the run is marked in the store; the process
  executing it (its ``owner``: a daemon, a Celery worker, a ``workflow run``
  client; none for an API run) notices within about a second, cancels it (shell
  process groups are killed) and records it CANCELLED.
* **Already ended** (``ended``): nothing changes; the outcome carries the
  status it ended with. A run that ended between the read and the request
  counts as ended too.
* **Unknown id**: ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..result import Status
from .base import RunStore

__all__ = ["DEFAULT_REASON", "CancelOutcome", "CancelWhat", "ask_cancel"]

DEFAULT_REASON = "cancelled by request"

CancelWhat = Literal["cancelled", "asked", "ended"]


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel request did to one run.

    Attributes:
        run_id: The run.
        what: ``cancelled`` (it was PENDING: recorded CANCELLED now), ``asked``
            (it is RUNNING: its executor was asked through the store) or
            ``ended`` (it had already ended: nothing changed).
        status: The run's status after the request.
        owner: Who executes (or executed) the run; ``None`` for a run nobody
            holds (an API run executed by the API process).
    """

    run_id: str
    what: CancelWhat
    status: Status
    owner: str | None

    @property
    def cancel_requested(self) -> bool:
        """Whether the run's executor was asked to cancel it (it was RUNNING)."""
        return self.what == "asked"


def ask_cancel(
    store: RunStore, run_id: str, *, now: datetime, reason: str | None = None
) -> CancelOutcome | None:
    """Ask that ``run_id`` be cancelled (see the module); ``None`` for an unknown id."""
    before = store.get_run(run_id)
    if before is None:
        return None
    if before.status.is_terminal:
        return CancelOutcome(run_id, "ended", before.status, before.owner)
    status = store.request_cancel(run_id, now=now, reason=reason or DEFAULT_REASON)
    if status is None:  # deleted meanwhile (retention)
        return None
    after = store.get_run(run_id)
    owner = after.owner if after is not None else before.owner
    if status is Status.RUNNING:
        return CancelOutcome(run_id, "asked", status, owner)
    if status is Status.CANCELLED and before.status is Status.PENDING:
        return CancelOutcome(run_id, "cancelled", status, owner)
    return CancelOutcome(run_id, "ended", status, owner)
