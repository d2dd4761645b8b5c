"""The sender: leases due outbox rows and delivers them, with retries and backoff.

:meth:`Sender.send_due` is one pass: claim up to :data:`BATCH` due rows
(leased for :data:`LEASE`, which outlasts a batch of attempts of
:data:`~.channels.TIMEOUT` each), deliver each, record the outcome. Policies:

* **At least once.** A row is marked sent only after the receiver accepted it.
  A sender killed between the delivery and that mark leaves the row pending;
  another pass (this process's or any other's) claims it once the lease ran
  out and delivers it again, with the same ``id`` and ``Idempotency-Key``.
  A receiver drops a key it has seen to get exactly-once handling.
* **Retries.** A failed attempt is due again after :func:`backoff` (5 s,
  doubling, at most 15 min); after ``WORKFLOW_NOTIFY_MAX_ATTEMPTS`` attempts,
  or at once for a permanent failure (see :mod:`.channels`), the row is given
  up (``dead``) and logged at ERROR. A row claimed more often than that (its
  senders kept dying) is given up without another attempt.
* **Never in a run's way.** The sender runs on a thread of its own; every
  failure (a receiver, the store) is logged and counted in :attr:`Sender.stats`,
  never raised into the caller's loop.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from ..clock import Clock
from ..errors import StoreError
from ..settings import Settings
from ..store.base import RunStore
from ..store.outbox import OutboxItem
from .channels import DeliveryError, post_webhook, send_email

__all__ = ["BATCH", "LEASE", "SendStats", "Sender", "backoff"]

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
"""How long a claimed row is a sender's; then another sender may claim it."""
BATCH = 10
"""Rows claimed by one pass."""
BACKOFF_FIRST = 5.0
"""Seconds before the second attempt."""
BACKOFF_CAP = 900.0
"""Most seconds between two attempts."""

Deliver = Callable[[OutboxItem], None]
"""Delivers one row or raises :class:`~.channels.DeliveryError`."""


def backoff(attempts: int) -> float:
    """Seconds before the attempt after the ``attempts``-th (5, 10, 20, ... capped)."""
    return float(min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_CAP))


@dataclass
class SendStats:
    """What a sender did since it started (read by logs and tests)."""

    sent: int = 0
    failed: int = 0
    """Attempts that failed (each retried or given up)."""
    given_up: int = 0
    store_errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


class Sender:
    """Delivers the outbox of ``store`` (see the module).

    Args:
        store: The run store whose outbox is sent.
        settings: SMTP server and sender address, the attempts before giving up.
        owner: Names this sender in leases (a daemon's owner id).
        clock: The time of leases and retries.
        deliver: Delivers one row (tests pass a fake); default by its channel.
    """

    def __init__(
        self,
        store: RunStore,
        settings: Settings,
        *,
        owner: str,
        clock: Clock,
        deliver: Deliver | None = None,
        lease: timedelta = LEASE,
        batch: int = BATCH,
    ) -> None:
        self._store = store
        self._settings = settings
        self._owner = owner
        self._clock = clock
        self._deliver = deliver or self.deliver
        self._lease = lease
        self._batch = batch
        self.stats = SendStats()

    def deliver(self, item: OutboxItem) -> None:
        """Deliver ``item`` by its channel (webhook POST or email)."""
        if item.channel == "webhook":
            post_webhook(item.target, item.payload.encode("utf-8"), key=item.key)
            return
        smtp = self._settings.notify_smtp_url
        if not smtp:
            raise DeliveryError("no mail server (WORKFLOW_NOTIFY_SMTP_URL)", permanent=True)
        data = json.loads(item.payload)
        send_email(
            smtp,
            sender=self._settings.notify_email_from,
            to=item.target.split(","),
            subject=f"[workflow] {item.pipeline}: {item.event}",
            text=json.dumps(data, indent=2, ensure_ascii=False),
            key=item.key,
        )

    def send_due(self) -> int:
        """One pass (see the module); return how many rows were delivered. Never raises."""
        try:
            items = self._store.claim_notices(
                self._owner, now=self._clock.now(), lease=self._lease, limit=self._batch
            )
        except StoreError as exc:
            self.stats.count("store_errors")
            logger.warning("notifications not sent now (run store: %s)", exc)
            return 0
        return sum(self._send(item) for item in items)

    def _send(self, item: OutboxItem) -> bool:
        limit = self._settings.notify_max_attempts
        extra = {"run_id": item.run_id} if item.run_id else {}
        error: DeliveryError
        if item.attempts > limit:
            error = DeliveryError(f"claimed {item.attempts} times", permanent=True)
        else:
            try:
                self._deliver(item)
            except DeliveryError as exc:
                error = exc
            except Exception as exc:  # a bug must not stop the loop
                logger.exception("notification %s: delivery raised", item.key, extra=extra)
                error = DeliveryError(f"{type(exc).__name__}: {exc}")
            else:
                self._settle(item, lambda: self._store.notice_sent(item.key, now=self._clock.now()))
                self.stats.count("sent")
                logger.info(
                    "notification %s sent (%s, attempt %d)",
                    item.key,
                    item.channel,
                    item.attempts,
                    extra=extra,
                )
                return True
        self.stats.count("failed")
        now = self._clock.now()
        if error.permanent or item.attempts >= limit:
            self.stats.count("given_up")
            logger.error(
                "notification %s given up after %d attempt(s): %s",
                item.key,
                item.attempts,
                error,
                extra=extra,
            )
            retry_at = None
        else:
            wait = backoff(item.attempts)
            logger.warning(
                "notification %s: attempt %d failed (%s); next in %gs",
                item.key,
                item.attempts,
                error,
                wait,
                extra=extra,
            )
            retry_at = now + timedelta(seconds=wait)
        self._settle(
            item,
            lambda: self._store.notice_failed(
                item.key, now=now, retry_at=retry_at, error=str(error)
            ),
        )
        return False

    def _settle(self, item: OutboxItem, write: Callable[[], bool]) -> None:
        try:
            write()
        except StoreError as exc:  # the lease runs out and the row is tried again
            self.stats.count("store_errors")
            logger.warning("notification %s: outcome not recorded (%s)", item.key, exc)
