"""The planner: which releases are due at one tick, as a pure function.

:func:`plan` takes the loaded schedules, the scheduler's watermark (the instant up
to which releases were already planned) and one clock reading, and returns a
:class:`Plan` of typed :class:`Release` records. It does no I/O, reads no clock
and logs nothing: the daemon claims and dispatches ``Plan.due`` and logs
``Plan.skipped`` / ``Plan.skipped_ranges`` with the reason each one carries.

Policy:

* **Window.** The releases considered are the fire times of each schedule in
  ``(watermark, now]``. With no watermark (the first start on a store) nothing is
  due; the caller stores ``now`` as the watermark. When ``now <= watermark`` the
  wall clock stepped back: nothing is due, and :func:`advance_watermark` keeps the
  larger watermark, so the slots between the two readings are not released again
  when the clock comes forward.
* **On time.** A release with ``at > now - grace`` is on time and always due,
  whatever the catch-up policy. A restart straddling a slot (stopped at
  ``hh:59:59``, started at ``hh+1:00:20``) therefore runs the ``hh+1:00`` release
  once.
* **Missed.** Older releases were missed (downtime, a suspended host, a stall) and
  follow the pipeline's :class:`Catchup` policy: ``none`` skips them all; ``latest``
  runs only the newest missed one (on-time releases still run too); ``all`` runs
  them all up to ``catchup_limit`` per schedule, newest first, and skips the
  older ones. Hourly, down ten hours (watermark 00:30, now 10:30): 0 / 1 / 10
  releases due for none / latest / all. Missed releases carry ``late=True``.
* **Bounded cost.** A ``* * * * *`` schedule down for a year has half a million
  missed slots; the planner never enumerates them. Per schedule it looks at no
  more than the newest ``catchup_limit + skip_list_limit + 1`` missed fire times
  (fewer for ``none`` / ``latest``). The newest ``skip_list_limit`` skipped ones are
  listed as :class:`Release` records; anything older is reported as one
  :class:`SkippedRange` (at least one release, count not computed). A long gap
  is walked backwards from ``now - grace`` (``fire_times(..., newest_first=True)``).
  The normal tick, a gap of at most one minute per fire time needed (cron fires
  at most once a minute), is one forward pass per key.
* **Identity.** A schedule's ``key`` names its fire times: two schedules with the
  same key must fire at the same instants (``On.key`` is the cron expression and
  zone). The planner computes fire times once per key and tick, and a pipeline
  that lists the same schedule twice gets one release per slot.
* **Order.** ``Plan.due`` and ``Plan.skipped`` are sorted by
  ``(at, pipeline, schedule)``.

Times: ``Release.at`` is aware UTC (the claim key); ``Release.logical_date`` is the
same instant in the schedule's zone (``release.logical_date`` of the run), with the
right ``fold`` on a DST fall-back hour.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from itertools import islice
from operator import attrgetter
from typing import Protocol

from ..clock import ensure_utc

__all__ = [
    "Catchup",
    "Plan",
    "PlannedSchedule",
    "Release",
    "Schedule",
    "SkippedRange",
    "advance_watermark",
    "plan",
    "releases_between",
]

_UTC = timezone.utc


class Catchup(str, enum.Enum):
    """What to do with releases missed while the scheduler was not ticking."""

    NONE = "none"
    """Skip every missed release; only on-time releases run."""
    LATEST = "latest"
    """Run the newest missed release, skip the older ones (the default)."""
    ALL = "all"
    """Run every missed release, up to the catch-up limit per schedule."""

    def __str__(self) -> str:
        return self.value


class Schedule(Protocol):
    """What the planner needs from a schedule (``On`` implements it).

    ``key`` identifies the fire times: equal keys must mean equal fire times.
    ``fire_times(after, until)`` yields aware datetimes in ``(after, until]``, in
    increasing order, and with ``newest_first=True`` in decreasing order from
    ``until``; it is consumed lazily and only as far as needed, so a long gap
    costs a few steps backwards instead of a scan of every missed slot.
    """

    @property
    def key(self) -> str: ...

    @property
    def timezone(self) -> tzinfo: ...

    def fire_times(
        self, after: datetime, until: datetime, *, newest_first: bool = False
    ) -> Iterable[datetime]: ...


@dataclass(frozen=True)
class PlannedSchedule:
    """One schedule of one pipeline, with that pipeline's catch-up policy.

    ``catchup`` also accepts the template spelling (``"none"``, ``"latest"``,
    ``"all"``) and is stored as a :class:`Catchup`.
    """

    pipeline: str
    schedule: Schedule
    catchup: Catchup = Catchup.LATEST

    def __post_init__(self) -> None:
        if not isinstance(self.catchup, Catchup):
            object.__setattr__(self, "catchup", Catchup(self.catchup))


@dataclass(frozen=True, slots=True)
class Release:
    """One slot of one schedule of one pipeline.

    Attributes:
        pipeline: The pipeline name.
        schedule: The schedule's ``key``; with ``pipeline`` and ``at`` it is the
            release's claim key in the run store.
        at: The fire time, aware UTC.
        logical_date: The same instant in the schedule's zone. Compare instants
            through ``at``: inside a DST fall-back hour Python never finds an
            aware datetime equal to one of another zone (PEP 495).
        late: The release was missed (older than the grace period).
        reason: Why a missed release is due or skipped, for the log; ``None`` for
            an on-time release.
    """

    pipeline: str
    schedule: str
    at: datetime
    logical_date: datetime
    late: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SkippedRange:
    """Missed releases of one schedule skipped without being listed one by one.

    There is at least one, the newest at ``until``; all lie in ``(after, until]``.
    """

    pipeline: str
    schedule: str
    after: datetime
    until: datetime
    reason: str


@dataclass(frozen=True)
class Plan:
    """The outcome of one tick: what to release and what was skipped."""

    due: tuple[Release, ...] = ()
    """Releases to claim and dispatch, sorted by ``(at, pipeline, schedule)``."""
    skipped: tuple[Release, ...] = ()
    """Missed releases not run by policy, sorted like ``due``; each has a reason."""
    skipped_ranges: tuple[SkippedRange, ...] = ()
    """Older skipped releases summarised per schedule (see the module docstring)."""


_ORDER: Callable[[Release], tuple[datetime, str, str]] = attrgetter("at", "pipeline", "schedule")

# (at UTC, logical date) pairs
_Times = list[tuple[datetime, datetime]]


def advance_watermark(old: datetime | None, now: datetime) -> datetime:
    """Return the watermark after a tick at ``now``: ``max(old, now)``, aware UTC.

    The watermark never moves back, so a wall clock that steps back does not
    make already planned slots due again.
    """
    now = ensure_utc(now)
    if old is None:
        return now
    old = ensure_utc(old)
    return old if old > now else now


def plan(
    schedules: Iterable[PlannedSchedule],
    *,
    watermark: datetime | None,
    now: datetime,
    grace: timedelta = timedelta(seconds=60),
    catchup_limit: int = 100,
    skip_list_limit: int = 10,
) -> Plan:
    """Return the releases due in ``(watermark, now]`` (policy: module docstring).

    Args:
        schedules: Every schedule of every schedulable pipeline.
        watermark: The end of the previous tick's window; ``None`` on the very
            first start (nothing is due then). Naive values are taken as UTC.
        now: This tick's clock reading. Naive values are taken as UTC.
        grace: How old a release may be and still count as on time.
        catchup_limit: Most missed releases one schedule runs with
            ``catchup: all``; older ones are skipped.
        skip_list_limit: Most skipped releases listed individually per schedule;
            older ones are summarised in one :class:`SkippedRange`.

    Raises:
        ValueError: ``grace`` is negative, ``catchup_limit`` is below 1 or
            ``skip_list_limit`` is negative.
    """
    if grace < timedelta(0):
        raise ValueError(f"grace must not be negative, got {grace}")
    if catchup_limit < 1:
        raise ValueError(f"catchup_limit must be at least 1, got {catchup_limit}")
    if skip_list_limit < 0:
        raise ValueError(f"skip_list_limit must not be negative, got {skip_list_limit}")
    if watermark is None:
        return Plan()
    after = ensure_utc(watermark)
    until = ensure_utc(now)
    if until <= after:
        return Plan()

    cutoff = until - grace
    due: list[Release] = []
    skipped: list[Release] = []
    ranges: list[SkippedRange] = []
    scans: dict[tuple[str, int], tuple[_Times, _Times]] = {}
    spans: dict[int, timedelta] = {}
    seen: set[tuple[str, str]] = set()
    reasons = _Reasons(catchup_limit)

    for item in schedules:
        key = item.schedule.key
        if (item.pipeline, key) in seen:
            continue
        seen.add((item.pipeline, key))
        runs_missed = _missed_runs(item.catchup, catchup_limit)
        keep = runs_missed + skip_list_limit + 1
        scan = scans.get((key, keep))
        if scan is None:
            span = spans.get(keep)
            if span is None:
                span = spans[keep] = _first_window(keep, grace)
            scan = _scan(
                item.schedule, after=after, until=until, cutoff=cutoff, keep=keep, span=span
            )
            scans[key, keep] = scan
        on_time, missed = scan
        pipeline = item.pipeline
        for at, logical in on_time:
            due.append(Release(pipeline, key, at, logical))
        if not missed:
            continue
        if len(missed) == keep:
            marker = missed[0][0]
            missed = missed[1:]
            ranges.append(SkippedRange(pipeline, key, after, marker, reasons.skip(item.catchup)))
        split = max(len(missed) - runs_missed, 0)
        if split < len(missed):
            why_due = reasons.run(item.catchup)
            for at, logical in missed[split:]:
                due.append(Release(pipeline, key, at, logical, True, why_due))
        if split:
            why_skip = reasons.skip(item.catchup)
            for at, logical in missed[:split]:
                skipped.append(Release(pipeline, key, at, logical, True, why_skip))

    due.sort(key=_ORDER)
    skipped.sort(key=_ORDER)
    ranges.sort(key=attrgetter("until", "pipeline", "schedule"))
    return Plan(tuple(due), tuple(skipped), tuple(ranges))


def _missed_runs(catchup: Catchup, limit: int) -> int:
    """How many of a schedule's missed releases (the newest) the policy runs."""
    if catchup is Catchup.ALL:
        return limit
    return 1 if catchup is Catchup.LATEST else 0


class _Reasons:
    """The log wording of each decision, built once per plan."""

    def __init__(self, limit: int) -> None:
        self._skip = {
            Catchup.NONE: "missed (catchup=none)",
            Catchup.LATEST: "missed (catchup=latest: a newer missed release runs)",
            Catchup.ALL: f"beyond catchup limit {limit}",
        }
        self._run = {
            Catchup.LATEST: "a missed release, run late (catchup: latest)",
            Catchup.ALL: "a missed release, run late (catchup: all)",
        }

    def skip(self, catchup: Catchup) -> str:
        return self._skip[catchup]

    def run(self, catchup: Catchup) -> str:
        return self._run[catchup]


def _first_window(keep: int, grace: timedelta) -> timedelta:
    """The widest gap scanned forwards: ``keep`` one-minute slots, and the grace.

    Cron fires at most once a minute, so such a window rarely holds more than
    ``keep`` missed fire times; a wider gap is walked backwards instead.
    """
    return max(timedelta(minutes=keep), grace + timedelta(minutes=1))


def _scan(
    schedule: Schedule,
    *,
    after: datetime,
    until: datetime,
    cutoff: datetime,
    keep: int,
    span: timedelta,
) -> tuple[_Times, _Times]:
    """Return (every on-time fire time, the newest ``keep`` missed ones), increasing.

    A gap no wider than ``span`` (the normal tick) takes one forward pass over
    ``(after, until]``. A longer gap takes one forward pass over the on-time
    part and walks the missed part backwards from ``cutoff``, ``keep`` steps at most.
    """
    zone = schedule.timezone
    on_time: list[datetime] = []
    missed: list[datetime] = []
    if until - after <= span:
        for at in _forward(schedule, after, until):
            if at > cutoff:
                on_time.append(at)
            else:
                missed.append(at)
        return _zoned(on_time, zone), _zoned(missed[-keep:], zone)

    on_time = list(_forward(schedule, max(after, cutoff), until))
    if cutoff > after:
        newest = islice(schedule.fire_times(after, cutoff, newest_first=True), keep)
        missed = [at for at in map(_utc, newest) if after < at <= cutoff]
        missed.reverse()
    return _zoned(on_time, zone), _zoned(missed, zone)


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is _UTC else ensure_utc(at)


def _forward(schedule: Schedule, after: datetime, until: datetime) -> Iterator[datetime]:
    """Fire times in ``(after, until]`` as UTC; values outside it are dropped."""
    if until <= after:
        return
    for at in map(_utc, schedule.fire_times(after, until)):
        if after < at <= until:
            yield at


def _zoned(times: Sequence[datetime], zone: tzinfo) -> _Times:
    return [(at, at.astimezone(zone)) for at in times] if times else []


def releases_between(
    schedules: Iterable[PlannedSchedule], *, start: datetime, end: datetime
) -> Iterator[Release]:
    """Every release of ``schedules`` with ``start <= at < end``, oldest first, lazily.

    The range is half-open, so two ranges that meet (``[a, b)``, ``[b, c)``) share
    no release. Releases are made exactly as :func:`plan` makes on-time ones (the
    same identity and ``logical_date`` in the schedule's zone) and ordered by
    ``(at, pipeline, schedule)``; a pipeline listing a schedule twice gets one
    release per slot. Fire times are computed as they are consumed: a range of
    millions of slots costs constant memory (one pending fire time per schedule).
    Naive bounds are taken as UTC; the catch-up policy does not apply.
    """
    low = ensure_utc(start)
    high = ensure_utc(end)
    if high <= low:
        return iter(())
    seen: set[tuple[str, str]] = set()
    streams: list[Iterator[Release]] = []
    for item in schedules:
        ident = (item.pipeline, item.schedule.key)
        if ident in seen:
            continue
        seen.add(ident)
        streams.append(_between(item, low, high))
    return heapq.merge(*streams, key=_ORDER)


def _between(item: PlannedSchedule, low: datetime, high: datetime) -> Iterator[Release]:
    schedule, pipeline, key = item.schedule, item.pipeline, item.schedule.key
    zone = schedule.timezone
    before = low - timedelta(microseconds=1)  # fire_times is (after, until]: take ``low`` in
    for at in _forward(schedule, before, high):
        if at < high:
            yield Release(pipeline, key, at, at.astimezone(zone))
