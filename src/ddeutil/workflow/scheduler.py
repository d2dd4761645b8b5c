"""The scheduler core: one deterministic :meth:`Scheduler.tick` per minute boundary.

A tick does, in this order:

1. **Reload** the conf folder when the loader's fingerprint changed (or when
   :meth:`Scheduler.request_reload` asked for it, e.g. on SIGHUP). A pipeline whose
   new version no longer validates keeps its *last good version* and the error is
   logged with file, template and key; a template that never validated is logged
   and skipped. A broken template is never fatal (see
   :class:`~ddeutil.workflow.catalog.PipelineCatalog`).
2. **Plan**: the pure :func:`ddeutil.workflow.planner.plan` returns the releases
   due in ``(watermark, now]`` with each pipeline's catch-up policy applied; every
   due and every missed release is logged.
3. **Claim, then dispatch**: every due release is claimed in the run store
   (a PENDING run) *before* it is handed to the executor, so a release is never
   dispatched twice, across restarts and across daemons sharing a store. A
   release claimed before (by this daemon earlier, or by another one) is logged
   and skipped.
4. **Advance the watermark** (never backwards: a wall clock stepping back runs
   nothing twice) and write the **heartbeat**. The watermark is read from the
   store at :meth:`Scheduler.start` and then kept in memory: only the holder of
   the store's scheduler lock writes it (a second scheduler on the same store
   would at worst plan a window again, and its claims would all be refused).

Overlap and fan-out policy per pipeline:

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
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .catalog import CatalogEntry, PipelineCatalog
from .clock import Clock, ensure_utc
from .errors import WorkflowError
from .executor import ExecEvent, Executor
from .loader import Loader, RawTemplate
from .masking import Masker
from .pipeline import new_run_id
from .planner import Plan, Release, advance_watermark, plan
from .result import Status
from .runner import RunRequest
from .settings import Settings
from .store.base import Claim, ReleaseKey, RunRecord, RunStore, TriggerKind

__all__ = ["INTERRUPTED_REASON", "Scheduler", "SchedulerState", "TickReport"]

logger = logging.getLogger(__name__)

INTERRUPTED_REASON = "interrupted by a restart"
SKIP_REASON = "skipped: a run of this pipeline is still in flight (concurrency: skip)"
_FIRST_BATCHES = (1, 16)
_CLAIM_BATCH = 64
"""Due releases are claimed in batches of 1, 16, then 64 (one transaction each):
the first release reaches a worker after a one-row claim, the rest amortise."""


class SchedulerState(str, enum.Enum):
    """Lifecycle of a :class:`Scheduler`: STOPPED -> STARTING -> RUNNING -> STOPPING -> STOPPED."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class TickReport:
    """What one tick did (returned for tests, logs and benchmarks).

    Attributes:
        now: The instant the tick planned for.
        watermark: The watermark after the tick (``max`` of the old one and ``now``).
        due: Releases the planner returned as due, in release order.
        missed: Releases the catch-up policy skipped (never claimed).
        dispatched: Run ids handed to the executor during this tick (including
            waiting runs released because a slot became free).
        held: Run ids claimed and waiting in a per-pipeline FIFO (queue / poking).
        skipped: Run ids claimed and recorded SKIPPED (``concurrency: skip``).
        already_claimed: Due releases that were claimed before (not dispatched).
        reloaded: The conf folder was (re)loaded at the start of this tick.
        events: Executor events processed during this tick.
        active: ``False`` when the scheduler was not running and did nothing.
    """

    now: datetime
    watermark: datetime | None
    due: tuple[Release, ...] = ()
    missed: tuple[Release, ...] = ()
    dispatched: tuple[str, ...] = ()
    held: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    already_claimed: tuple[Release, ...] = ()
    reloaded: bool = False
    events: tuple[ExecEvent, ...] = ()
    active: bool = True


@dataclass(frozen=True)
class _Waiting:
    run_id: str
    release: ReleaseKey | None
    logical_date: datetime | None


@dataclass
class _TickLog:
    dispatched: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    already: list[Release] = field(default_factory=list)


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
    ) -> None:
        self._settings = settings
        self._store = store
        self._executor = executor
        self._clock = clock
        self._catalog = PipelineCatalog(loader, settings)
        self._masker = masker or Masker()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self._state = SchedulerState.STOPPED
        self._started_once = False
        self._lock = threading.RLock()
        self._reload_requested = False
        self._prepared: bool | None = None
        self._watermark: datetime | None = None  # read at start; only the lock holder writes it
        self._waiting: dict[str, deque[_Waiting]] = {}
        self._in_flight: dict[str, set[str]] = {}
        self._run_pipeline: dict[str, str] = {}

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
            left = sum(len(q) for q in self._waiting.values())
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

        Scheduled runs left RUNNING by a previous process are recorded FAILED
        ("interrupted by a restart") and are *not* run again: they may have had
        side effects. Scheduled runs left PENDING (claimed, never started) are
        dispatched again, oldest release first, under the same concurrency rules
        as new releases. Runs of other triggers (API, manual) are left to their
        owners.
        """
        with self._lock:
            self._reload(force=False)
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
            for name in list(self._waiting):
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
        self._waiting.setdefault(run.pipeline, deque()).append(
            _Waiting(run.run_id, run.release, logical)
        )

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
            self._prepared = None
            events = self._executor.drain_events()
            log = _TickLog()
            log.dispatched.extend(self._handle_events(events))
            log.dispatched.extend(self._reconcile())
            watermark = self._watermark
            result = plan(
                self._catalog.planned(),
                watermark=watermark,
                now=at,
                catchup_limit=self._settings.app_catchup_limit,
            )
            for start, stop in _batches(len(result.due)):
                self._dispatch_batch(result.due[start:stop], at, log)
            new_mark = advance_watermark(watermark, at)
            if watermark is None or new_mark != watermark:
                self._store.set_watermark(new_mark)
                self._watermark = new_mark
            self._store.heartbeat(now=at, owner=self.owner)
            self._log_plan(result, log)
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

    def prepare(self) -> bool:
        """Do the conf check of the next tick now; return whether the conf was reloaded.

        The daemon calls this a few tens of milliseconds before each minute
        boundary, so the tick itself starts with planning. The next :meth:`tick`
        then skips its own check (unless a reload was requested since): an edit
        saved in between is picked up one tick later.
        """
        with self._lock:
            if self._state is not SchedulerState.RUNNING:
                return False
            self._prepared = self._reload(force=self._reload_requested)
            return self._prepared

    def process_events(self) -> list[ExecEvent]:
        """Handle executor events now and start waiting runs whose slot became free."""
        with self._lock:
            events = self._executor.drain_events()
            if self._state is SchedulerState.RUNNING:
                self._handle_events(events)
            else:
                self._forget(events)
            return events

    def _dispatch_batch(self, releases: Sequence[Release], now: datetime, log: _TickLog) -> None:
        """Claim a batch of due releases in one go, then submit / hold / skip each."""
        claims: list[tuple[Release, CatalogEntry, str, ReleaseKey]] = []
        for release in releases:
            loaded = self._catalog.get(release.pipeline)
            assert loaded is not None  # planned from the catalog under the same lock
            key = ReleaseKey(pipeline=release.pipeline, schedule=release.schedule, at=release.at)
            claims.append((release, loaded, new_run_id(self._clock, self._settings.timezone), key))
        won = self._claim(claims, now)
        for (release, loaded, run_id, key), ok in zip(claims, won, strict=True):
            if not ok:
                log.already.append(release)
                continue
            name = loaded.name
            policy = loaded.concurrency
            busy = bool(self._in_flight.get(name)) or bool(self._waiting.get(name))
            if policy == "skip" and busy:
                self._store.finish(run_id, status=Status.SKIPPED, now=now, error=SKIP_REASON)
                log.skipped.append(run_id)
                continue
            self._waiting.setdefault(name, deque()).append(
                _Waiting(run_id, key, release.logical_date)
            )
            started = self._pump(name)
            log.dispatched.extend(started)
            if run_id not in started:
                log.held.append(run_id)

    def _claim(
        self, claims: Sequence[tuple[Release, CatalogEntry, str, ReleaseKey]], now: datetime
    ) -> list[bool]:
        batch = [
            Claim(
                release=key,
                run_id=run_id,
                params=self._masker.data(dict(loaded.defaults)),
                logical_date=release.logical_date,
            )
            for release, loaded, run_id, key in claims
        ]
        return self._store.claim_many(batch, now=now)

    def _limit(self, loaded: CatalogEntry) -> int:
        if loaded.concurrency in ("queue", "skip"):
            return 1
        return self._settings.max_pipeline_poking

    def _pump(self, name: str) -> list[str]:
        """Submit waiting runs of ``name`` while it has free slots; return their run ids."""
        queue = self._waiting.get(name)
        if not queue:
            return []
        started: list[str] = []
        loaded = self._catalog.get(name)
        running = self._in_flight.setdefault(name, set())
        while queue and (loaded is None or len(running) < self._limit(loaded)):
            item = queue.popleft()
            if loaded is None:
                reason = f"pipeline {name!r} is no longer in the conf folder"
                logger.error("claimed run cannot start: %s", reason, extra={"run_id": item.run_id})
                now = ensure_utc(self._clock.now())
                self._store.finish(item.run_id, status=Status.FAILED, now=now, error=reason)
                continue
            request = RunRequest(
                run_id=item.run_id,
                pipeline=name,
                template=loaded.template,
                params=dict(loaded.defaults),
                logical_date=item.logical_date,
                release=item.release,
                trigger=TriggerKind.SCHEDULE,
                version=loaded.version,
            )
            self._executor.submit(request)
            running.add(item.run_id)
            self._run_pipeline[item.run_id] = name
            started.append(item.run_id)
        if not queue:
            self._waiting.pop(name, None)
        return started

    def _handle_events(self, events: Iterable[ExecEvent]) -> list[str]:
        touched = self._forget(events)
        started: list[str] = []
        for name in touched:
            started.extend(self._pump(name))
        return started

    def _forget(self, events: Iterable[ExecEvent]) -> set[str]:
        touched: set[str] = set()
        for event in events:
            name = self._run_pipeline.get(event.run_id)
            extra = {"run_id": event.run_id, "pipeline": name}
            if event.kind != "finished":
                logger.debug("run started", extra=extra)
                continue
            status = event.status.value if event.status is not None else "?"
            logger.info(
                "run finished: %s%s",
                status,
                f" ({event.error})" if event.error else "",
                extra=extra,
            )
            if name is None:
                continue
            self._run_pipeline.pop(event.run_id, None)
            self._in_flight.get(name, set()).discard(event.run_id)
            touched.add(name)
        return touched

    def _reconcile(self) -> list[str]:
        """Drop in-flight runs the store says are over (events may be lost with a worker).

        Only pipelines where a leaked in-flight run would hold releases back are
        checked: those with waiting releases and ``concurrency: skip`` ones with a
        run in flight. Returns the run ids started because a slot freed up.
        """
        started: list[str] = []
        for name, running in list(self._in_flight.items()):
            loaded = self._catalog.get(name)
            skip = loaded is not None and loaded.concurrency == "skip"
            if not running or not (self._waiting.get(name) or skip):
                continue
            for run_id in list(running):
                record = self._store.get_run(run_id)
                if record is None or record.status.is_terminal:
                    running.discard(run_id)
                    self._run_pipeline.pop(run_id, None)
            started.extend(self._pump(name))
        return started

    def _log_plan(self, result: Plan, log: _TickLog) -> None:
        already = {(r.pipeline, r.schedule, r.at) for r in log.already}
        for release in result.due:
            extra = {"pipeline": release.pipeline, "release": release.at.isoformat()}
            if (release.pipeline, release.schedule, release.at) in already:
                logger.info(
                    "release due but already claimed: skipped (schedule %s)",
                    release.schedule,
                    extra=extra,
                )
            else:
                logger.info(
                    "release due%s (schedule %s, logical date %s)",
                    f" ({release.reason})" if release.reason else "",
                    release.schedule,
                    release.logical_date.isoformat(),
                    extra=extra,
                )
        for release in result.skipped:
            logger.info(
                "release skipped: %s (schedule %s)",
                release.reason or "missed",
                release.schedule,
                extra={"pipeline": release.pipeline, "release": release.at.isoformat()},
            )
        for span in result.skipped_ranges:
            logger.info(
                "older releases in (%s, %s] skipped: %s (schedule %s)",
                span.after.isoformat(),
                span.until.isoformat(),
                span.reason,
                span.schedule,
                extra={"pipeline": span.pipeline},
            )
        for run_id in log.skipped:
            logger.info("release recorded SKIPPED: %s", SKIP_REASON, extra={"run_id": run_id})
        if log.held:
            logger.info(
                "%d claimed release(s) wait for a free slot of their pipeline", len(log.held)
            )


def _batches(count: int) -> Iterable[tuple[int, int]]:
    """``(start, stop)`` slices of ``count`` due releases: 1, 16, then 64 at a time."""
    start = 0
    sizes = iter(_FIRST_BATCHES)
    while start < count:
        stop = min(count, start + next(sizes, _CLAIM_BATCH))
        yield start, stop
        start = stop
