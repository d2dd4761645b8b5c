"""Catching up a pause: the releases a paused pipeline skipped, run now.

``workflow unpause NAME --catchup`` (and the API's unpause with ``catchup``)
hands :func:`paused_releases` to a :class:`~.backfill.Backfill` in ``reclaim``
mode: each release recorded SKIPPED (paused) in the window is claimed again in
the same transaction that deletes its skipped record, so it runs exactly once
and is never lost in between, whoever else looks at it. Releases are read from
the store a page at a time, oldest first (constant memory whatever the pause's
length). An interrupted catch-up is continued by asking again for the same
window: what ran is no longer recorded as skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

from ..schedules.planner import Release
from ..store.base import RunStore
from .catalog import CatalogEntry
from .tick_report import PAUSED_REASON

__all__ = ["BEGINNING", "count_paused", "paused_releases"]

BEGINNING = datetime(1970, 1, 1, tzinfo=timezone.utc)
"""The start of a catch-up window that has none (every release a pause skipped)."""

PAGE = 500


def paused_releases(
    store: RunStore, entry: CatalogEntry, *, since: datetime, until: datetime, page: int = PAGE
) -> Iterator[Release]:
    """The releases of ``entry`` recorded SKIPPED (paused) in ``[since, until)``, oldest first.

    Each release's ``logical_date`` is its instant in its schedule's zone (UTC
    for a schedule the conf folder no longer has).
    """
    cursor = since
    seen: set[tuple[str, datetime]] = set()
    while True:
        keys = store.skipped_releases(
            entry.name, reason=PAUSED_REASON, since=cursor, until=until, limit=page
        )
        fresh = [k for k in keys if (k.schedule, k.at) not in seen]
        for key in fresh:
            yield Release(key.pipeline, key.schedule, key.at, entry.in_zone(key.schedule, key.at))
        if len(keys) < page or not fresh:
            return
        # The next page starts at the last instant read (several schedules may
        # share it); what was yielded at that instant is not yielded again.
        cursor = keys[-1].at
        seen = {(k.schedule, k.at) for k in keys if k.at == cursor}


def count_paused(store: RunStore, entry: CatalogEntry, *, since: datetime, until: datetime) -> int:
    """How many releases :func:`paused_releases` yields now (read a page at a time)."""
    return sum(1 for _ in paused_releases(store, entry, since=since, until=until))
