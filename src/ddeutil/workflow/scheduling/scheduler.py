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
   (a PENDING run owned by this daemon) *before* it is handed to the executor,
   so a release is never dispatched twice, across restarts and across daemons
   sharing a store. Planning and claiming is one claim round of the store
   (:meth:`RunStore.claim_round <ddeutil.workflow.store.base.RunStore.claim_round>`):
   each pipeline has its own **watermark**, locked while its releases are
   claimed and advanced (never backwards: a wall clock stepping back runs
   nothing twice) in the same transaction, so daemons sharing a store split a
   boundary's pipelines between them. A pipeline with nothing due (its next
   fire time, remembered in a :class:`~ddeutil.workflow.scheduling.due_index.DueIndex`,
   is after the boundary) only has its watermark advanced: it is not planned and
   its load is not read. A release claimed before is logged and skipped. A request names its pipeline's template version and this daemon
   (the owner, checked by the start handshake); the executor takes the
   template from :meth:`Scheduler.template` (the last good version).
4. Write the **heartbeat**. Between ticks the daemon calls :meth:`Scheduler.beat`
   every third of ``WORKFLOW_APP_LEASE_SECONDS``: it renews this daemon's lease,
   takes over the work of daemons whose lease ran out, gives free slots to
   waiting releases and claims any boundary a stopped daemon left half done.

Overlap and fan-out policy per pipeline, decided by the run store across every
daemon sharing it (this daemon's FIFOs and in-flight sets are
:class:`~ddeutil.workflow.scheduling.overlap.RunQueues`):

* ``concurrency: allow`` (default): releases run side by side, bounded by
  ``WORKFLOW_CORE_MAX_PIPELINE_POKING``.
* ``concurrency: skip``: a release due while a run of the same pipeline is in
  flight (running or waiting) is claimed and recorded ``SKIPPED`` with the reason.
* ``concurrency: queue``: a release due while a run is in flight waits, claimed,
  in a FIFO of that pipeline and starts when the previous one finishes.

``WORKFLOW_CORE_MAX_PIPELINE_POKING`` is read as *the number of releases of one
pipeline in flight at once* (the schedules of one pipeline released together);
the others wait, claimed and in release order, in the same per-pipeline FIFO.
Because every waiting release is already claimed (PENDING in the store), a crash
loses nothing. At start, :meth:`Scheduler.recover` takes over the daemons that
are gone: on a store that is not shared (SQLite) every other one, since the
scheduler lock proves them dead; on a shared store those whose lease ran out
or that stopped. Their claims that never started are dispatched again, oldest
release first; their runs left RUNNING are recorded FAILED ("interrupted by a
restart", or "interrupted: owner ... lost") without running them again.

**Jitter** (a schedule's ``jitter:``, see :mod:`~ddeutil.workflow.schedules.jitter`)
delays the start, never the release: a jittered release is planned, claimed and
admitted at its fire time like any other (the claim key, the watermarks and the
catch-up policy see the fire time only), then held here until its start instant
(fire time plus the release's offset) and handed to the executor then
(:meth:`Scheduler.start_held`; the daemon's helper thread calls it on time). A
held release is claimed and holds its pipeline's slot; a restart or a takeover
dispatches it again with the same start (the offset is a stable hash), and a
missed release whose start has passed starts at once.

Scheduled runs receive the pipeline's param defaults and
``release.logical_date`` = the release time in the schedule's zone. A scheduled
pipeline with a required param that has no default is not scheduled; the reason
is logged once per conf version.
"""

from __future__ import annotations

import enum
import heapq
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ..clock import Clock, ensure_utc
from ..dispatch.base import Executor
from ..dispatch.records import RunEvent, RunRequest
from ..dispatch.run_meter import RunMeter
from ..errors import StoreError, WorkflowError
from ..loader import Loader, RawTemplate
from ..masking import Masker
from ..metrics import NULL_METER, Meter
from ..result import Status
from ..runs import ReleaseKey, TriggerKind
from ..schedules.jitter import format_seconds
from ..schedules.planner import Plan, advance_watermark
from ..settings import Settings
from ..store.base import RunRecord, RunStore
from ..store.ends import EndJournal
from ..store.fleet import (
    ClaimState,
    OwnerLost,
    OwnerRecord,
    OwnerState,
    RoundClaim,
    new_owner_id,
)
from .catalog import CatalogEntry, PipelineCatalog
from .decider import RoundDecider
from .due_index import DueIndex
from .overlap import RunQueues, Waiting
from .takeover import INTERRUPTED_REASON, interrupted_reason, started_elsewhere
from .tick_report import PAUSED_REASON, TickLog, TickReport, log_next_releases, log_tick
from .tick_summary import TickSummary
from .validation import Validator

__all__ = ["INTERRUPTED_REASON", "Scheduler", "SchedulerState", "TickReport", "new_owner_id"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

_MINUTE = timedelta(minutes=1)
_CLAIM_BATCH = 64
"""Pipelines are planned and claimed 64 at a time, one transaction each (a transaction
stays small; a boundary's claims are made ahead of it anyway, see :meth:`Scheduler.prepare`)."""


class SchedulerState(str, enum.Enum):
    """Lifecycle of a :class:`Scheduler`: STOPPED -> STARTING -> RUNNING -> STOPPING -> STOPPED."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Scheduler:
    """Plans releases each tick, claims them and hands them to an executor.

    The scheduler owns no thread and no timer: the daemon (``ddeutil.workflow.app``)
    calls :meth:`tick` at each minute boundary, :meth:`beat` between them and
    :meth:`process_events` when the executor reports; tests call them directly
    with a fake clock reading. Several schedulers may share one store (each its
    own daemon, or several in one process in tests). All public methods are
    thread-safe.

    Args:
        settings: Frozen settings (catch-up limit, poking, stop timeout, zone, lease).
        store: The run store (claims, runs, watermarks, heartbeats).
        executor: Where claimed runs are executed.
        clock: Source of "now" when :meth:`tick` is called without an instant.
        loader: The conf index; replaced by ``loader.refreshed()`` on changes.
        masker: Hides secret values in the params written to the store.
        owner: This daemon's owner id (default :func:`new_owner_id`); it must be
            new to the store. After a lost lease the scheduler joins again
            under ``<owner>/<n>``.
        journal: Run ends the store refused earlier; replayed at start, before
            runs left RUNNING are closed (see :mod:`~ddeutil.workflow.store.ends`).
        validator: Validates the pipeline templates (default: in this process;
            the daemon's validates in a helper process). Its owner closes it.
        exclusive: This scheduler holds the store alone (its scheduler lock),
            so every other owner is gone at start. Default: the store is not
            shared.
        meter: Receives what happens (see :mod:`ddeutil.workflow.metrics`):
            every claimed release (on time or late), every release that did not
            run and why (``concurrency``, ``paused``, ``catchup``: missed
            releases the catch-up policy skipped, a long run of them once),
            runs started (lag from the release instant) and finished (status,
            duration), run store errors, heartbeats, and the runs in flight
            and waiting after each tick, beat and batch of events. Default:
            nothing is recorded.
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
        exclusive: bool | None = None,
        meter: Meter | None = None,
    ) -> None:
        self._settings = settings
        self._meter = meter or NULL_METER
        self._runs = RunMeter(self._meter, clock)
        self._journal = journal
        self._store = store
        self._executor = executor
        self._clock = clock
        self._catalog = PipelineCatalog(loader, settings, validator)
        self._masker = masker or Masker()
        self._base_owner = owner or new_owner_id()
        self.owner = self._base_owner
        self._joins = 0
        self._exclusive = (not store.shared()) if exclusive is None else exclusive
        self._lease = timedelta(seconds=settings.app_lease_seconds)
        self._state = SchedulerState.STOPPED
        self._started_once = False
        self._lock = threading.RLock()
        self._summary = TickSummary()
        self._reload_requested = False
        self._prepared: bool | None = None
        self._ahead: TickReport | None = None  # what prepare() dispatched ahead
        self._ahead_from: datetime | None = None  # the watermark before that dispatch
        self._watermark: datetime | None = None  # the newest boundary this daemon planned
        self._due_at: datetime | None = None  # the newest boundary it tried to plan
        self._connected_since: datetime | None = None  # heartbeats succeeded since then
        self._queues = RunQueues()
        self._held: list[tuple[datetime, str, str, Waiting]] = []  # (start, run id, pipeline)
        self._due_index = DueIndex()  # pipelines a round can pass over (nothing due yet)

    # -- lifecycle ---------------------------------------------------------------

    @property
    def state(self) -> SchedulerState:
        return self._state

    @property
    def waiting(self) -> int:
        """Claimed releases this daemon holds until their pipeline has a free slot."""
        with self._lock:
            return self._queues.waiting_count()

    @property
    def held(self) -> int:
        """Admitted releases this daemon holds until the start their jitter gives them."""
        with self._lock:
            return len(self._held)

    @property
    def next_start(self) -> datetime | None:
        """The soonest start of a release held for its jitter (``None``: none held)."""
        with self._lock:
            return self._held[0][0] if self._held else None

    @property
    def pipelines(self) -> Mapping[str, RawTemplate]:
        """The validated template of every loaded pipeline (last good versions included)."""
        with self._lock:
            return {entry.name: entry.template for entry in self._catalog}

    def start(self) -> None:
        """Join the store, start the executor, :meth:`recover`, then accept ticks. Idempotent.

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
            now = ensure_utc(self._clock.now())
            self._join(now)
            self._executor.start()
            self.recover()
            self._connected_since = now
            self._watermark = self._store.get_watermark()
            if self._watermark is None:
                logger.info("first start on this run store: releases after %s are due", now)
                self._store.set_watermark(now)
                self._watermark = now
            self._state = SchedulerState.RUNNING
            logger.info("scheduler running with %d pipeline(s) loaded", len(self._catalog))
            log_next_releases(self._catalog.next_releases(now), now)

    def stop(self, timeout: float | None = None) -> None:
        """Stop dispatching; let running pipelines finish, then cancel the rest. Idempotent.

        Runs still running after ``timeout`` seconds (default
        ``WORKFLOW_APP_STOP_TIMEOUT``) are cancelled by the executor (shell
        children included) and recorded CANCELLED. Releases still waiting in a
        FIFO stay claimed (PENDING): the daemon leaves the store, so another
        daemon sharing it adopts them at its next beat, or this one at its
        next start.
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
            left = self._queues.waiting_count() + len(self._held)
            self._held = []
            self._report_load()
            if left:
                logger.info("%d claimed release(s) stay PENDING for another daemon", left)
            try:
                self._store.leave(self.owner, now=ensure_utc(self._clock.now()))
            except Exception as exc:  # the lease runs out instead
                logger.warning("could not record leaving the run store: %s", exc)
            self._state = SchedulerState.STOPPED
        logger.info("scheduler stopped")

    def _reload(self, *, force: bool) -> bool:
        if force:
            self._reload_requested = False
        return self._catalog.reload(force=force)

    def request_reload(self) -> None:
        """Reload the conf folder at the next tick even if no file changed (SIGHUP)."""
        self._reload_requested = True

    # -- owners: start-up recovery, heartbeat, takeover --------------------------

    def recover(self) -> None:
        """Close what a crash left behind and re-dispatch what it claimed.

        Ends of runs that the store refused before (kept in the run-end
        journal) are recorded first. Then the daemons that are gone are taken
        over (every other one when this scheduler holds the store alone, else
        those whose lease ran out or that stopped; never a live one), and so
        are scheduled runs written before owners existed. Their runs left
        RUNNING are recorded FAILED and are *not* run again: they may have had
        side effects. Their claims that never started are dispatched again,
        oldest release first, under the same concurrency rules as new releases.
        Runs of other triggers (API, manual) are left to their owners.
        """
        with self._lock:
            self._reload(force=False)
            if self._journal is not None:  # ends recorded late are not "interrupted"
                self._journal.replay(self._store)
            self._take_over(ensure_utc(self._clock.now()), everyone=self._exclusive, unowned=True)

    def beat(self, now: datetime | None = None) -> None:
        """Renew this daemon's lease and do the work a lease implies.

        The daemon calls it every third of ``WORKFLOW_APP_LEASE_SECONDS``. In
        order: the heartbeat (when the store says this daemon's work was taken
        over, it cancels its runs in flight, forgets its waiting releases and
        joins again under a new owner id); the takeover of daemons whose lease
        ran out; free slots for waiting releases; and a claim round for the
        last boundary, which finishes one whose tick failed (the store did not
        answer) or, on a shared store, one a daemon that died in the middle of
        it left half done.

        While the scheduler is stopping (its runs finishing) it only beats. A
        daemon takes others over only once its own heartbeats have succeeded
        for a whole lease: after an outage of the store every daemon's
        heartbeat is old, and each gets a lease to beat again before anyone
        counts it as gone.

        Raises:
            StoreError: the store does not answer (the next beat retries).
        """
        at = ensure_utc(now if now is not None else self._clock.now())
        with self._lock:
            if self._state is SchedulerState.STOPPING:
                self._heartbeat(at)  # still ours while its runs finish
                return
            if self._state is not SchedulerState.RUNNING:
                return
            self._heartbeat(at)
            connected = self._connected_since
            if connected is not None and at - connected >= self._lease:
                # Daemons on a shared store, and workers on any store (SQLite included).
                self._take_over(at, everyone=False, unowned=False)
            self._pump(self._queues.with_waiting())
            self._report_load()
            target = self._due_at
            behind = self._watermark is None or (target is not None and self._watermark < target)
            if target is not None and (behind or not self._exclusive):
                self._sweep(min(target, at))

    def _sweep(self, at: datetime) -> None:
        """A claim round for the boundary ``at`` outside a tick."""
        log = TickLog()
        result = self._round(at, log, stamp=self._clock)
        self._watermark = advance_watermark(self._watermark, at)
        if result.due:
            log_tick(result, log)

    def keep_alive(self, now: datetime | None = None) -> bool:
        """Renew this daemon's lease, without waiting for anything else the scheduler does.

        The daemon calls it from a thread of its own, so a tick or a takeover
        that waits on the database never lets the lease run out. Returns
        ``False`` when the lease was lost (the next :meth:`beat` or
        :meth:`tick` joins again).

        Raises:
            StoreError: the store does not answer.
        """
        at = ensure_utc(now if now is not None else self._clock.now())
        if self._state not in (SchedulerState.RUNNING, SchedulerState.STOPPING):
            return True
        return self._renew(at)

    def _renew(self, at: datetime) -> bool:
        """Write the heartbeat; ``False`` when this owner was taken over."""
        owner = self.owner
        beaten = self._connected(lambda: self._store.heartbeat(now=at, owner=owner))
        if beaten:
            self._meter.heartbeat(at)
        if self._connected_since is None:
            self._connected_since = at
        return beaten

    def _heartbeat(self, at: datetime) -> None:
        if not self._renew(at):
            self._rejoin(at)

    def _connected(self, call: Callable[[], _T]) -> _T:
        """``call()``; a store error also means "not connected" (see :meth:`beat`)."""
        try:
            return call()
        except OwnerLost:
            raise  # the store answered: this owner was taken over
        except StoreError:
            self._connected_since = None
            self._meter.store_error()
            raise

    def _rejoin(self, at: datetime) -> None:
        """This daemon's work was taken over: drop it and join under a new owner id."""
        lost = self.owner
        in_flight = self._queues.in_flight_ids()
        waiting = self._queues.waiting_count()
        self._join(at)
        elsewhere = self._held_elsewhere(in_flight, lost)
        logger.error(
            "lease lost: owner %s was taken over by another daemon (no heartbeat for more "
            "than %gs: paused, or cut off from the run store); its %d run(s) in flight are "
            "cancelled here (recorded FAILED by the taker), %d run(s) executing on workers "
            "go on, and its %d waiting release(s) belong to the taker; joining again as "
            "owner %s",
            lost,
            self._lease.total_seconds(),
            len(in_flight) - len(elsewhere),
            len(elsewhere),
            waiting,
            self.owner,
        )
        for run_id in in_flight:
            if run_id not in elsewhere:
                self._executor.cancel(run_id, f"owner {lost} lost its lease")
        self._queues = RunQueues()
        self._held = []

    def _held_elsewhere(self, run_ids: Sequence[str], lost: str) -> set[str]:
        try:
            return started_elsewhere(self._store.run_states(run_ids), lost)
        except StoreError:
            return set()  # cancel them all: the conservative side

    def _join(self, at: datetime) -> None:
        """Join the store under a new owner id: ``owner``, then ``owner/2``, ``owner/3``..."""
        host, pid = socket.gethostname(), os.getpid()
        while not self._store.join(self.owner, now=at, host=host, pid=pid):
            self._joins += 1
            self.owner = f"{self._base_owner}/{self._joins + 1}"
        self._meter.heartbeat(at)  # joining writes the first heartbeat

    def _take_over(self, at: datetime, *, everyone: bool, unowned: bool) -> None:
        try:
            taken = self._store.take_over(
                self.owner,
                now=at,
                lease=self._lease,
                everyone=everyone,
                unowned=unowned,
                reason=self._interrupted,
            )
        except OwnerLost:
            self._rejoin(at)
            return
        except StoreError as exc:  # e.g. a lock held too long: the next beat retries
            self._meter.store_error()
            logger.warning("takeover of daemons that are gone deferred: %s", exc)
            return
        for gone in taken.owners:
            logger.warning(
                "took over %s %s (%s; last heartbeat %s)",
                "worker" if gone.kind == "worker" else "daemon",
                gone.owner,
                "it stopped" if gone.state is OwnerState.STOPPED else "its lease expired",
                gone.heartbeat.isoformat(),
                extra={"owner": gone.owner},
            )
        for run_id in taken.failed:
            logger.warning(
                "run %s was RUNNING under a daemon or worker that is gone: recorded FAILED",
                run_id,
                extra={"run_id": run_id},
            )
        for run in taken.adopted:
            self._recover_pending(run, at)
        self._pump(self._queues.with_waiting())

    def _interrupted(self, gone: OwnerRecord) -> str:
        return interrupted_reason(gone, exclusive=self._exclusive)

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
            self._store.finish(
                run.run_id, status=Status.FAILED, now=now, error=reason, owner=self.owner
            )
            return
        logical = run.logical_date
        if logical is not None and run.release is not None:
            logical = loaded.in_zone(run.release.schedule, logical)
        logger.info(
            "re-dispatching release claimed before the restart", extra=self._extra(run, extra)
        )
        start = self._start_of(loaded, run.release)
        self._queues.hold(run.pipeline, Waiting(run.run_id, run.release, logical, start))

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
            replan = False
            if self._prepared is not None and not self._reload_requested:
                reloaded = self._prepared
            else:
                reloaded = self._reload(force=self._reload_requested)
                if reloaded and self._ahead is not None:
                    # A reload between prepare() and this tick: plan the boundary again
                    # with the new conf. What prepare() claimed is refused by the
                    # store (reported as already claimed); what the reload added runs.
                    replan = True
            self._prepared = None
            ahead, self._ahead = self._ahead, None
            init, self._ahead_from = (self._ahead_from if replan else None), None
            report = self._tick_locked(at, reloaded, stamp=self._clock, after=ahead, init=init)
            report = report if ahead is None else _merged(ahead, report)
            self._summary.tick(report)
            return report

    def prepare(self, boundary: datetime | None = None) -> bool:
        """Do the conf check of the next tick now, and with ``boundary`` its dispatch too.

        The daemon calls this a few tens of milliseconds before each minute
        boundary. The next :meth:`tick` skips its own conf check (unless a
        reload was requested since): an edit saved in between is picked up one
        tick later. With ``boundary`` (the instant the next tick is for) the
        releases due then are planned, claimed and submitted now, with run ids
        carrying the boundary's time, and the watermarks move to ``boundary``:
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
        self,
        at: datetime,
        reloaded: bool,
        *,
        stamp: Clock,
        after: TickReport | None = None,
        init: datetime | None = None,
    ) -> TickReport:
        """Heartbeat, plan and claim up to ``at``, dispatch.

        ``after`` is the round :meth:`prepare` dispatched ahead for a boundary
        at or before ``at``. Less than a minute after it no cron time lies
        between the two, so such a tick plans nothing (unless a reload asks to
        plan the boundary again: ``init`` is then where pipelines new to the
        store start) and the store stays free for the start handshakes of the
        runs starting now.
        """
        events = self._executor.drain_events()
        log = TickLog()
        log.dispatched.extend(self._handle_events(events))
        log.dispatched.extend(self._reconcile())
        watermark = self._watermark
        if after is not None and init is None and at < after.now + _MINUTE:
            self._report_load()
            return TickReport(
                now=at,
                watermark=watermark,
                dispatched=tuple(log.dispatched),
                reloaded=reloaded,
                events=tuple(events),
            )
        if self._due_at is None or self._due_at < at:
            self._due_at = at
        self._heartbeat(at)
        result = self._round(at, log, stamp=stamp, init=init)
        new_mark = advance_watermark(watermark, at)
        self._watermark = new_mark
        log_tick(result, log)
        self._report_load()
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

    def _round(
        self, at: datetime, log: TickLog, *, stamp: Clock, init: datetime | None = None
    ) -> Plan:
        """One claim round up to ``at``; dispatch what it admitted, hold what waits."""
        planned = self._catalog.planned_by_pipeline()
        start = init or self._watermark or at
        paused = self._connected(self._store.paused) if planned else {}
        decider = RoundDecider(
            catalog=self._catalog,
            settings=self._settings,
            masker=self._masker,
            limit=self.limit,
            at=at,
            stamp=stamp,
            paused=paused,
            index=self._due_index,
        )

        def claimed(batch: list[tuple[RoundClaim, bool]]) -> None:  # dispatch batch by batch
            for item, won in batch:
                self._apply(item, won, log, decider)

        try:
            self._connected(
                lambda: self._store.claim_round(
                    list(planned),
                    owner=self.owner,
                    at=at,
                    init=start,
                    now=at,
                    decide=decider,
                    batch=_CLAIM_BATCH,
                    claimed=claimed,
                    quiet=decider.quiet,
                )
            )
        except OwnerLost:
            self._due_index.forget()
            self._rejoin(at)
            return decider.plan()
        result = decider.plan()
        missed = len(result.skipped) + len(result.skipped_ranges)
        if missed:
            self._meter.release_skipped("catchup", missed)
        return result

    def _apply(self, item: RoundClaim, won: bool, log: TickLog, decider: RoundDecider) -> None:
        claim = item.claim
        release = decider.release_of(claim.run_id)
        if not won:
            log.already.append(release)
            return
        if item.state is ClaimState.SKIPPED:
            log.skipped.append(claim.run_id)
            self._meter.release_skipped("paused" if item.reason == PAUSED_REASON else "concurrency")
            return
        self._meter.release_claimed(late=release.late)
        entry = self._catalog.get(release.pipeline)
        start = None if entry is None else self._start_of(entry, claim.release)
        waiting = Waiting(claim.run_id, claim.release, release.logical_date, start)
        if item.state is ClaimState.ADMITTED:
            if self._submit(release.pipeline, waiting):
                log.dispatched.append(claim.run_id)
        else:
            self._queues.hold(release.pipeline, waiting)
            log.held.append(claim.run_id)

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
            self._report_load()
            return events

    def admit_waiting(self) -> list[str]:
        """Ask the store for free slots for every waiting release; return the run ids started.

        Slots free up when runs end on any daemon sharing the store; the daemon
        calls this every second while it holds waiting releases.
        """
        with self._lock:
            if self._state is not SchedulerState.RUNNING:
                return []
            started = self._pump(self._queues.with_waiting())
            self._report_load()
            return started

    def limit(self, entry: CatalogEntry) -> int:
        """How many runs of ``entry``'s pipeline hold a slot at once, fleet-wide."""
        if entry.concurrency in ("queue", "skip"):
            return 1
        return self._settings.max_pipeline_poking

    def offset_of(self, release: ReleaseKey) -> int:
        """Seconds after its fire time that ``release`` starts (its schedule's jitter)."""
        with self._lock:
            entry = self._catalog.get(release.pipeline)
        return 0 if entry is None else entry.offset_of(release)

    @staticmethod
    def _start_of(entry: CatalogEntry, release: ReleaseKey | None) -> datetime | None:
        """When a release of ``entry`` starts, if its jitter delays it (else ``None``)."""
        if release is None:
            return None
        offset = entry.offset_of(release)
        return release.at + timedelta(seconds=offset) if offset else None

    def start_held(self, now: datetime | None = None) -> list[str]:
        """Hand the releases held for their jitter whose start has come to the executor.

        The daemon's helper thread calls it at :attr:`next_start`. Returns the
        run ids started.
        """
        at = ensure_utc(now if now is not None else self._clock.now())
        with self._lock:
            if self._state is not SchedulerState.RUNNING:
                return []
            started: list[str] = []
            while self._held and self._held[0][0] <= at:
                _, run_id, name, item = heapq.heappop(self._held)
                if self._catalog.get(name) is None:
                    reason = f"pipeline {name!r} is no longer in the conf folder"
                    logger.error("claimed run cannot start: %s", reason, extra={"run_id": run_id})
                    self._store.finish(
                        run_id, status=Status.FAILED, now=at, error=reason, owner=self.owner
                    )
                    continue
                self._submit_now(name, item)
                started.append(run_id)
            if started:
                self._report_load()
            return started

    def _submit(self, name: str, item: Waiting) -> bool:
        """Hand ``item`` to the executor (``True``), or hold it until the start its
        jitter gives it (``False``: :meth:`start_held` hands it over then)."""
        if item.start is not None and item.start > ensure_utc(self._clock.now()):
            heapq.heappush(self._held, (item.start, item.run_id, name, item))
            assert item.release is not None  # only a release has a jittered start
            offset = (item.start - item.release.at).total_seconds()
            logger.info(
                "release held for its jitter: starts at %s (+%s)",
                item.start.isoformat(),
                format_seconds(int(offset)),
                extra={
                    "run_id": item.run_id,
                    "pipeline": name,
                    "release": item.release.at.isoformat(),
                },
            )
            return False
        self._submit_now(name, item)
        return True

    def _submit_now(self, name: str, item: Waiting) -> None:
        loaded = self._catalog.get(name)
        assert loaded is not None  # admitted from the catalog under the same lock
        request = RunRequest(  # the version loaded when the run starts
            run_id=item.run_id,
            pipeline=name,
            version=loaded.version,
            params=dict(loaded.defaults),
            release=item.release,
            logical_date=item.logical_date,
            trigger=TriggerKind.SCHEDULE,
            owner=self.owner,
        )
        self._runs.submitted(
            item.run_id,
            name,
            trigger=TriggerKind.SCHEDULE.value,
            release=item.start or (None if item.release is None else item.release.at),
        )
        self._executor.submit(request)
        self._queues.started(name, item.run_id)

    def _pump(self, names: Iterable[str]) -> list[str]:
        """Start the waiting runs of ``names`` the store gives a slot; return their run ids."""
        now = ensure_utc(self._clock.now())
        limits: dict[str, int] = {}
        for name in names:
            loaded = self._catalog.get(name)
            if loaded is not None:
                limits[name] = self.limit(loaded)
                continue
            reason = f"pipeline {name!r} is no longer in the conf folder"
            for item in self._queues.take(name):
                logger.error("claimed run cannot start: %s", reason, extra={"run_id": item.run_id})
                self._store.finish(
                    item.run_id, status=Status.FAILED, now=now, error=reason, owner=self.owner
                )
        if not limits:
            return []
        try:
            admitted = set(self._store.admit(limits, owner=self.owner, now=now))
        except StoreError as exc:  # the next poll, event or tick asks again
            self._meter.store_error()
            logger.warning("waiting releases not admitted now: %s", exc)
            return []
        started: list[str] = []
        for name in limits:
            for item in self._queues.take(name, admitted):
                if self._submit(name, item):
                    started.append(item.run_id)
        return started

    def _handle_events(self, events: Sequence[RunEvent]) -> list[str]:
        touched = self._forget(events)
        return self._pump(touched & set(self._queues.with_waiting()))

    def _forget(self, events: Sequence[RunEvent]) -> set[str]:
        self._runs.observe(events)
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

    def _report_load(self) -> None:
        self._meter.load(
            in_flight=self._queues.in_flight_count(), waiting=self._queues.waiting_count()
        )

    def _reconcile(self) -> list[str]:
        """Drop in-flight runs the store says are over; ask for slots for waiting ones.

        Events may be lost with a worker, and slots free up when runs end on
        other daemons: each pipeline with waiting releases is checked. Returns
        the run ids started because a slot freed up.
        """
        waiting = set(self._queues.with_waiting())
        for name, running in self._queues.in_flight():
            if name not in waiting:
                continue
            for run_id in list(running):
                record = self._store.get_run(run_id)
                if record is None or record.status.is_terminal:
                    self._queues.finished(run_id)
        return self._pump(waiting)


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
