"""Backfills and pause catch-ups running in the API process.

``POST /api/v1/pipelines/{name}/backfill`` and an unpause with ``catchup`` run
the same core as ``workflow backfill`` and ``workflow unpause --catchup``
(:mod:`~ddeutil.workflow.scheduling.backfill`,
:mod:`~ddeutil.workflow.scheduling.catchup`): releases claimed just in time
under a client lease of this process, at most ``parallel`` at once, on a thread
pool of their own. :class:`ApiBackfills` keeps them, one per pipeline at most
(a second one answers 409), and stops them with the API: no more claims, the
runs in flight get the stop timeout, then they are cancelled.

Input is checked before anything changes: a refused catch-up (422, 409) leaves
the pipeline paused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..clock import Clock
from ..masking import Masker
from ..scheduling.backfill import (
    LARGE_RANGE,
    Backfill,
    BackfillInputError,
    BackfillRange,
    entry_of,
    parse_instant,
    prepare,
    with_claims,
    zone_of,
)
from ..scheduling.catchup import BEGINNING, count_paused, paused_releases
from ..scheduling.tick_report import PAUSED_REASON
from ..settings import Settings
from ..store.base import RunStore
from .catalog import Catalog
from .errors import ApiError
from .models import (
    BackfillAccepted,
    BackfillPlan,
    BackfillRelease,
    ErrorDetail,
    PauseResponse,
)

__all__ = ["BACKFILL_CANCEL_GRACE", "BACKFILL_LISTED", "ApiBackfills"]

logger = logging.getLogger("ddeutil.workflow.api.service")  # the API's lines

BACKFILL_LISTED = 1000
"""Most releases a backfill dry run lists (it counts them all)."""
BACKFILL_CANCEL_GRACE = 10.0
"""Seconds a stopping API waits for a cancelled backfill's runs to end."""


@dataclass
class _Running:
    """A backfill running in this process, on its own thread."""

    backfill: Backfill
    thread: threading.Thread


class ApiBackfills:
    """The backfills and catch-ups of this API process (see the module docstring).

    Args:
        settings: The API's settings (engine settings of the runs).
        masker: Hides secrets in the params written to the store.
        clock: Time of claims, run ids and "now".
        catalog: The API's pipelines.
        follow: The URL path listing a pipeline's backfill runs.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        masker: Masker,
        clock: Clock,
        catalog: Callable[[], Catalog],
        follow: Callable[[str], str],
    ) -> None:
        self._settings = settings
        self._masker = masker
        self._clock = clock
        self._catalog = catalog
        self._follow = follow
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}

    # ------------------------------------------------------------ requests

    def backfill(
        self,
        store: RunStore,
        name: str,
        *,
        start: str,
        end: str,
        parallel: int | None,
        dry_run: bool,
    ) -> BackfillPlan | BackfillAccepted:
        """Plan (``dry_run``) or start a backfill of ``name`` in ``[start, end)``.

        404 unknown pipeline, 422 bad input, 409 while a backfill of ``name``
        runs in this process. A dry run lists at most :data:`BACKFILL_LISTED`
        releases (and counts all).
        """
        catalog = self._catalog()
        found = catalog.get(name)
        try:
            entry = entry_of(found.template, catalog.loader(), self._settings)
            checked = prepare(
                entry,
                start=start,
                end=end,
                parallel=parallel,
                now=self._clock.now(),
                settings=self._settings,
            )
        except BackfillInputError as exc:
            raise _invalid(exc, "path" if exc.field == "name" else "body") from None
        if dry_run:
            return _plan(store, checked)
        self._refuse_second(name)
        claimed = sum(1 for _, holder in with_claims(store, checked.releases()) if holder)
        self._start(
            name,
            lambda: Backfill(
                store=store,
                settings=self._settings,
                entry=checked.entry,
                releases=checked.releases(),
                parallel=parallel or 1,
                clock=self._clock,
                masker=self._masker,
                loader=catalog.loader(),
            ),
        )
        return BackfillAccepted(
            pipeline=name,
            start=checked.start,
            end=checked.end,
            zone=str(checked.zone),
            parallel=parallel or 1,
            total=checked.total,
            claimed=claimed,
            to_run=checked.total - claimed,
            follow=self._follow(name),
        )

    def catch_up(
        self, store: RunStore, name: str, *, since: str | None, parallel: int | None
    ) -> PauseResponse:
        """Unpause ``name`` and run the releases the pause skipped (see the module).

        The window starts at ``since``, else when the pause began, else at the
        beginning (a pipeline no longer paused: what earlier catch-ups left).
        """
        catalog = self._catalog()
        found = catalog.get(name)
        now = self._clock.now()
        try:
            entry = entry_of(found.template, catalog.loader(), self._settings)
            zone = zone_of(entry, self._settings.timezone)
            given = (
                None if since is None else parse_instant(since, field="since", zone=zone, now=now)
            )
        except BackfillInputError as exc:
            raise _invalid(exc, "body") from None
        paused_at = store.paused().get(name)
        start = given or paused_at or BEGINNING
        total = count_paused(store, entry, since=start, until=now)
        if total > LARGE_RANGE and parallel is None:
            message = f"the pause skipped {total:,} releases; give parallel to run them"
            raise ApiError(
                422,
                message,
                details=[ErrorDetail(location="body", name="parallel", message=message)],
            )
        self._refuse_second(name)
        if paused_at is not None:
            store.unpause(name)
        logger.info("pipeline %r unpaused through the API; catching up %d release(s)", name, total)
        self._start(
            name,
            lambda: Backfill(
                store=store,
                settings=self._settings,
                entry=entry,
                releases=paused_releases(store, entry, since=start, until=now),
                parallel=parallel or 1,
                clock=self._clock,
                masker=self._masker,
                loader=catalog.loader(),
                reclaim=PAUSED_REASON,
            ),
        )
        return PauseResponse(
            pipeline=name,
            paused=False,
            paused_at=paused_at,
            changed=paused_at is not None,
            catchup=total,
            follow=self._follow(name),
        )

    # ------------------------------------------------------------ running

    def running(self) -> list[str]:
        """The pipelines with a backfill running in this process."""
        with self._lock:
            return sorted(n for n, r in self._running.items() if r.thread.is_alive())

    def stop(self, timeout: float) -> None:
        """Stop claiming; give the runs in flight ``timeout`` seconds, then cancel them."""
        with self._lock:
            running = list(self._running.values())
        for item in running:
            item.backfill.stop()
        deadline = time.monotonic() + max(timeout, 0.0)
        for item in running:
            item.thread.join(max(deadline - time.monotonic(), 0.0))
        for item in running:
            if item.thread.is_alive():
                item.backfill.cancel("the API stopped")
        for item in running:
            item.thread.join(BACKFILL_CANCEL_GRACE)

    def _start(self, name: str, make: Callable[[], Backfill]) -> None:
        """Run the backfill ``make`` builds on a thread of its own (409 if one of ``name`` runs)."""
        with self._lock:
            self._refuse_second(name, locked=True)
            backfill = make()
            thread = threading.Thread(
                target=self._run, args=(backfill,), name=f"backfill {name}", daemon=True
            )
            self._running[name] = _Running(backfill, thread)
            thread.start()

    def _refuse_second(self, name: str, *, locked: bool = False) -> None:
        """409 while a backfill of ``name`` runs in this process."""
        if not locked:
            with self._lock:
                self._refuse_second(name, locked=True)
            return
        running = self._running.get(name)
        if running is not None and running.thread.is_alive():
            raise ApiError(
                409,
                f"a backfill of {name!r} is running in this API process; "
                "follow it or wait for it to end",
                code="backfill_running",
            )

    def _run(self, backfill: Backfill) -> None:
        try:
            summary = backfill.run()
        except Exception:
            logger.exception("backfill of %s failed", backfill.pipeline)
            return
        finally:
            with self._lock:
                running = self._running.get(backfill.pipeline)
                if running is not None and running.backfill is backfill:
                    del self._running[backfill.pipeline]
        logger.info(
            "backfill of %s ended: %d ran (%d failed), %d skipped as already claimed",
            summary.pipeline,
            summary.ran,
            summary.failed + summary.cancelled,
            summary.skipped_schedule + summary.skipped_backfill,
            extra={"pipeline": summary.pipeline},
        )


def _invalid(exc: BackfillInputError, where: str) -> ApiError:
    return ApiError(
        exc.status,
        exc.message,
        details=[ErrorDetail(location=where, name=exc.field, message=exc.message)],
    )


def _plan(store: RunStore, checked: BackfillRange) -> BackfillPlan:
    listed: list[BackfillRelease] = []
    free = 0
    for release, holder in with_claims(store, checked.releases()):
        free += holder is None
        if len(listed) >= BACKFILL_LISTED:
            continue
        listed.append(
            BackfillRelease(
                release=release.logical_date,
                schedule=release.schedule,
                claimed=holder is not None,
                run_id=None if holder is None else holder.run_id,
                status=None if holder is None else holder.status,
                claimed_by=None if holder is None else holder.trigger,
            )
        )
    return BackfillPlan(
        pipeline=checked.entry.name,
        start=checked.start,
        end=checked.end,
        zone=str(checked.zone),
        total=checked.total,
        would_run=free,
        claimed=checked.total - free,
        releases=listed,
        truncated=checked.total > len(listed),
    )
