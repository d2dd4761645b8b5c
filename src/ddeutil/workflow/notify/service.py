"""The notify thread of a long-running process: missed releases found, the outbox sent.

:class:`NotifyService` runs on a thread of its own every :data:`EVERY`
seconds (woken earlier by :meth:`NotifyService.wake`): it records the
``missed`` notices of late releases and, every :data:`SWEEP_EVERY` seconds,
the ``failure`` notices of runs closed FAILED by a takeover or a restart
(:mod:`.sweep`) (the daemon only: it knows the pipelines' ``notify:`` keys),
and sends what the outbox holds (:class:`.sender.Sender`).
Any failure is logged and the next pass tries again; stopping waits for the
pass under way at most :data:`JOIN` seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from ..clock import Clock
from ..errors import StoreError
from ..notify_rule import Targets
from ..runs import ReleaseKey
from ..store.base import RunStore
from .late import record_missed
from .notices import Notifier
from .sender import Sender
from .sweep import record_unnoticed_failures

__all__ = ["EVERY", "JOIN", "SWEEP_EVERY", "SWEEP_WINDOW", "NotifyService"]

logger = logging.getLogger(__name__)

EVERY = 5.0
"""Seconds between two passes."""
JOIN = 15.0
"""Seconds :meth:`NotifyService.stop` waits for the pass under way."""
SWEEP_EVERY = 60.0
"""Seconds between two sweeps for failures recorded without a notice."""
SWEEP_WINDOW = timedelta(days=1)
"""How far back (by creation) a sweep looks, at most (see :mod:`.sweep`)."""


class NotifyService:
    """Find missed releases and send the outbox, on a thread (see the module).

    Args:
        store: The run store.
        sender: Delivers the outbox.
        clock: The time of a pass.
        notifier: Makes ``missed`` notices; with ``targets_of`` (a pipeline's
            targets), the pass looks for late releases. ``None``: it only sends.
        delay_of: The seconds a release's jitter delays its start (late counts
            from then); default none.
        every: Seconds between passes.
        sweep_window: How far back the sweep for failures without a notice
            looks (at most the retention); ``None``: no sweep.
    """

    def __init__(
        self,
        store: RunStore,
        sender: Sender,
        *,
        clock: Clock,
        notifier: Notifier | None = None,
        targets_of: Callable[[str], Targets] | None = None,
        delay_of: Callable[[ReleaseKey], int] | None = None,
        every: float = EVERY,
        sweep_window: timedelta | None = SWEEP_WINDOW,
        name: str = "notify",
    ) -> None:
        self._store = store
        self.sender = sender
        self._clock = clock
        self._notifier = notifier
        self._targets_of = targets_of
        self._delay_of = delay_of
        self._every = every
        self._sweep_window = sweep_window
        self._swept: datetime | None = None
        self._name = name
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """One pass: record missed releases, then send until nothing is due. Never raises."""
        if self._notifier is not None and self._targets_of is not None:
            try:
                new = record_missed(
                    self._store,
                    self._notifier,
                    self._targets_of,
                    now=self._clock.now(),
                    delay_of=self._delay_of,
                )
            except StoreError as exc:
                logger.warning("missed releases not looked for now (run store: %s)", exc)
            except Exception:
                logger.exception("looking for missed releases failed")
            else:
                if new:
                    logger.warning("%d missed-release notice(s) recorded", new)
            self._sweep()
        while self.sender.send_due() and not self._stop.is_set():
            pass  # a batch went out: more may be due (a stopping service sends one batch)

    def _sweep(self) -> None:
        assert self._notifier is not None
        assert self._targets_of is not None
        now = self._clock.now()
        window, last = self._sweep_window, self._swept
        if window is None or (last is not None and (now - last).total_seconds() < SWEEP_EVERY):
            return
        self._swept = now
        try:
            new = record_unnoticed_failures(
                self._store, self._notifier, self._targets_of, now=now, window=window
            )
        except StoreError as exc:
            logger.warning("failures without a notice not looked for now (run store: %s)", exc)
        except Exception:
            logger.exception("looking for failures without a notice failed")
        else:
            if new:
                logger.info("%d failure notice(s) recorded for runs closed by others", new)

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Make the next pass start now."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread, waiting for the pass under way at most :data:`JOIN` seconds."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=JOIN)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception:  # beat() logs its own failures; this is a last guard
                logger.exception("notify pass failed")
            self._wake.wait(self._every)
            self._wake.clear()
