"""Retention: delete the runs older than a cutoff, with their claims and log files.

:func:`prune` is the one loop behind ``workflow prune``, ``POST /api/v1/prune``
and the daemon's daily pass (:class:`Retention`). Its policies:

* **What goes.** Ended runs (SUCCESS, FAILED, SKIPPED, CANCELLED) created before
  the cutoff: their records, the log the store kept for them, and their per-run
  log files under the log folder. A scheduled run's release claim *is* its run
  record, so it goes too: that release can be claimed again, and a backfill over
  a pruned range runs it again.
* **What stays.** Runs not ended (PENDING, RUNNING: the store never deletes
  them) and the newest run of each pipeline, whatever its age, so every
  pipeline keeps its last outcome.
* **Bounded batches.** At most ``batch`` runs per call of
  :meth:`~.base.RunStore.prune_runs`, one short transaction each, so a scheduler
  tick or a worker's start handshake never waits long for the store's write
  lock; the loop ends at the first batch that comes back short. A batch's log
  files are removed after its rows: a crash in between leaves files without a
  run (harmless, and swept by nothing), never a run without its log. A file
  already gone is fine; one that cannot be removed is logged and left.
* **Stop.** A ``stop`` event is checked between batches; the report says
  whether the loop was stopped before the end.
* **Idempotent.** Several processes may prune one store at once (each daemon on
  a shared PostgreSQL store does, once a day): a run is deleted once, by
  whichever batch reaches it first; the others find fewer.
* **Notifications.** Outbox rows that are done (sent or given up) created
  before the cutoff go too, in batches after the runs' (pending rows stay:
  they are still to be sent).
* **Dry run.** Counts the runs that would go (one count query and one read per
  kept run); deletes nothing and does not look at log files.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..logs import run_log_path
from ..result import Status
from .base import RunStore
from .records import RunFilter

__all__ = ["ENDED", "PRUNE_BATCH", "PruneReport", "Retention", "cutoff", "prune"]

logger = logging.getLogger(__name__)

PRUNE_BATCH = 500
"""Runs deleted per transaction (see the README's Retention section for the numbers)."""
ENDED = (Status.SUCCESS, Status.FAILED, Status.SKIPPED, Status.CANCELLED)
"""The statuses a run can be pruned in."""


@dataclass(frozen=True)
class PruneReport:
    """What one :func:`prune` did.

    ``runs`` deleted (with ``dry_run``: that would be), ``log_files`` removed
    (``None`` on a dry run), ``batches`` of deletes, ``elapsed`` seconds in all
    and the ``longest_batch`` in seconds (one ``prune_runs`` call: the longest
    the store's write lock was wanted), ``stopped`` when a stop request ended
    the loop early.
    """

    before: datetime
    dry_run: bool
    runs: int
    log_files: int | None
    batches: int
    elapsed: float
    longest_batch: float
    stopped: bool = False
    notices: int = 0
    """Done outbox rows deleted (0 on a dry run)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (``before`` as ISO 8601)."""
        return {
            "before": self.before.isoformat(),
            "dry_run": self.dry_run,
            "runs": self.runs,
            "log_files": self.log_files,
            "batches": self.batches,
            "elapsed_seconds": round(self.elapsed, 6),
            "longest_batch_seconds": round(self.longest_batch, 6),
            "stopped": self.stopped,
            "notices": self.notices,
        }


def cutoff(now: datetime, days: float) -> datetime:
    """The instant ``days`` before ``now``: runs created before it are pruned."""
    return now - timedelta(days=days)


def prune(
    store: RunStore,
    *,
    before: datetime,
    log_dir: Path | None,
    batch: int = PRUNE_BATCH,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    timer: Callable[[], float] = time.perf_counter,
) -> PruneReport:
    """Delete the ended runs created before ``before`` (see the module's policies).

    Args:
        store: The run store.
        before: The cutoff (aware).
        log_dir: The folder of the per-run log files (``WORKFLOW_LOG_PATH``);
            ``None``: leave files alone.
        batch: Runs per transaction (at least 1).
        dry_run: Count, delete nothing.
        stop: Checked between batches; once set, the loop ends.
        timer: Seconds, for the report's durations.

    Raises:
        ValueError: ``batch`` is below 1.
        StoreError: the store failed; batches committed before stay deleted.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    started = timer()
    keep = frozenset(store.newest_runs().values())
    if dry_run:
        runs = _count(store, before, keep)
        return PruneReport(before, True, runs, None, 0, timer() - started, 0.0)
    runs = files = batches = 0
    longest = 0.0
    stopped = False
    while True:
        if stop is not None and stop.is_set():
            stopped = True
            break
        began = timer()
        ids = store.prune_runs(before, limit=batch, keep=keep)
        longest = max(longest, timer() - began)
        if ids:
            batches += 1
            runs += len(ids)
            if log_dir is not None:
                files += _remove_logs(log_dir, ids)
        if len(ids) < batch:
            break
    notices = 0
    while not stopped:
        if stop is not None and stop.is_set():
            stopped = True
            break
        began = timer()
        deleted = store.prune_notices(before, limit=batch)
        longest = max(longest, timer() - began)
        notices += deleted
        if deleted < batch:
            break
    elapsed = timer() - started
    return PruneReport(before, False, runs, files, batches, elapsed, longest, stopped, notices)


def _count(store: RunStore, before: datetime, keep: frozenset[str]) -> int:
    total = store.count_runs(RunFilter(status=ENDED, until=before))
    for run_id in keep:
        record = store.get_run(run_id)
        if record is not None and record.status in ENDED and record.created < before:
            total -= 1
    return total


def _remove_logs(log_dir: Path, run_ids: list[str]) -> int:
    removed = 0
    for run_id in run_ids:
        path = run_log_path(log_dir, run_id)
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("prune: cannot remove the log file %s of run %s: %s", path, run_id, exc)
            continue
        removed += 1
    return removed


@dataclass(frozen=True)
class Retention:
    """The daemon's pass: :func:`prune` with the cutoff ``days`` before the clock's now."""

    store: RunStore
    days: float
    log_dir: Path | None
    clock: Clock
    batch: int = PRUNE_BATCH

    def run(self, stop: threading.Event | None = None) -> PruneReport:
        """Prune once (see :func:`prune`); raises what it raises."""
        before = cutoff(self.clock.now(), self.days)
        return prune(self.store, before=before, log_dir=self.log_dir, batch=self.batch, stop=stop)
