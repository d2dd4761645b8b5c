"""Backfill: run a pipeline's past releases, each exactly once, in this process.

:class:`Backfill` takes an iterable of releases (``workflow backfill`` gives it
every release of the pipeline's schedules in a range, :func:`releases_in`; a
later "unpause --catchup" may hand it any list) and runs them on a
:class:`~ddeutil.workflow.dispatch.threads.ThreadExecutor` of its own while
holding a :class:`~ddeutil.workflow.dispatch.client.ClientLease` on the store.
:func:`prepare` checks the user's input first (:class:`BackfillInputError`).

Policies:

* **Claimed like a scheduled release.** Each release is claimed with the same
  key as the daemon's scheduled run of it (pipeline, schedule key, UTC instant;
  :meth:`RunStore.claim_many <ddeutil.workflow.store.base.RunStore.claim_many>`
  with trigger ``backfill``), so a release runs once whoever claims it first:
  a daemon, an earlier backfill or this one. A release claimed before is not
  run; it is reported with the run that holds it and who claimed it.
* **Just in time.** A release is claimed only when one of the ``parallel``
  slots is free (the free slots' worth in one transaction), oldest first; an
  interrupted backfill leaves nothing PENDING, and running the same backfill
  again continues where it stopped.
* **Like the daemon's run of the release.** Params are the pipeline's
  defaults (masked in the store, real in the run), ``release.logical_date`` is
  the release instant in the schedule's zone, the template version is the one
  the catalog validated, and the run is fenced by the lease's owner id.
* **Bounded.** Releases are taken from the iterable one slot at a time
  (constant memory whatever the range); at most :data:`MAX_PARALLEL` slots;
  :func:`prepare` refuses more than :data:`MAX_RELEASES` releases (counting
  them is the one cost that grows with the range).
* **Stop, then cancel.** :meth:`Backfill.stop` stops claiming and lets the
  runs in flight finish; :meth:`Backfill.cancel` also cancels them (recorded
  CANCELLED, bash process groups killed). Both are safe from a signal handler:
  they only set flags that the loop reads within :data:`POLL` seconds.
* **Range** (:func:`prepare`): ``[start, end)``, start inclusive, end
  exclusive; a naive bound is read in the zone of the pipeline's schedules when
  they all share one, else in ``WORKFLOW_CORE_TIMEZONE``. An end in the future
  is refused: those releases are the daemon's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from itertools import islice
from typing import Any

from ..clock import Clock, ensure_utc
from ..dispatch.client import ClientLease
from ..dispatch.records import RunEvent, RunRequest
from ..dispatch.threads import ThreadExecutor
from ..errors import ConfigError, TemplateNotFound, WorkflowError
from ..loader import Loader, RawTemplate
from ..masking import Masker
from ..result import Status
from ..runs import ReleaseKey, TriggerKind, new_run_id
from ..schedules.planner import PlannedSchedule, Release, releases_between
from ..settings import Settings
from ..store.base import Claim, ReleaseRun, RunStore
from .catalog import CatalogEntry
from .validation import PipelineFacts, pipeline_facts

__all__ = [
    "LARGE_RANGE",
    "MAX_PARALLEL",
    "MAX_RELEASES",
    "Backfill",
    "BackfillInputError",
    "BackfillRange",
    "BackfillSummary",
    "Outcome",
    "count_releases",
    "load_entry",
    "parse_instant",
    "prepare",
    "releases_in",
    "with_claims",
]

logger = logging.getLogger(__name__)

MAX_PARALLEL = 256
"""Most runs one backfill executes at once (``--parallel``)."""
MAX_RELEASES = 1_000_000
"""Most releases one backfill takes (counting them costs about 3 us each): split a larger range."""
LARGE_RANGE = 1000
"""More releases than this need an explicit ``parallel`` (1 is fine): a typo in a date
should not start a year of runs."""
POLL = 0.2
"""Seconds between two looks at the stop and cancel flags while the loop waits."""
LOOKUP_CHUNK = 500
"""Releases looked up in the store at once (:func:`with_claims`)."""


class BackfillInputError(WorkflowError):
    """The input of a backfill is refused; ``status`` is the HTTP status the API answers.

    ``field`` names the input at fault (``name``, ``start``, ``end``, ``parallel``).
    """

    def __init__(self, message: str, *, field: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


@dataclass(frozen=True)
class BackfillRange:
    """A checked backfill: the pipeline, its releases' range and the zone it was read in."""

    entry: CatalogEntry
    start: datetime
    """Inclusive, aware UTC."""
    end: datetime
    """Exclusive, aware UTC."""
    zone: tzinfo
    total: int
    """Releases in ``[start, end)``."""

    def releases(self) -> Iterator[Release]:
        """The releases, oldest first (lazily)."""
        return releases_in(self.entry, self.start, self.end)


@dataclass(frozen=True)
class Outcome:
    """What became of one release.

    ``run_id`` and ``status`` are this backfill's run when it claimed the release
    (``status`` ``None``: the run was no longer PENDING when its slot came, e.g.
    cancelled meanwhile); otherwise ``claimed`` is the run that held the release
    already, and ``status`` its status when it was looked up.
    """

    release: Release
    run_id: str
    status: Status | None
    error: str | None = None
    claimed: ReleaseRun | None = None

    @property
    def skipped(self) -> bool:
        return self.claimed is not None

    def to_dict(self) -> dict[str, Any]:
        """One JSON line of ``workflow backfill`` (and the API's dry run)."""
        data: dict[str, Any] = {
            "release": self.release.logical_date.isoformat(),
            "at": self.release.at.isoformat(),
            "schedule": self.release.schedule,
            "run_id": self.run_id,
            "status": None if self.status is None else self.status.value,
        }
        if self.claimed is not None:
            data["claimed_by"] = self.claimed.trigger.value
        if self.error:
            data["error"] = self.error
        return data


@dataclass(frozen=True)
class BackfillSummary:
    """The counts of one backfill, for its last line and exit code."""

    pipeline: str
    total: int
    succeeded: int
    failed: int
    cancelled: int
    skipped_schedule: int
    skipped_backfill: int
    not_reached: int
    interrupted: bool

    @property
    def ran(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": True,
            "pipeline": self.pipeline,
            "total": self.total,
            "ran": self.ran,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "skipped_schedule": self.skipped_schedule,
            "skipped_backfill": self.skipped_backfill,
            "not_reached": self.not_reached,
            "interrupted": self.interrupted,
        }


# ---------------------------------------------------------------- input


def load_entry(name: str, loader: Loader, settings: Settings) -> CatalogEntry:
    """The validated pipeline ``name`` as the scheduler's catalog keeps it.

    Raises:
        BackfillInputError: 404 unknown name (or not a pipeline); 422 invalid template.
    """
    try:
        template = loader.get(name)
    except TemplateNotFound as exc:
        if isinstance(exc.__cause__, ConfigError):
            raise BackfillInputError(
                f"pipeline {name!r} does not load: {exc.__cause__}", field="name"
            ) from None
        raise BackfillInputError(f"no pipeline named {name!r}", field="name", status=404) from None
    return entry_of(template, loader, settings)


def entry_of(template: RawTemplate, loader: Loader, settings: Settings) -> CatalogEntry:
    """The catalog entry of ``template`` (validated here, as the daemon's catalog does)."""
    name = template.name
    try:
        kind = loader.kind(template)
    except ConfigError as exc:
        raise BackfillInputError(f"pipeline {name!r} does not load: {exc}", field="name") from None
    if kind != "pipeline":
        raise BackfillInputError(
            f"{name!r} is not a pipeline (it is a {kind or 'template of another kind'})",
            field="name",
            status=404,
        )
    facts = pipeline_facts(template, loader, settings)
    if not isinstance(facts, PipelineFacts):
        raise BackfillInputError(f"pipeline {name!r} does not load: {facts}", field="name")
    return CatalogEntry.of(template, facts)


def parse_instant(text: str, *, field: str, zone: tzinfo, now: datetime) -> datetime:
    """``text`` (ISO 8601, or ``now``) as aware UTC; a naive value is read in ``zone``.

    Raises:
        BackfillInputError: ``text`` is not an ISO 8601 date or date-time.
    """
    raw = text.strip()
    if raw.lower() == "now":
        return ensure_utc(now)
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BackfillInputError(
            f"{field} {text!r} is not an ISO 8601 date or date-time "
            "(e.g. 2024-01-01 or 2024-01-01T06:00:00+07:00)",
            field=field,
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=zone)
    try:
        return value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise BackfillInputError(f"{field} {text!r} is out of range", field=field) from None


def zone_of(entry: CatalogEntry, default: tzinfo) -> tzinfo:
    """The zone naive bounds are read in: the schedules' when they share one."""
    zones = {on.timezone.key for on in entry.schedules}
    if len(zones) == 1:
        return entry.schedules[0].timezone
    return default


def releases_in(entry: CatalogEntry, start: datetime, end: datetime) -> Iterator[Release]:
    """Every release of ``entry``'s schedules in ``[start, end)``, oldest first, lazily."""
    planned = [PlannedSchedule(entry.name, on, entry.catchup) for on in entry.schedules]
    return releases_between(planned, start=start, end=end)


def count_releases(releases: Iterable[Release]) -> int:
    """How many ``releases`` yields (consumed lazily, in constant memory)."""
    return sum(1 for _ in releases)


def prepare(
    entry: CatalogEntry,
    *,
    start: str,
    end: str,
    parallel: int | None,
    now: datetime,
    settings: Settings,
) -> BackfillRange:
    """Check a backfill's input and count its releases.

    Raises:
        BackfillInputError: no schedules (or a required param without a default),
            a bad date, an end not after the start, an end in the future, a
            ``parallel`` out of ``1..MAX_PARALLEL``, more than
            :data:`LARGE_RANGE` releases without an explicit ``parallel``, or
            more than :data:`MAX_RELEASES` releases.
    """
    name = entry.name
    if not entry.schedules:
        raise BackfillInputError(
            f"pipeline {name!r} has no schedules (no `on:`): it has no releases to backfill; "
            f"use `workflow run {name}` to run it once",
            field="name",
        )
    if entry.unschedulable:
        raise BackfillInputError(
            f"pipeline {name!r} cannot be scheduled: {entry.unschedulable}", field="name"
        )
    if parallel is not None and not 1 <= parallel <= MAX_PARALLEL:
        raise BackfillInputError(
            f"parallel must be between 1 and {MAX_PARALLEL}, got {parallel}", field="parallel"
        )
    zone = zone_of(entry, settings.timezone)
    low = parse_instant(start, field="start", zone=zone, now=now)
    high = parse_instant(end, field="end", zone=zone, now=now)
    if high <= low:
        raise BackfillInputError(
            f"end {end!r} is not after start {start!r} (the range is [start, end))", field="end"
        )
    if high > ensure_utc(now):
        raise BackfillInputError(
            f"end {end!r} is in the future: releases from now on are the scheduler daemon's; "
            "give an end up to now (`--end now`)",
            field="end",
        )
    try:
        total = count_releases(islice(releases_in(entry, low, high), MAX_RELEASES + 1))
    except (OverflowError, ValueError):  # a bound at the edge of what datetime holds
        raise BackfillInputError(
            f"the range [{start}, {end}) is out of range for the schedules", field="start"
        ) from None
    if total > MAX_RELEASES:
        raise BackfillInputError(
            f"more than {MAX_RELEASES} releases of {name!r} in [{start}, {end}): "
            "split the range into several backfills",
            field="end",
        )
    if total > LARGE_RANGE and parallel is None:
        raise BackfillInputError(
            f"{total} releases of {name!r} in [{start}, {end}): more than {LARGE_RANGE} need an "
            "explicit parallel (e.g. --parallel 1 to run them one at a time, or --parallel 8)",
            field="parallel",
        )
    return BackfillRange(entry, low, high, zone, total)


def with_claims(
    store: RunStore, releases: Iterable[Release]
) -> Iterator[tuple[Release, ReleaseRun | None]]:
    """Each release with the run that claimed it (``None``: free), looked up in chunks."""
    it = iter(releases)
    while chunk := list(islice(it, LOOKUP_CHUNK)):
        keys = [ReleaseKey(r.pipeline, r.schedule, r.at) for r in chunk]
        found = store.release_runs(keys)
        for release, key in zip(chunk, keys, strict=True):
            yield release, found.get(key)


# ---------------------------------------------------------------- running


class Backfill:
    """Runs releases of one pipeline, at most ``parallel`` at once (policies: module docstring).

    Args:
        store: The run store (shared with the daemon).
        settings: Engine settings of the runs; ``app_lease_seconds`` for the lease.
        entry: The pipeline in the version to run.
        releases: The releases, oldest first; consumed lazily.
        parallel: Runs executed at once (1..MAX_PARALLEL).
        clock: Time of claims, run ids and records.
        masker: Hides secrets in the params written to the store.
        loader: Resolves what the pipeline refers to (other templates).
        on_outcome: Called with each release's outcome (from executor threads too).
        on_claimed: Called with the run ids of each claim batch won (tests, gauges).
        log_files: Write a log file per run (default ``WORKFLOW_LOG_ENABLE_WRITE``).
        lease_poll: Seconds between the lease thread's looks for cancel requests.
        reclaim: Run releases recorded SKIPPED with this reason instead of fresh
            ones (``unpause --catchup``): each claim replaces the skipped record
            in one transaction (:meth:`RunStore.reclaim_skipped`).
    """

    def __init__(
        self,
        *,
        store: RunStore,
        settings: Settings,
        entry: CatalogEntry,
        releases: Iterable[Release],
        parallel: int,
        clock: Clock,
        masker: Masker,
        loader: Loader,
        on_outcome: Callable[[Outcome], None] | None = None,
        on_claimed: Callable[[Sequence[str]], None] | None = None,
        log_files: bool | None = None,
        lease_poll: float = 1.0,
        reclaim: str | None = None,
    ) -> None:
        if not 1 <= parallel <= MAX_PARALLEL:
            raise ValueError(f"parallel must be between 1 and {MAX_PARALLEL}, got {parallel}")
        self._store = store
        self._settings = settings
        self._entry = entry
        self._releases = iter(releases)
        self._parallel = parallel
        self._clock = clock
        self._masker = masker
        self._loader = loader
        self._on_outcome = on_outcome
        self._on_claimed = on_claimed
        self._log_files = log_files
        self._lease_poll = lease_poll
        self._reclaim = reclaim
        self._cond = threading.Condition()
        self._in_flight: dict[str, Release] = {}
        self._stopping = threading.Event()
        self._cancelling = threading.Event()
        self._cancel_reason = "backfill cancelled"
        self._counts = {"succeeded": 0, "failed": 0, "cancelled": 0, "schedule": 0, "backfill": 0}
        self._executor: ThreadExecutor | None = None
        self.owner: str | None = None

    @property
    def pipeline(self) -> str:
        return self._entry.name

    def stop(self) -> None:
        """Stop claiming; the runs in flight finish (signal-safe: sets a flag)."""
        self._stopping.set()

    def cancel(self, reason: str = "backfill cancelled") -> None:
        """Stop claiming and cancel the runs in flight (signal-safe: sets flags)."""
        self._cancel_reason = reason
        self._stopping.set()
        self._cancelling.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def in_flight(self) -> int:
        with self._cond:
            return len(self._in_flight)

    def run(self) -> BackfillSummary:
        """Claim and run the releases until they are done, or :meth:`stop` / :meth:`cancel`."""
        entry = self._entry
        lease = ClientLease(
            self._store,
            lease=self._settings.app_lease_seconds,
            on_cancel=self._cancel_run,
            clock=self._clock,
            poll=self._lease_poll,
        )
        executor = ThreadExecutor(
            store=self._store,
            settings=self._settings,
            templates=self._template,
            masker=self._masker,
            clock=self._clock,
            loader=self._loader,
            size=self._parallel,
            log_files=self._log_files,
            on_event=self._on_event,
            name=f"backfill {entry.name}",
        )
        self._executor = executor
        not_reached = 0
        with lease:
            self.owner = lease.owner
            executor.start()
            try:
                self._loop(lease.owner)
                if self._stopping.is_set() and not self._cancelling.is_set():
                    logger.warning(
                        "backfill of %s stopped: no more releases are claimed; waiting for "
                        "%d run(s) in flight (interrupt again to cancel them)",
                        entry.name,
                        self.in_flight(),
                    )
            finally:
                self._drain(executor)
                executor.shutdown(0.0, reason=self._cancel_reason)
        if self._stopping.is_set():
            not_reached = count_releases(self._releases)
        counts = self._counts
        return BackfillSummary(
            pipeline=entry.name,
            total=counts["succeeded"]
            + counts["failed"]
            + counts["cancelled"]
            + counts["schedule"]
            + counts["backfill"]
            + not_reached,
            succeeded=counts["succeeded"],
            failed=counts["failed"],
            cancelled=counts["cancelled"],
            skipped_schedule=counts["schedule"],
            skipped_backfill=counts["backfill"],
            not_reached=not_reached,
            interrupted=self._stopping.is_set(),
        )

    # ------------------------------------------------------------ internals

    def _template(self, pipeline: str, version: str | None) -> RawTemplate | None:
        entry = self._entry
        if pipeline != entry.name or (version is not None and version != entry.version):
            return None
        return entry.template

    def _loop(self, owner: str) -> None:
        entry = self._entry
        stored_params = self._masker.data(dict(entry.defaults))
        while not self._stopping.is_set():
            with self._cond:
                while len(self._in_flight) >= self._parallel and not self._stopping.is_set():
                    self._cond.wait(POLL)
                free = self._parallel - len(self._in_flight)
            if self._stopping.is_set():
                return
            batch = list(islice(self._releases, free))
            if not batch:
                return
            claims = [
                Claim(
                    release=ReleaseKey(r.pipeline, r.schedule, r.at),
                    run_id=new_run_id(self._clock),
                    params=stored_params,
                    logical_date=r.logical_date,
                    trigger=TriggerKind.BACKFILL,
                )
                for r in batch
            ]
            if self._reclaim is None:
                won = self._store.claim_many(claims, now=self._clock.now(), owner=owner)
            else:  # a catch-up: the release's skipped record makes way for its run
                won = self._store.reclaim_skipped(
                    claims, reason=self._reclaim, now=self._clock.now(), owner=owner
                )
            taken: list[Claim] = []
            lost: list[tuple[Release, Claim]] = []
            with self._cond:
                for release, claim, ok in zip(batch, claims, won, strict=True):
                    if ok:
                        taken.append(claim)
                        self._in_flight[claim.run_id] = release
                    else:
                        lost.append((release, claim))
            if taken and self._on_claimed is not None:
                self._on_claimed([c.run_id for c in taken])
            for claim in taken:
                self._executor_submit(
                    RunRequest(
                        run_id=claim.run_id,
                        pipeline=entry.name,
                        version=entry.version,
                        params=dict(entry.defaults),
                        release=claim.release,
                        logical_date=claim.logical_date,
                        trigger=TriggerKind.BACKFILL,
                        owner=owner,
                    )
                )
            if lost:
                self._report_claimed(lost)

    def _executor_submit(self, request: RunRequest) -> None:
        assert self._executor is not None
        self._executor.submit(request)

    def _report_claimed(self, lost: list[tuple[Release, Claim]]) -> None:
        found = self._store.release_runs([c.release for _, c in lost])
        for release, claim in lost:
            holder = found.get(claim.release)
            if holder is None:  # pruned since: claimed all the same
                holder = ReleaseRun("", TriggerKind.SCHEDULE, Status.SKIPPED, None)
            kind = "backfill" if holder.trigger is TriggerKind.BACKFILL else "schedule"
            with self._cond:
                self._counts[kind] += 1
            self._emit(Outcome(release, holder.run_id, holder.status, claimed=holder))

    def _drain(self, executor: ThreadExecutor) -> None:
        """Wait for the runs in flight; cancel them once :meth:`cancel` is called."""
        cancelled = False
        while True:
            with self._cond:
                if not self._in_flight:
                    return
                if not cancelled and not self._cancelling.is_set():
                    self._cond.wait(POLL)
                    continue
            if not cancelled:
                cancelled = True
                logger.warning(
                    "backfill of %s: cancelling %d run(s) in flight: %s",
                    self._entry.name,
                    self.in_flight(),
                    self._cancel_reason,
                )
                executor.cancel_all(self._cancel_reason)
                executor.shutdown(0.0, reason=self._cancel_reason)
                return

    def _cancel_run(self, run_id: str) -> None:
        executor = self._executor
        if executor is not None:
            executor.cancel(run_id, "cancel asked through the run store")

    def _on_event(self, event: RunEvent) -> None:
        if event.kind != "finished":
            return
        with self._cond:
            release = self._in_flight.get(event.run_id)
        if release is None:
            return
        status = event.status
        if status is None:
            record = self._store.get_run(event.run_id)
            status = record.status if record is not None else None
        with self._cond:
            if status is Status.SUCCESS:
                self._counts["succeeded"] += 1
            elif status is Status.CANCELLED:
                self._counts["cancelled"] += 1
            else:
                self._counts["failed"] += 1
        self._emit(Outcome(release, event.run_id, status, event.error))
        with self._cond:
            self._in_flight.pop(event.run_id, None)
            self._cond.notify_all()

    def _emit(self, outcome: Outcome) -> None:
        if self._on_outcome is None:
            return
        try:
            self._on_outcome(outcome)
        except Exception:
            logger.exception("backfill outcome callback failed")
