"""Failures recorded without a notice: runs a takeover or a restart closed FAILED.

A run's end written by its executor carries its notices
(:meth:`RunStore.finish <ddeutil.workflow.store.base.RunStore.finish>`). Some
runs are closed FAILED by someone else, in a store transaction that knows no
pipeline's ``notify:`` key: a daemon taking over a dead worker or daemon, a
start-up closing runs left RUNNING, a run that could not be dispatched.
:func:`record_unnoticed_failures` gives those their ``failure`` notice: it reads
the newest FAILED runs created within ``window`` and inserts the notice of each
with the same dedupe key the end would have used, so a run whose end wrote
its notice gets no second one. ``window`` must not exceed the retention (a
pruned notice would then be written again); the daemon uses the smaller of one
day and ``WORKFLOW_RUN_RETENTION_DAYS``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from ..notify_rule import Targets
from ..result import Status
from ..store.base import RunFilter, RunStore
from ..store.outbox import Notice
from .notices import Fact, Notifier

__all__ = ["SWEEP_LIMIT", "record_unnoticed_failures"]

SWEEP_LIMIT = 200
"""Newest FAILED runs looked at per sweep."""


def record_unnoticed_failures(
    store: RunStore,
    notifier: Notifier,
    targets_of: Callable[[str], Targets],
    *,
    now: datetime,
    window: timedelta,
    limit: int = SWEEP_LIMIT,
) -> int:
    """Insert the missing ``failure`` notices of recent FAILED runs; how many were new."""
    runs = store.list_runs(RunFilter(status=Status.FAILED, since=now - window), limit=limit)
    found: list[Notice] = []
    targets: dict[str, Targets] = {}
    for run in runs:
        if run.pipeline not in targets:
            targets[run.pipeline] = targets_of(run.pipeline)
        fact = Fact(
            "failure",
            run.pipeline,
            run.run_id,
            run.release,
            run.ended or now,
            Status.FAILED.value,
            run.error,
        )
        found.extend(notifier.notices(targets[run.pipeline], fact))
    if not found:
        return 0
    return sum(store.add_notices(found, now=now))
