"""Cancel requests from the run store, handed to whoever executes the runs.

``workflow cancel`` and ``POST /api/v1/runs/{run_id}/cancel`` only write a
request into the run store (:meth:`RunStore.request_cancel
<ddeutil.workflow.store.base.RunStore.request_cancel>`): a RUNNING run is marked,
and the process executing it must notice. :class:`CancelWatch` is that noticing
for one process: a small thread asks the store for the marked runs of one owner
(:meth:`RunStore.cancel_requests
<ddeutil.workflow.store.base.RunStore.cancel_requests>`) and calls ``cancel``
for each. The daemon watches its owner id (its scheduled runs, executed by its
worker processes), the API watches the runs nobody holds (its triggers), a
Celery worker watches its own owner id. ``workflow run`` uses the same query
through :class:`~ddeutil.workflow.dispatch.client.ClientLease`. Policies:

* **Cheap.** One indexed query per ``poll`` (1 s) per process, on a thread of
  its own: a scheduler tick or a slow store never waits on it, nor it on them.
* **Once per run.** Each run is handed to ``cancel`` once; what is remembered
  is forgotten as soon as the store no longer lists the run (it ended), so
  memory stays bounded by the runs in flight.
* **A run this process does not have** (``cancel`` returned ``False``: it ended
  a moment ago, or it belongs to an executor of another process under the same
  owner) is logged at debug level and not asked again.
* **A store that does not answer** is logged once per outage; the thread goes on.
* **Bounded stop**: :meth:`CancelWatch.close` returns within one ``poll`` plus
  the query under way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..errors import StoreError
from ..store.base import RunStore

__all__ = ["CANCEL_POLL", "CANCEL_REASON", "CancelWatch"]

logger = logging.getLogger(__name__)

CANCEL_POLL = 1.0
"""Seconds between two looks for cancel requests."""

CANCEL_REASON = "cancel requested through the run store"
"""The reason given to the executor (the store keeps no reason for a RUNNING run)."""


class CancelWatch:
    """Hands the cancel requests of ``owner``'s runs to ``cancel`` (see the module).

    Args:
        store: The run store the requests are read from.
        owner: Returns the owner id whose runs are watched, read at every look
            (a daemon joins again under a new id after a lost lease); ``None``
            watches the runs nobody holds (the API's).
        cancel: ``Executor.cancel``-like: cancels one run of this process,
            ``False`` when it does not have it. Called on the watch thread.
        poll: Seconds between two looks.
        name: The thread's name.
    """

    def __init__(
        self,
        store: RunStore,
        *,
        owner: Callable[[], str | None],
        cancel: Callable[[str, str], bool],
        poll: float = CANCEL_POLL,
        name: str = "cancel-watch",
    ) -> None:
        self._store = store
        self._owner = owner
        self._cancel = cancel
        self._poll = poll
        self._name = name
        self._asked: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down = False

    def start(self) -> CancelWatch:
        """Start the watch thread (once); returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the watch thread (idempotent, never raises)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._poll + 5.0)
            self._thread = None

    def check(self) -> list[str]:
        """Look once now; return the run ids handed to ``cancel`` by this look.

        Raises:
            StoreError: the store does not answer.
        """
        asked = self._store.cancel_requests(self._owner())
        self._asked.intersection_update(asked)  # runs that ended are forgotten
        handed: list[str] = []
        for run_id in asked:
            if run_id in self._asked:
                continue
            self._asked.add(run_id)
            handed.append(run_id)
            try:
                found = self._cancel(run_id, CANCEL_REASON)
            except Exception:
                logger.exception("cancelling run %s failed", run_id, extra={"run_id": run_id})
                continue
            if found:
                logger.info("cancel asked through the run store", extra={"run_id": run_id})
            else:
                logger.debug(
                    "cancel asked through the run store for a run not executed here",
                    extra={"run_id": run_id},
                )
        return handed

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.check()
            except StoreError as exc:
                if not self._down:
                    logger.error(
                        "cannot read cancel requests: the run store does not answer (%s)", exc
                    )
                self._down = True
            except Exception:
                logger.exception("reading cancel requests failed")
            else:
                if self._down:
                    logger.info("cancel requests are read again")
                self._down = False
