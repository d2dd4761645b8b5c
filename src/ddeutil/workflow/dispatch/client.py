"""A client's place on the run store: ``workflow run`` and ``workflow backfill``.

A command that records runs and executes them itself holds them as an owner of
kind ``client`` (:class:`ClientLease`), so the store knows someone is executing
them: a daemon's start-up recovery leaves them alone, and when the client dies
(``kill -9``, a host lost) a daemon takes it over once its lease ran out and
records its started runs FAILED, never RUNNING forever. The lease thread also
watches the store for cancel requests (``workflow cancel``, the API) of the
runs the client holds and hands each to ``on_cancel`` once, so a cancel reaches
a run wherever it executes.

Policies:

* **Joined on entry, left on exit**; a lease taken over meanwhile (the process
  was paused past it) is logged once: the runs' ends are then refused by the
  fence, and the daemon that took the client over has recorded them FAILED.
* **A store that does not answer** is logged once per outage; the thread goes on.
* **Bounded**: the thread wakes every ``poll`` seconds and stops within one
  ``poll`` of :meth:`ClientLease.close`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from ..clock import Clock, SystemClock
from ..errors import StoreError
from ..store.base import RunStore
from ..store.fleet import new_owner_id

__all__ = ["ClientLease"]

logger = logging.getLogger(__name__)

CANCEL_POLL = 1.0
"""Seconds between two looks for cancel requests (and the lease thread's wake-up)."""


class ClientLease:
    """Holds an owner id of kind ``client`` on ``store`` while the ``with`` block runs.

    Args:
        store: The run store the client records its runs in.
        lease: The lease (``WORKFLOW_APP_LEASE_SECONDS``); it beats every third.
        on_cancel: Called (on the lease thread) with the id of each run this
            client holds whose cancel was asked, once per run.
        clock: Time source of heartbeats.
        poll: Seconds between looks for cancel requests.
    """

    def __init__(
        self,
        store: RunStore,
        *,
        lease: float,
        on_cancel: Callable[[str], None],
        clock: Clock | None = None,
        poll: float = CANCEL_POLL,
    ) -> None:
        self.store = store
        self.owner = new_owner_id()
        self._lease = lease
        self._on_cancel = on_cancel
        self._clock = clock if clock is not None else SystemClock()
        self._poll = min(poll, lease / 3)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._asked: set[str] = set()
        self._down = False
        self._lost = False

    def __enter__(self) -> ClientLease:
        host, pid = socket.gethostname(), os.getpid()
        while not self.store.join(
            self.owner, now=self._clock.now(), host=host, pid=pid, kind="client"
        ):
            self.owner = new_owner_id()
        self._thread = threading.Thread(target=self._run, name="client-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the lease thread and leave the store (idempotent, never raises)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._poll + 5.0)
        try:
            self.store.leave(self.owner, now=self._clock.now())
        except StoreError as exc:
            logger.warning("could not leave the run store as %s: %s", self.owner, exc)

    def check(self) -> None:
        """Look for cancel requests now (the lease thread does it every ``poll``)."""
        for run_id in self.store.cancel_requests(self.owner):
            if run_id not in self._asked:
                self._asked.add(run_id)
                logger.info("run %s: cancel asked through the run store", run_id)
                self._on_cancel(run_id)

    def _run(self) -> None:
        beat_every = max(1, int(self._lease / 3 / self._poll))  # in wake-ups
        wakes = 0
        while not self._stop.wait(self._poll):
            wakes += 1
            try:
                if wakes % beat_every == 0:
                    self._beat()
                self.check()
            except StoreError as exc:
                if not self._down:
                    logger.error("the run store does not answer (%s); retrying", exc)
                self._down = True
            else:
                if self._down:
                    logger.info("the run store answers again")
                self._down = False

    def _beat(self) -> None:
        if self.store.heartbeat(now=self._clock.now(), owner=self.owner) or self._lost:
            return
        self._lost = True
        logger.error(
            "client lease lost: owner %s was taken over (no heartbeat for more than %gs); "
            "the runs it executes were recorded FAILED by the daemon that took it over",
            self.owner,
            self._lease,
        )
