"""Missed releases: a scheduled run not started ``late_after`` seconds past its time.

:func:`record_missed` looks at the scheduled runs still PENDING (claimed, never
started: the executor is saturated, the worker that took the message died,
the broker lost it) and writes a ``missed`` notice for each one later than its
pipeline's ``late_after``, with the dedupe key ``<run id>:missed:<channel>``:
called at every beat of every daemon, a release is told once. The daemon calls
it from its notify thread (see :class:`.service.NotifyService`), which runs
whatever its executor's workers do, so a dead worker does not hide a release.

A release its schedule's ``jitter`` delays counts from its start (the fire time
plus its offset, given by ``delay_of``), not from its fire time.

A release that was never claimed (every daemon was down at its time) has no
run to look at; it is claimed at the next start by the catch-up policy and
told if it then waits too long.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from ..notify_rule import Targets
from ..runs import ReleaseKey, TriggerKind
from ..store.base import RunStore
from ..store.outbox import Notice
from .notices import Notifier

__all__ = ["record_missed"]


def record_missed(
    store: RunStore,
    notifier: Notifier,
    targets_of: Callable[[str], Targets],
    *,
    now: datetime,
    delay_of: Callable[[ReleaseKey], int] | None = None,
) -> int:
    """Write the ``missed`` notices of the late PENDING scheduled runs; how many were new.

    ``delay_of`` gives the seconds a release's jitter delays its start (default none).
    """
    found: list[Notice] = []
    targets: dict[str, Targets] = {}
    for run in store.pending_runs(trigger=TriggerKind.SCHEDULE):
        if run.release is None:
            continue
        pipeline = run.pipeline
        if pipeline not in targets:
            targets[pipeline] = targets_of(pipeline)
        wanted = targets[pipeline]
        if not wanted.wants("missed"):
            continue
        delay = 0 if delay_of is None else delay_of(run.release)
        if now - run.release.at < timedelta(seconds=wanted.late_after + delay):
            continue
        found.extend(
            notifier.missed(
                wanted, run_id=run.run_id, pipeline=pipeline, release=run.release, now=now
            )
        )
    if not found:
        return 0
    return sum(store.add_notices(found, now=now))
