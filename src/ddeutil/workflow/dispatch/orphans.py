"""What becomes of the runs of a worker process that died (or was stopped).

The daemon settles each run assigned to a dead worker from what the run store
says about it (:func:`settle_orphan`), because the worker may have written the
run's outcome just before it died:

* **Not started** (still PENDING): dispatched again to another worker, or left
  PENDING when the daemon is stopping (the next start dispatches it).
* **Already ended** (a terminal status): nothing to write; the outcome is
  reported as the run's ``finished`` event.
* **Started and not ended**: recorded FAILED with the cause, e.g. ``worker
  process 4242 died: signal 9 (SIGKILL)``, or CANCELLED when the worker was
  being stopped. It is not run again: it may have had side effects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from ..result import ErrorRecord, Status
from ..store.base import RunStore
from .base import log_extra
from .records import RunEvent, RunRequest

__all__ = ["Settled", "record_end", "settle_orphan"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settled:
    """How one orphaned run was settled.

    Attributes:
        again: Dispatch it again (it had not started).
        event: Its ``finished`` event, when it ended (before or now).
    """

    again: bool = False
    event: RunEvent | None = None


def record_end(
    store: RunStore,
    run_id: str,
    status: Status,
    message: str,
    *,
    kind: str,
    now: datetime,
    owner: str | None = None,
) -> bool | None:
    """Record ``run_id`` ended with ``status`` and one error; a store error is logged.

    ``owner`` fences the write: nothing is written once the run was taken over.
    Returns whether it was written (``False``: the run was already closed, or
    is another owner's), ``None`` when the store failed.
    """
    try:
        return store.finish(
            run_id,
            status=status,
            now=now,
            errors=(ErrorRecord(message=message, kind=kind),),
            error=message,
            owner=owner,
        )
    except Exception:
        logger.exception("could not record run %s %s", run_id, status.value)
        return None


def settle_orphan(
    store: RunStore,
    request: RunRequest,
    cause: str,
    *,
    stopping: bool,
    closing: bool,
    now: datetime,
) -> Settled:
    """Settle a run whose worker is gone (see the module docstring).

    Args:
        store: The run store.
        request: The run the worker had been given.
        cause: How the worker ended (:func:`~ddeutil.workflow.dispatch.handle.describe_exit`).
        stopping: The worker was being stopped (its open runs end CANCELLED).
        closing: The daemon is shutting down (nothing is dispatched again).
        now: The time written to the record.
    """
    extra = log_extra(request)
    try:
        record = store.get_run(request.run_id)
    except Exception:
        logger.exception("cannot read the run of a dead worker", extra=extra)
        record = None
    if record is not None and record.status is Status.PENDING:
        if closing:
            return Settled()  # stays PENDING: dispatched after a restart
        logger.warning("run had not started on the dead worker; dispatching it again", extra=extra)
        return Settled(again=True)
    if record is not None and record.status.is_terminal:
        return Settled(event=RunEvent("finished", request.run_id, record.status, record.error))
    status = Status.CANCELLED if stopping else Status.FAILED
    message = f"cancelled at shutdown: {cause}" if stopping else cause
    logger.error("run recorded %s: %s", status.value, message, extra=extra)
    record_end(
        store, request.run_id, status, message, kind="WorkerDied", now=now, owner=request.owner
    )
    return Settled(event=RunEvent("finished", request.run_id, status, message))
