"""The scheduler core: one deterministic :meth:`Scheduler.tick` per minute boundary.

A tick does, in this order:

1. **Reload** the conf folder when the loader's fingerprint changed (or when
   :meth:`Scheduler.request_reload` asked for it, e.g. on SIGHUP). A pipeline whose
   new version no longer validates keeps its *last good version* and the error is
   logged with file, template and key; a template that never validated is logged
   and skipped. A broken template is never fatal (see
   :class:`~ddeutil.workflow.scheduling.catalog.PipelineCatalog`).
2. **Plan**: the pure :func:`ddeutil.workflow.schedules.planner.plan` returns the releases
   due in ``(watermark, now]`` with each pipeline's catch-up policy applied; every
   due and every missed release is logged. The daemon has this, and step 3,
   done a moment before the boundary (:meth:`Scheduler.prepare`): the executor
   holds each scheduled request until its release instant, so at the boundary a
   worker only has to start it.
3. **Claim, then dispatch**: every due release is claimed in the run store
   (a PENDING run) *before* it is handed to the executor, so a release is never
   dispatched twice, across restarts and across daemons sharing a store. A
   release claimed before (by this daemon earlier, or by another one) is logged
   and skipped. A request names its pipeline's template version; the executor
   takes the template from :meth:`Scheduler.template` (the last good version).
4. **Advance the watermark** (never backwards: a wall clock stepping back runs
   nothing twice) and write the **heartbeat**. The watermark is read from the
   store at :meth:`Scheduler.start` and then kept in memory: only the holder of
   the store's scheduler lock writes it (a second scheduler on the same store
   would at worst plan a window again, and its claims would all be refused).

Overlap and fan-out policy per pipeline (the FIFOs and in-flight sets are
:class:`~ddeutil.workflow.scheduling.overlap.RunQueues`):

* ``concurrency: allow`` (default): releases run side by side, bounded by
  ``WORKFLOW_CORE_MAX_PIPELINE_POKING``.
* ``concurrency: skip``: a release due while a run of the same pipeline is in
  flight (running or waiting) is claimed and recorded ``SKIPPED`` with the reason.
* ``concurrency: queue``: a release due while a run is in flight waits, claimed,
  in an in-memory FIFO of that pipeline and starts when the previous one finishes.

``WORKFLOW_CORE_MAX_PIPELINE_POKING`` is read as *the number of releases of one
pipeline in flight at once* (the schedules of one pipeline released together);
the others wait, claimed and in release order, in the same per-pipeline FIFO.
Because every waiting release is already claimed (PENDING in the store), a crash
loses nothing: :meth:`Scheduler.recover` re-dispatches PENDING claims at the next
start, oldest release first, and closes runs left RUNNING as FAILED
("interrupted by a restart") without running them again.

Scheduled runs receive the pipeline's param defaults and
``release.logical_date`` = the release time in the schedule's zone. A scheduled
pipeline with a required param that has no default is not scheduled; the reason
is logged once per conf version.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock, ensure_utc
from ..dispatch.base import Executor
from ..dispatch.records import RunEvent, RunRequest
from ..errors import WorkflowError
from ..loader import Loader, RawTemplate
from ..masking import Masker
from ..result import Status
from ..runs import ReleaseKey, TriggerKind, new_run_id
from ..schedules.planner import Release, advance_watermark, plan
from ..settings import Settings
from ..store.base import Claim, RunRecord, RunStore
from ..store.ends import EndJournal
from .catalog import CatalogEntry, PipelineCatalog
from .overlap import RunQueues, Waiting
from .tick_report import SKIP_REASON, TickLog, TickReport, log_tick
from .validation import Validator

__all__ = ["INTERRUPTED_REASON", "Scheduler", "SchedulerState", "TickReport"]

logger = logging.getLogger(__name__)

INTERRUPTED_REASON = "interrupted by a restart"
_MINUTE = timedelta(minutes=1)
_CLAIM_BATCH = 64
"""Due releases are claimed 64 at a time, one transaction each (a transaction stays
small; a boundary's claims are made ahead of it anyway, see :meth:`Scheduler.prepare`)."""


class SchedulerState(str, enum.Enum):
    """Lifecycle of a :class:`Scheduler`: STOPPED -> STARTING -> RUNNING -> STOPPING -> STOPPED."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Scheduler:
    """Plans releases each tick, claims them and hands them to an executor.

    The scheduler owns no thread and no timer: the daemon (``ddeutil.workflow.app``)
    calls :meth:`tick` at each minute boundary and :meth:`process_events` when the
    executor reports; tests call :meth:`tick` directly with a fake clock reading.
    All public methods are thread-safe.

    Args:
        settings: Frozen settings (catch-up limit, poking, stop timeout, zone).
        store: The run store (claims, runs, watermark, heartbeat).
        executor: Where claimed runs are executed.
        clock: Source of "now" when :meth:`tick` is called without an instant.
        loader: The conf index; replaced by ``loader.refreshed()`` on changes.
        masker: Hides secret values in the params written to the store.
        owner: Heartbeat owner id; default ``"<hostname>:<pid>"``.
        journal: Run ends the store refused earlier; replayed at start, before
            runs left RUNNING are closed (see :mod:`~ddeutil.workflow.store.ends`).
        validator: Validates the pipeline templates (default: in this process;
            the daemon's validates in a helper process). Its owner closes it.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: RunStore,
        executor: Executor,
        clock: Clock,
        loader: Loader,
        masker: Masker | None = None,
        owner: str | None = None,
        journal: EndJournal | None = None,
        validator: Validator | None = None,
    ) -> None:
        self._settings = settings
        self._journal = journal
        self._store = store
        self._executor = executor
        self._clock = clock
        self._catalog = PipelineCatalog(loader, settings, validator)
        self._masker = masker or Masker()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self._state = SchedulerState.STOPPED
        self._started_once = False
        self._lock = threading.RLock()
        self._reload_requested = False
        self._prepared: bool | None = None
        self._ahead: TickReport | None = None  # what prepare() dispatched ahead
        self._ahead_from: datetime | None = None  # the watermark before that dispatch
        self._watermark: datetime | None = None  # read at start; only the lock holder writes it
        self._queues = RunQueues()

    # -- lifecycle ---------------------------------------------------------------

    @property
    def state(self) -> SchedulerState:
        return self._state

    @property
    def pipelines(self) -> Mapping[str, RawTemplate]:
        """The validated template of every loaded pipeline (last good versions included)."""
        with self._lock:
            return {entry.name: entry.template for entry in self._catalog}

    def start(self) -> None:
        """Start the executor, :meth:`recover`, then accept ticks. Idempotent.

        On the very first start on a store (no watermark yet) the watermark is
        set to now: nothing before the start is due, the next slot is.

        Raises:
            WorkflowError: the scheduler was stopped before (a stopped scheduler's
                executor is shut down; build a new scheduler instead).
        """
        with self._lock:
            if self._state in (SchedulerState.STARTING, SchedulerState.RUNNING):
                return
            if self._started_once:
                raise WorkflowError("a stopped scheduler cannot be started again")
            self._started_once = True
            self._state = SchedulerState.STARTING
            logger.info("scheduler starting (owner %s)", self.owner)
            self._executor.start()
            self.recover()
            now = ensure_utc(self._clock.now())
            self._watermark = self._store.get_watermark()
            if self._watermark is None:
                logger.info("first start on this run store: releases after %s are due", now)
                self._store.set_watermark(now)
                self._watermark = now
            self._store.heartbeat(now=now, owner=self.owner)
            self._state = SchedulerState.RUNNING
            logger.info("scheduler running with %d pipeline(s) loaded", len(self._catalog))

    def stop(self, timeout: float | None = None) -> None:
        """Stop dispatching; let running pipelines finish, then cancel the rest. Idempotent.

        Runs still running after ``timeout`` seconds (default
        ``WORKFLOW_APP_STOP_TIMEOUT``) are cancelled by the executor (shell
        children included) and recorded CANCELLED. Releases still waiting in a
        FIFO stay claimed (PENDING) and are dispatched at the next start.
        """
        with self._lock:
            if self._state in (SchedulerState.STOPPING, SchedulerState.STOPPED):
                return
            self._state = SchedulerState.STOPPING
        wait = self._settings.app_stop_timeout if timeout is None else timeout
        in_flight = self._executor.in_flight()
        logger.info("scheduler stopping: %d run(s) in flight, waiting up to %.1fs", in_flight, wait)
        self._executor.shutdown(wait)
        with self._lock:
            self._forget(self._executor.drain_events())
            left = self._queues.waiting_count()
            if left:
                logger.info("%d claimed release(s) stay PENDING for the next start", left)
            self._state = SchedulerState.STOPPED
        logger.info("scheduler stopped")

    def _reload(self, *, force: bool) -> bool:
        if force:
            self._reload_requested = False
        return self._catalog.reload(force=force)

    def request_reload(self) -> None:
        """Reload the conf folder at the next tick even if no file changed (SIGHUP)."""
        self._reload_requested = True

    # -- start-up recovery -------------------------------------------------------

    def recover(self) -> None:
        """Close what a crash left behind and re-dispatch what it claimed.

        Ends of runs that the store refused before (kept in the run-end
        journal) are recorded first. Scheduled runs still left RUNNING by a
        previous process are recorded FAILED
        ("interrupted by a restart") and are *not* run again: they may have had
        side effects. Scheduled runs left PENDING (claimed, never started) are
        dispatched again, oldest release first, under the same concurrency rules
        as new releases. Runs of other triggers (API, manual) are left to their
        owners.
        """
        with self._lock:
            self._reload(force=False)
            if self._journal is not None:  # ends recorded late are not "interrupted"
                self._journal.replay(self._store)
            now = ensure_utc(self._clock.now())
            for run_id in self._store.fail_interrupted(
                now=now, reason=INTERRUPTED_REASON, trigger=TriggerKind.SCHEDULE
            ):
                logger.warning(
                    "run %s was RUNNING when the scheduler stopped: recorded FAILED (%s)",
                    run_id,
                    INTERRUPTED_REASON,
                    extra={"run_id": run_id},
                )
            for run in self._store.pending_runs(trigger=TriggerKind.SCHEDULE):
                self._recover_pending(run, now)
            for name in self._queues.with_waiting():
                self._pump(name)

    def _recover_pending(self, run: RunRecord, now: datetime) -> None:
        loaded = self._catalog.get(run.pipeline)
        extra = {"run_id": run.run_id, "pipeline": run.pipeline}
        if loaded is None or loaded.unschedulable:
            why = loaded.unschedulable if loaded else None
            reason = (
                f"claimed release of pipeline {run.pipeline!r} cannot run after the restart: "
                f"{why or 'the pipeline is not in the conf folder'}"
            )
            logger.error(reason, extra=extra)
            self._store.finish(run.run_id, status=Status.FAILED, now=now, error=reason)
            return
        logical = run.logical_date
        if logical is not None and run.release is not None:
            logical = loaded.in_zone(run.release.schedule, logical)
        logger.info(
            "re-dispatching release claimed before the restart", extra=self._extra(run, extra)
        )
        self._queues.hold(run.pipeline, Waiting(run.run_id, run.release, logical))

    @staticmethod
    def _extra(run: RunRecord, extra: dict[str, Any]) -> dict[str, Any]:
        if run.release is not None:
            extra["release"] = run.release.at.isoformat()
        return extra

    # -- the tick ----------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> TickReport:
        """Run one scheduling round for ``now`` (default: the clock's reading).

        Deterministic for a given store, conf folder and ``now``. Does nothing
        (``active=False``) unless the scheduler is RUNNING.
        """
        at = ensure_utc(now if now is not None else self._clock.now())
        with self._lock:
            if self._state is not SchedulerState.RUNNING:
                logger.debug("tick at %s ignored: scheduler is %s", at, self._state.value)
                return TickReport(now=at, watermark=None, active=False)
            if self._prepared is not None and not self._reload_requested:
                reloaded = self._prepared
            else:
                reloaded = self._reload(force=self._reload_requested)
                if reloaded and self._ahead is not None:
                    # A reload between prepare() and this tick: plan the boundary again
                    # with the new conf. What prepare() claimed is refused by the
                    # store (reported as already claimed); what the reload added runs.
                    self._watermark = self._ahead_from
            self._prepared = None
            ahead, self._ahead, self._ahead_from = self._ahead, None, None
            report = self._tick_locked(at, reloaded, stamp=self._clock, after=ahead)
            return report if ahead is None else _merged(ahead, report)

    def prepare(self, boundary: datetime | None = None) -> bool:
        """Do the conf check of the next tick now, and with ``boundary`` its dispatch too.

        The daemon calls this a few tens of milliseconds before each minute
        boundary. The next :meth:`tick` skips its own conf check (unless a
        reload was requested since): an edit saved in between is picked up one
        tick later. With ``boundary`` (the instant the next tick is for) the
        releases due then are planned, claimed and submitted now, with run ids
        carrying the boundary's time, and the watermark moves to ``boundary``:
        an executor never starts a scheduled run before its release instant, so
        a worker already holds the request when the boundary comes and only
        has to start it. The next :meth:`tick` (at ``boundary`` or later) plans
        what is due after ``boundary`` and reports both.

        Returns:
            Whether the conf folder was read again.
        """
        with self._lock:
            if self._state is not SchedulerState.RUNNING:
                return False
            self._prepared = self._reload(force=self._reload_requested)
            if boundary is not None:
                at = ensure_utc(boundary)
                if self._ahead is None:
                    self._ahead_from = self._watermark
                report = self._tick_locked(at, self._prepared, stamp=_StoppedClock(at))
                self._ahead = report if self._ahead is None else _merged(self._ahead, report)
            return self._prepared

    def _tick_locked(
        self, at: datetime, reloaded: bool, *, stamp: Clock, after: TickReport | None = None
    ) -> TickReport:
        """Plan ``(watermark, at]``, claim and dispatch, advance the watermark.

        ``after`` is the round :meth:`prepare` dispatched ahead for a boundary
        at or before ``at``. When nothing more is due, such a tick writes
        nothing: the watermark and the heartbeat were written ahead, and the
        store stays free for the start handshakes of the runs starting now (no
        cron time lies between the boundary and ``at``, less than a minute on).
        """
        events = self._executor.drain_events()
        log = TickLog()
        log.dispatched.extend(self._handle_events(events))
        log.dispatched.extend(self._reconcile())
        watermark = self._watermark
        result = plan(
            self._catalog.planned(),
            watermark=watermark,
            now=at,
            catchup_limit=self._settings.app_catchup_limit,
        )
        for start in range(0, len(result.due), _CLAIM_BATCH):
            self._dispatch_batch(result.due[start : start + _CLAIM_BATCH], at, log, stamp)
        if after is not None and not result.due and at < after.now + _MINUTE:
            log_tick(result, log)
            return TickReport(
                now=at,
                watermark=watermark,
                dispatched=tuple(log.dispatched),
                reloaded=reloaded,
                events=tuple(events),
            )
        new_mark = advance_watermark(watermark, at)
        if watermark is None or new_mark != watermark:
            self._store.set_watermark(new_mark)
            self._watermark = new_mark
        self._store.heartbeat(now=at, owner=self.owner)
        log_tick(result, log)
        return TickReport(
            now=at,
            watermark=new_mark,
            due=result.due,
            missed=result.skipped,
            dispatched=tuple(log.dispatched),
            held=tuple(log.held),
            skipped=tuple(log.skipped),
            already_claimed=tuple(log.already),
            reloaded=reloaded,
            events=tuple(events),
        )

    def template(self, pipeline: str, version: str | None) -> RawTemplate | None:
        """The template of ``pipeline`` in ``version`` (the executor's template source).

        The catalog keeps each pipeline's last good version: that is the version
        the scheduler dispatches, even when the file on disk no longer validates.
        ``None`` when ``pipeline`` is not loaded or is loaded in another version.
        """
        with self._lock:
            entry = self._catalog.get(pipeline)
        if entry is None or (version is not None and entry.version != version):
            return None
        return entry.template

    def process_events(self) -> list[RunEvent]:
        """Handle executor events now and start waiting runs whose slot became free."""
        with self._lock:
            events = self._executor.drain_events()
            if self._state is SchedulerState.RUNNING:
                self._handle_events(events)
            else:
                self._forget(events)
            return events

    def _dispatch_batch(
        self,
        releases: Sequence[Release],
        now: datetime,
        log: TickLog,
        stamp: Clock,
    ) -> None:
        """Claim a batch of due releases in one go, then submit / hold / skip each.

        Run ids carry ``stamp``'s time (the boundary when dispatched ahead).
        """
        items: list[tuple[CatalogEntry, Claim]] = []
        zone = self._settings.timezone
        for release in releases:
            entry = self._catalog.get(release.pipeline)
            assert entry is not None  # planned from the catalog under the same lock
            claim = Claim(
                release=ReleaseKey(release.pipeline, release.schedule, release.at),
                run_id=new_run_id(stamp, zone),
                params=self._masker.data(dict(entry.defaults)),
                logical_date=release.logical_date,
            )
            items.append((entry, claim))
        won = self._store.claim_many([claim for _, claim in items], now=now)
        for release, (entry, claim), ok in zip(releases, items, won, strict=True):
            if not ok:
                log.already.append(release)
                continue
            name, run_id = entry.name, claim.run_id
            if entry.concurrency == "skip" and self._queues.busy(name):
                self._store.finish(run_id, status=Status.SKIPPED, now=now, error=SKIP_REASON)
                log.skipped.append(run_id)
                continue
            self._queues.hold(name, Waiting(run_id, claim.release, release.logical_date))
            started = self._pump(name)
            log.dispatched.extend(started)
            if run_id not in started:
                log.held.append(run_id)

    def _limit(self, loaded: CatalogEntry) -> int:
        if loaded.concurrency in ("queue", "skip"):
            return 1
        return self._settings.max_pipeline_poking

    def _pump(self, name: str) -> list[str]:
        """Submit waiting runs of ``name`` while it has free slots; return their run ids."""
        started: list[str] = []
        loaded = self._catalog.get(name)
        limit = None if loaded is None else self._limit(loaded)
        for item in self._queues.admit(name, limit):
            if loaded is None:
                reason = f"pipeline {name!r} is no longer in the conf folder"
                logger.error("claimed run cannot start: %s", reason, extra={"run_id": item.run_id})
                now = ensure_utc(self._clock.now())
                self._store.finish(item.run_id, status=Status.FAILED, now=now, error=reason)
                continue
            request = RunRequest(  # the version loaded when the run starts
                run_id=item.run_id,
                pipeline=name,
                version=loaded.version,
                params=dict(loaded.defaults),
                release=item.release,
                logical_date=item.logical_date,
                trigger=TriggerKind.SCHEDULE,
            )
            self._executor.submit(request)
            self._queues.started(name, item.run_id)
            started.append(item.run_id)
        return started

    def _handle_events(self, events: Iterable[RunEvent]) -> list[str]:
        touched = self._forget(events)
        started: list[str] = []
        for name in touched:
            started.extend(self._pump(name))
        return started

    def _forget(self, events: Iterable[RunEvent]) -> set[str]:
        touched: set[str] = set()
        for event in events:
            if event.kind != "finished":
                name = self._queues.pipeline_of(event.run_id)
                logger.debug("run started", extra={"run_id": event.run_id, "pipeline": name})
                continue
            name = self._queues.finished(event.run_id)
            status = event.status.value if event.status is not None else "?"
            logger.info(
                "run finished: %s%s",
                status,
                f" ({event.error})" if event.error else "",
                extra={"run_id": event.run_id, "pipeline": name},
            )
            if name is not None:
                touched.add(name)
        return touched

    def _reconcile(self) -> list[str]:
        """Drop in-flight runs the store says are over (events may be lost with a worker).

        Only pipelines where a leaked in-flight run would hold releases back are
        checked: those with waiting releases and ``concurrency: skip`` ones with a
        run in flight. Returns the run ids started because a slot freed up.
        """
        started: list[str] = []
        waiting = set(self._queues.with_waiting())
        for name, running in self._queues.in_flight():
            loaded = self._catalog.get(name)
            skip = loaded is not None and loaded.concurrency == "skip"
            if not (name in waiting or skip):
                continue
            for run_id in list(running):
                record = self._store.get_run(run_id)
                if record is None or record.status.is_terminal:
                    self._queues.finished(run_id)
            started.extend(self._pump(name))
        return started


class _StoppedClock:
    """A clock stopped at one instant (run ids made ahead carry the boundary's time)."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at


def _merged(first: TickReport, then: TickReport) -> TickReport:
    """One report of two rounds (dispatched ahead, then at the tick)."""
    return TickReport(
        now=then.now,
        watermark=then.watermark,
        due=first.due + then.due,
        missed=first.missed + then.missed,
        dispatched=first.dispatched + then.dispatched,
        held=first.held + then.held,
        skipped=first.skipped + then.skipped,
        already_claimed=first.already_claimed + then.already_claimed,
        reloaded=first.reloaded or then.reloaded,
        events=first.events + then.events,
    )
