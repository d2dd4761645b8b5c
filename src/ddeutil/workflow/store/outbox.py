"""The notification outbox: notices written with the state change they report.

A notice (a failure, a recovery, a missed release) is not sent by whoever
notices it. It is written as an outbox row of the run store, in the **same
transaction** as the state change when there is one
(:meth:`RunStore.finish <ddeutil.workflow.store.base.RunStore.finish>` takes
the run's notices and inserts them only if it closes the run), and a sender
(:mod:`ddeutil.workflow.notify.sender`) delivers the rows later. Policies every
store follows:

* **One row per dedupe key.** :attr:`Notice.key` is unique in the outbox; a
  second insert of the same key writes nothing (a missed release detected at
  every beat is recorded once; a replayed run end inserts nothing because its
  finish changes nothing).
* **A recovery is decided in the transaction.** A notice with
  ``after_failure`` is inserted only when the pipeline's previous run that ended
  SUCCESS or FAILED (other than this one, by end time) was FAILED; runs that
  were skipped or cancelled do not count.
* **A row is leased while it is sent.** :meth:`~ddeutil.workflow.store.base.RunStore.claim_notices`
  hands a due pending row to one sender until its lease runs out, counting an
  attempt; the sender then marks it sent, or failed with the time of its next
  attempt (or given up). A sender that dies while holding a lease leaves the
  row pending: it is claimed again once the lease ran out. Delivery is
  therefore **at least once**: a crash after the receiver got a notice and
  before the row was marked sent sends it again, with the same dedupe key.
* **Bounded.** Payloads are capped by the caller (see
  :mod:`ddeutil.workflow.notify.notices`); rows that are done (sent or given
  up) are deleted by :meth:`~ddeutil.workflow.store.base.RunStore.prune_notices` with the runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal

__all__ = ["Channel", "Notice", "NoticeState", "OutboxItem", "lease_until"]

Channel = Literal["webhook", "email"]


class NoticeState(str, Enum):
    """Where an outbox row is: waiting to be sent, sent, or given up."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


@dataclass(frozen=True)
class Notice:
    """One notification to insert into the outbox.

    Attributes:
        key: The dedupe key, unique in the outbox (``<run id>:<event>:<channel>``);
            the receiver gets it too (``Idempotency-Key``).
        pipeline: The pipeline the notice is about.
        event: ``failure``, ``recovered`` or ``missed``.
        channel: How it is sent.
        target: Where: the webhook URL, or the comma-separated email addresses.
        payload: The JSON text sent (masked and size-capped already).
        run_id: The run it is about, if any.
        after_failure: Insert only if the pipeline's previous ended run failed
            (the recovery rule; see the module).
    """

    key: str
    pipeline: str
    event: str
    channel: Channel
    target: str
    payload: str
    run_id: str | None = None
    after_failure: bool = False


@dataclass(frozen=True)
class OutboxItem:
    """An outbox row as read back (claimed, or listed)."""

    key: str
    pipeline: str
    event: str
    channel: Channel
    target: str
    payload: str
    run_id: str | None
    state: NoticeState
    attempts: int
    created: datetime
    due: datetime
    done: datetime | None = None
    last_error: str | None = None


def lease_until(now: datetime, lease: timedelta) -> datetime:
    """When a lease taken at ``now`` runs out (refusing a lease that is not positive)."""
    if lease <= timedelta(0):
        raise ValueError(f"a lease must be positive, got {lease}")
    return now + lease
