"""Scheduler.tick / recover policies, driven by explicit instants (no sleeping).

The executor is a recording double: tests decide when a submitted run starts
and finishes, so "the daemon died right after a claim" is a state the test
builds on purpose, then hands the same store to a fresh Scheduler.
"""

from __future__ import annotations

import logging
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
from ddeutil.workflow.errors import WorkflowError
from ddeutil.workflow.loader import Loader, RawTemplate, template_version
from ddeutil.workflow.result import Status
from ddeutil.workflow.runs import ReleaseKey
from ddeutil.workflow.scheduling.scheduler import (
    INTERRUPTED_REASON,
    Scheduler,
    SchedulerState,
    TickReport,
)
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import MemoryRunStore, SqliteRunStore
from ddeutil.workflow.store.base import RunFilter, RunRecord, RunStore, TriggerKind
from ddeutil.workflow.store.ends import EndJournal, RunEnd

UTC = timezone.utc


def at(hh: int, mm: int = 0, ss: int = 0, day: int = 1) -> datetime:
    return datetime(2024, 1, day, hh, mm, ss, tzinfo=UTC)


class RecordingExecutor:
    """An Executor double: records submissions; the test starts/finishes runs.

    Like a real executor it looks each request's template up in its template
    source (the scheduler's) when the request is submitted.
    """

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.templates: Callable[[str, str | None], RawTemplate | None] = lambda n, v: None
        self.submitted: list[RunRequest] = []
        self.template_of: dict[str, RawTemplate] = {}
        self.events: list[RunEvent] = []
        self.started = False
        self.shutdown_timeout: float | None = None
        self._cond = threading.Condition()

    def start(self) -> None:
        self.started = True

    def submit(self, request: RunRequest) -> None:
        template = self.templates(request.pipeline, request.version)
        assert template is not None, f"no template for {request}"
        self.template_of[request.run_id] = template
        self.submitted.append(request)

    def submitted_ids(self) -> list[str]:
        return [r.run_id for r in self.submitted]

    def begin(self, run_id: str, now: datetime) -> None:
        assert self.store.mark_running(run_id, now=now)
        self._emit(RunEvent("started", run_id))

    def end(self, run_id: str, now: datetime, status: Status = Status.SUCCESS) -> None:
        self.store.mark_running(run_id, now=now)
        assert self.store.finish(run_id, status=status, now=now)
        self._emit(RunEvent("finished", run_id, status))

    def _emit(self, event: RunEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def drain_events(self) -> list[RunEvent]:
        with self._cond:
            out, self.events = self.events, []
            return out

    def wait_event(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: bool(self.events), timeout=timeout)

    def in_flight(self) -> int:
        return len(self.submitted)

    def capacity(self) -> int:
        return 1_000

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        return False

    def shutdown(self, timeout: float, *, reason: str | None = None) -> None:
        self.shutdown_timeout = timeout


@pytest.fixture
def store() -> Iterator[MemoryRunStore]:
    s = MemoryRunStore()
    yield s
    s.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


MakeScheduler = Callable[..., tuple[Scheduler, RecordingExecutor]]


@pytest.fixture
def make_scheduler(settings: Settings, clock: FakeClock) -> MakeScheduler:
    def _make(
        store: RunStore,
        *,
        settings_: Settings | None = None,
        start: bool = True,
        now: datetime | None = None,
    ) -> tuple[Scheduler, RecordingExecutor]:
        """Build (and start, at ``now``: default 10:00:30) a scheduler on ``store``."""
        conf = settings_ or settings
        clock.set(now or at(10, 0, 30))
        executor = RecordingExecutor(store)
        scheduler = Scheduler(
            settings=conf,
            store=store,
            executor=executor,
            clock=clock,
            loader=Loader.from_settings(conf),
            owner="test",
        )
        executor.templates = scheduler.template
        if start:
            scheduler.start()
        return scheduler, executor

    return _make


def pipeline_yaml(
    name: str,
    cron: str = "* * * * *",
    *,
    tz: str = "UTC",
    extra: str = "",
    params: str = "",
) -> str:
    return f"""
{name}:
  type: Pipeline
  on:
    - cronjob: "{cron}"
      timezone: "{tz}"
{extra}{params}  jobs:
    only:
      stages:
        - name: nothing
"""


def runs_for(store: RunStore, pipeline: str) -> list[RunRecord]:
    return store.list_runs(RunFilter(pipeline=pipeline), limit=10_000)


# -- lifecycle -------------------------------------------------------------------


def test_lifecycle_states_and_idempotent_start_stop(
    store: MemoryRunStore, make_scheduler: MakeScheduler
) -> None:
    scheduler, executor = make_scheduler(store, start=False)
    assert scheduler.state is SchedulerState.STOPPED
    scheduler.start()
    scheduler.start()
    assert scheduler.state is SchedulerState.RUNNING  # type: ignore[comparison-overlap]
    assert executor.started
    scheduler.stop(timeout=3)
    scheduler.stop(timeout=5)
    assert scheduler.state is SchedulerState.STOPPED
    assert executor.shutdown_timeout == 3
    assert scheduler.tick(at(0)).active is False
    with pytest.raises(WorkflowError, match="cannot be started again"):
        scheduler.start()


def test_stop_defaults_to_the_stop_timeout_setting(
    store: MemoryRunStore, make_scheduler: MakeScheduler, make_settings: Callable[..., Settings]
) -> None:
    conf = make_settings(WORKFLOW_APP_STOP_TIMEOUT="7.5")
    scheduler, executor = make_scheduler(store, settings_=conf)
    scheduler.stop()
    assert executor.shutdown_timeout == 7.5


def test_first_start_sets_the_watermark_so_only_later_slots_are_due(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("every-minute"))
    scheduler, executor = make_scheduler(store, now=at(10, 0, 30))
    assert store.get_watermark() == at(10, 0, 30)
    report = scheduler.tick(at(10, 1))
    assert [r.at for r in report.due] == [at(10, 1)]
    assert len(executor.submitted) == 1
    assert store.get_watermark() == at(10, 1)
    assert store.last_heartbeat() == (at(10, 1), "test")


def test_start_writes_a_heartbeat_before_the_first_tick(
    store: MemoryRunStore, make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    make_scheduler(store)
    assert store.last_heartbeat() == (clock.now(), "test")


# -- dispatch --------------------------------------------------------------------


def test_due_release_is_claimed_then_submitted_with_defaults_and_zoned_logical_date(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf(
        "p.yml",
        pipeline_yaml(
            "bkk",
            "0 * * * *",
            tz="Asia/Bangkok",
            params="  params:\n    mode:\n      type: str\n      default: delta\n",
        ),
    )
    scheduler, executor = make_scheduler(store, now=at(9, 59))
    report = scheduler.tick(at(10, 0, 0))
    assert [r.at for r in report.due] == [at(10)]
    (request,) = executor.submitted
    assert report.dispatched == (request.run_id,)
    assert request.params == {"mode": "delta"}
    assert request.trigger is TriggerKind.SCHEDULE
    assert request.logical_date == at(10)
    assert request.logical_date is not None
    assert request.logical_date.tzinfo == ZoneInfo("Asia/Bangkok")
    assert request.logical_date.hour == 17
    record = store.get_run(request.run_id)
    assert record is not None
    assert record.status is Status.PENDING
    assert record.release is not None
    assert record.release.at == at(10)
    assert record.params == {"mode": "delta"}


def test_a_release_is_dispatched_once_across_repeated_ticks(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("every-minute"))
    scheduler, executor = make_scheduler(store)
    scheduler.tick(at(10, 0, 30))
    for now in (at(10, 1), at(10, 1), at(10, 1, 30), at(10, 2)):
        scheduler.tick(now)
    releases = sorted(r.release.at for r in runs_for(store, "every-minute") if r.release)
    assert releases == [at(10, 1), at(10, 2)]
    assert len(executor.submitted) == 2


def test_second_scheduler_on_the_same_store_skips_claimed_releases(
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryRunStore(shared=True)
    write_conf("p.yml", pipeline_yaml("every-minute"))
    first, first_exec = make_scheduler(store)
    second, second_exec = make_scheduler(store)
    first.tick(at(10, 1))
    # The second daemon ticks at the same boundary, a moment later: the
    # pipeline's watermark moved with the claim, so nothing is planned again.
    report = second.tick(at(10, 1))
    assert report.due == ()
    assert second_exec.submitted == []
    assert len(first_exec.submitted) == 1
    # A release claimed before (here by a daemon that keeps no watermark of its
    # own) is refused, logged and not dispatched, whoever plans it.
    first_release = first_exec.submitted[0].release
    assert first_release is not None
    taken = ReleaseKey("every-minute", first_release.schedule, at(10, 2))
    assert store.claim(taken, run_id="older", params={}, logical_date=at(10, 2), now=at(10, 2))
    with caplog.at_level(logging.INFO, logger="ddeutil.workflow.scheduling.scheduler"):
        report = second.tick(at(10, 2))
    assert [r.at for r in report.already_claimed] == [at(10, 2)]
    assert second_exec.submitted == []
    assert "already claimed" in caplog.text


def test_restart_straddling_a_slot_runs_that_release_once(
    sqlite_url: str, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("hourly", "0 * * * *"))
    store_a = SqliteRunStore(sqlite_url.removeprefix("sqlite:///"))
    before, _ = make_scheduler(store_a, now=at(9, 30))
    before.tick(at(9, 59, 59))
    before.stop(timeout=0)
    store_a.close()

    store_b = SqliteRunStore(sqlite_url.removeprefix("sqlite:///"))
    after, executor = make_scheduler(store_b)
    report = after.tick(at(10, 0, 20))
    after.tick(at(10, 1, 0))
    assert [r.at for r in report.due] == [at(10)]
    assert [r.release.at for r in runs_for(store_b, "hourly") if r.release] == [at(10)]
    assert len(executor.submitted) == 1
    store_b.close()


@pytest.mark.parametrize(("catchup", "expected"), [("none", 0), ("latest", 1), ("all", 10)])
def test_ten_hours_down_with_an_hourly_pipeline(  # noqa: PLR0917
    catchup: str,
    expected: int,
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_conf("p.yml", pipeline_yaml("hourly", "0 * * * *", extra=f"  catchup: {catchup}\n"))
    scheduler, executor = make_scheduler(store, now=at(0, 30))
    with caplog.at_level(logging.INFO, logger="ddeutil.workflow.scheduling.scheduler"):
        report = scheduler.tick(at(10, 30))
    assert len(runs_for(store, "hourly")) == expected  # all claimed ...
    assert len(executor.submitted) == min(expected, 4)  # ... 4 in flight (poking)
    assert len(report.held) == max(expected - 4, 0)
    assert len(report.due) + len(report.missed) == 10
    logged = caplog.text.count("release due") + caplog.text.count("release skipped")
    assert logged == 10
    if expected == 1:
        assert executor.submitted[0].logical_date == at(10)


def test_wall_clock_stepping_back_five_minutes_runs_nothing_twice(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("every-minute"))
    scheduler, executor = make_scheduler(store)
    scheduler.tick(at(10, 0, 30))
    for minute in range(1, 11):
        scheduler.tick(at(10, minute))
    assert store.get_watermark() == at(10, 10)
    for minute in range(5, 10):  # the clock stepped back to 10:05
        report = scheduler.tick(at(10, minute, 1))
        assert report.due == ()
        assert store.get_watermark() == at(10, 10)
    assert scheduler.tick(at(10, 10, 1)).due == ()
    scheduler.tick(at(10, 11, 1))
    releases = [r.release.at for r in runs_for(store, "every-minute") if r.release]
    assert sorted(releases) == [at(10, m) for m in range(1, 12)]
    assert len({r.logical_date for r in executor.submitted}) == len(executor.submitted)


# -- crash recovery ----------------------------------------------------------------


def test_recovery_after_the_daemon_died_right_after_claims(
    sqlite_url: str, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("a.yml", pipeline_yaml("not-started"))
    write_conf("b.yml", pipeline_yaml("started"))
    path = sqlite_url.removeprefix("sqlite:///")
    dead_store = SqliteRunStore(path)
    dead, dead_exec = make_scheduler(dead_store)
    dead.tick(at(10, 0, 30))
    dead.tick(at(10, 1))
    by_pipeline = {r.pipeline: r.run_id for r in dead_exec.submitted}
    dead_exec.begin(by_pipeline["started"], at(10, 1, 1))
    # kill -9 here: no stop(), the store is simply abandoned

    store = SqliteRunStore(path)
    alive, executor = make_scheduler(store)
    assert executor.submitted_ids() == [by_pipeline["not-started"]]
    interrupted = store.get_run(by_pipeline["started"])
    assert interrupted is not None
    assert interrupted.status is Status.FAILED
    assert interrupted.error is not None
    assert INTERRUPTED_REASON in interrupted.error
    executor.end(by_pipeline["not-started"], at(10, 1, 30))
    for minute in (1, 2):
        alive.tick(at(10, minute, 5))
    for name in ("not-started", "started"):
        at_1001 = [r for r in runs_for(store, name) if r.release and r.release.at == at(10, 1)]
        assert len(at_1001) == 1, name
    assert by_pipeline["started"] not in executor.submitted_ids()
    finished = store.get_run(by_pipeline["not-started"])
    assert finished is not None
    assert finished.status is Status.SUCCESS
    dead_store.close()
    store.close()


def test_recovery_redispatches_pending_claims_oldest_first_with_defaults(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf(
        "p.yml",
        pipeline_yaml(
            "catchup",
            extra="  catchup: all\n",
            params="  params:\n    n:\n      type: int\n      default: 3\n",
        ),
    )
    first, first_exec = make_scheduler(store, now=at(10))
    first.tick(at(10, 5, 1))
    assert len(first_exec.submitted) == 4  # poking limit 4 of the 5 due

    _second, executor = make_scheduler(store)
    assert [r.logical_date for r in executor.submitted] == [at(10, m) for m in range(1, 5)]
    assert all(r.params == {"n": 3} for r in executor.submitted)


def test_recovery_fails_a_pending_claim_whose_pipeline_is_gone(
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
) -> None:
    path = write_conf("p.yml", pipeline_yaml("gone"))
    first, first_exec = make_scheduler(store)
    first.tick(at(10, 0, 30))
    first.tick(at(10, 1))
    (request,) = first_exec.submitted
    path.unlink()
    _, executor = make_scheduler(store)
    assert executor.submitted == []
    record = store.get_run(request.run_id)
    assert record is not None
    assert record.status is Status.FAILED
    assert "not in the conf folder" in (record.error or "")


def test_recovery_leaves_api_runs_alone(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("api"))
    store.create_run(run_id="api-1", pipeline="api", trigger=TriggerKind.API, params={}, now=at(9))
    store.create_run(run_id="api-2", pipeline="api", trigger=TriggerKind.API, params={}, now=at(9))
    store.mark_running("api-2", now=at(9))
    _, executor = make_scheduler(store)
    assert executor.submitted == []
    assert store.get_run("api-1").status is Status.PENDING  # type: ignore[union-attr]
    assert store.get_run("api-2").status is Status.RUNNING  # type: ignore[union-attr]


def test_recovery_records_journaled_ends_before_closing_interrupted_runs(
    sqlite_url: str,
    settings: Settings,
    clock: FakeClock,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
) -> None:
    write_conf("p.yml", pipeline_yaml("done"))
    store = SqliteRunStore(sqlite_url.removeprefix("sqlite:///"))
    dead, dead_exec = make_scheduler(store)
    dead.tick(at(10, 1))
    run_id = dead_exec.submitted_ids()[0]
    dead_exec.begin(run_id, at(10, 1, 1))
    # the run succeeded but the full disk refused its end: it reached only the journal
    journal = EndJournal.for_store(settings, sqlite_url)
    journal.append(RunEnd(run_id, Status.SUCCESS, at(10, 1, 2), {"params": {}, "jobs": {}}))

    clock.set(at(10, 2, 30))
    Scheduler(
        settings=settings,
        store=store,
        executor=RecordingExecutor(store),
        clock=clock,
        loader=Loader.from_settings(settings),
        owner="test",
        journal=journal,
    ).start()

    run = store.get_run(run_id)
    assert run is not None
    assert (run.status, run.error) == (Status.SUCCESS, None)
    store.close()


# -- overlap and fan-out -------------------------------------------------------------


def test_concurrency_skip_records_a_skipped_release_while_a_run_is_in_flight(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("skipper", extra="  concurrency: skip\n"))
    scheduler, executor = make_scheduler(store)
    scheduler.tick(at(10, 0, 30))
    first = scheduler.tick(at(10, 1)).dispatched
    executor.begin(first[0], at(10, 1))
    report = scheduler.tick(at(10, 2))
    assert report.dispatched == ()
    (skipped_id,) = report.skipped
    skipped = store.get_run(skipped_id)
    assert skipped is not None
    assert skipped.status is Status.SKIPPED
    assert "concurrency: skip" in (skipped.error or "")
    executor.end(first[0], at(10, 2, 30))
    report = scheduler.tick(at(10, 3))
    assert len(report.dispatched) == 1
    assert report.skipped == ()


def test_concurrency_queue_holds_claimed_releases_until_the_previous_run_ends(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("queued", extra="  concurrency: queue\n"))
    scheduler, executor = make_scheduler(store)
    scheduler.tick(at(10, 0, 30))
    (first,) = scheduler.tick(at(10, 1)).dispatched
    report = scheduler.tick(at(10, 2))
    (held,) = report.held
    assert executor.submitted_ids() == [first]
    held_record = store.get_run(held)
    assert held_record is not None
    assert held_record.status is Status.PENDING  # claimed: a crash would not lose it
    executor.end(first, at(10, 2, 10))
    scheduler.process_events()
    assert executor.submitted_ids() == [first, held]


def test_max_pipeline_poking_bounds_releases_in_flight_and_keeps_order(
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    make_settings: Callable[..., Settings],
    write_conf: Callable[..., Path],
) -> None:
    write_conf("p.yml", pipeline_yaml("fan", extra="  catchup: all\n"))
    conf = make_settings(WORKFLOW_CORE_MAX_PIPELINE_POKING="2")
    scheduler, executor = make_scheduler(store, settings_=conf, now=at(10))
    report = scheduler.tick(at(10, 6, 1))
    assert len(report.due) == 6
    assert len(report.dispatched) == 2
    assert len(report.held) == 4
    order = [r.logical_date for r in executor.submitted]
    assert order == [at(10, 1), at(10, 2)]
    executor.end(executor.submitted[0].run_id, at(10, 6, 2))
    executor.end(executor.submitted[1].run_id, at(10, 6, 2))
    scheduler.process_events()
    order = [r.logical_date for r in executor.submitted]
    assert order == [at(10, m) for m in range(1, 5)]


def test_a_lost_finish_event_is_reconciled_from_the_store(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("queued", extra="  concurrency: queue\n"))
    scheduler, _executor = make_scheduler(store)
    scheduler.tick(at(10, 0, 30))
    (first,) = scheduler.tick(at(10, 1)).dispatched
    (held,) = scheduler.tick(at(10, 2)).held
    store.mark_running(first, now=at(10, 2))
    store.finish(first, status=Status.FAILED, now=at(10, 2), error="worker process died")
    report = scheduler.tick(at(10, 3))
    assert held in report.dispatched


# -- planning ahead of the boundary -------------------------------------------------


def test_a_tick_at_the_prepared_boundary_sends_the_requests_made_ahead(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("a") + pipeline_yaml("b"))
    scheduler, executor = make_scheduler(store)
    scheduler.prepare(at(10, 1))
    report = scheduler.tick(at(10, 1) + timedelta(microseconds=150))
    ahead = executor.submitted

    assert [r.pipeline for r in ahead] == ["a", "b"]
    assert list(report.dispatched) == [r.run_id for r in ahead]
    # made ahead: the run ids carry the boundary's time (the clock still reads 10:00:30)
    assert all(r.run_id.startswith("20240101T100100-") for r in ahead)
    assert [r.logical_date for r in executor.submitted] == [at(10, 1)] * 2
    for request in ahead:
        record = store.get_run(request.run_id)
        assert record is not None
        assert record.release == request.release


def test_the_plan_made_ahead_equals_the_plan_made_at_the_tick(
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
) -> None:
    write_conf(
        "p.yml", pipeline_yaml("a", "*/2 * * * *") + pipeline_yaml("b", extra="  catchup: all\n")
    )
    reports = []
    for prepared in (True, False):
        store = MemoryRunStore()
        scheduler, _ = make_scheduler(store, now=at(9, 55))
        if prepared:
            scheduler.prepare(at(10, 2))
        reports.append(scheduler.tick(at(10, 2, 0) + timedelta(milliseconds=3)))
        store.close()
    ahead, fresh = reports
    assert ahead.due == fresh.due
    assert ahead.missed == fresh.missed
    assert len(ahead.dispatched) == len(fresh.dispatched)
    assert len(ahead.held) == len(fresh.held)


def test_a_tick_after_the_prepared_boundary_adds_what_is_due_since(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("a"))
    scheduler, executor = make_scheduler(store)
    scheduler.prepare(at(10, 1))
    report = scheduler.tick(at(10, 2))  # the 10:01 tick never happened

    # the 10:01 release went out ahead; the tick adds the on-time 10:02 one
    assert [r.at for r in report.due] == [at(10, 1), at(10, 2)]
    assert [r.logical_date for r in executor.submitted] == [at(10, 1), at(10, 2)]
    assert list(report.dispatched) == [r.run_id for r in executor.submitted]
    ahead, later = executor.submitted
    assert ahead.run_id.startswith("20240101T100100-")
    assert not later.run_id.startswith("20240101T100100-")
    assert len(runs_for(store, "a")) == 2  # each release claimed once


def test_a_reload_after_prepare_plans_again_with_the_new_conf(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("a"))
    scheduler, executor = make_scheduler(store)
    scheduler.prepare(at(10, 1))
    write_conf("q.yml", pipeline_yaml("added"))
    scheduler.request_reload()
    report = scheduler.tick(at(10, 1))

    assert report.reloaded
    # 10:01 of "a" went out ahead (claimed once); the added pipeline runs at 10:01 too
    assert sorted(r.pipeline for r in executor.submitted) == ["a", "added"]
    assert len(runs_for(store, "a")) == 1
    assert store.get_watermark() == at(10, 1)
    scheduler.tick(at(10, 2))
    assert sorted(r.pipeline for r in executor.submitted[2:]) == ["a", "added"]


def test_a_held_release_made_ahead_runs_the_version_loaded_when_it_starts(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("queued", extra="  concurrency: queue\n"))
    scheduler, executor = make_scheduler(store)
    (first,) = scheduler.tick(at(10, 1)).dispatched
    scheduler.prepare(at(10, 2))
    (held,) = scheduler.tick(at(10, 2)).held
    write_conf("p.yml", pipeline_yaml("queued", extra="  concurrency: queue\n  desc: v2\n"))
    scheduler.request_reload()
    scheduler.tick(at(10, 2, 30))
    executor.end(first, at(10, 2, 40))
    scheduler.process_events()

    started = executor.submitted[-1]
    assert started.run_id == held
    template = executor.template_of[started.run_id]
    assert template.data["desc"] == "v2"
    assert started.version == template_version(template)


# -- conf loading -------------------------------------------------------------------


def test_broken_template_is_logged_and_skipped_not_fatal(
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_conf("good.yml", pipeline_yaml("good"))
    write_conf("bad.yml", pipeline_yaml("bad", "not a cron"))
    with caplog.at_level(logging.ERROR, logger="ddeutil.workflow.scheduling.catalog"):
        scheduler, executor = make_scheduler(store)
    assert "bad" in caplog.text
    assert "bad.yml" in caplog.text
    assert set(scheduler.pipelines) == {"good"}
    scheduler.tick(at(10, 0, 30))
    scheduler.tick(at(10, 1))
    assert [r.pipeline for r in executor.submitted] == ["good"]


def test_changed_conf_is_picked_up_at_the_next_tick(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("a.yml", pipeline_yaml("a"))
    scheduler, executor = make_scheduler(store)
    scheduler.tick(at(10, 0, 30))
    write_conf("b.yml", pipeline_yaml("b"))
    report = scheduler.tick(at(10, 1))
    assert report.reloaded
    assert sorted(r.pipeline for r in executor.submitted) == ["a", "b"]
    assert not scheduler.tick(at(10, 2)).reloaded


def test_an_edit_that_no_longer_validates_keeps_the_last_good_version(
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_conf("p.yml", pipeline_yaml("edited", "0 * * * *"))
    scheduler, executor = make_scheduler(store, now=at(9, 30))
    write_conf("p.yml", pipeline_yaml("edited", "0 * * * * * * *  bogus"))
    with caplog.at_level(logging.ERROR, logger="ddeutil.workflow.scheduling.catalog"):
        report = scheduler.tick(at(10, 0, 5))
    assert report.reloaded
    assert "last good version" in caplog.text
    assert "p.yml" in caplog.text
    assert [r.logical_date for r in executor.submitted] == [at(10)]
    assert "edited" in scheduler.pipelines


def test_a_yaml_syntax_error_keeps_the_last_good_version(
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_conf("p.yml", pipeline_yaml("edited", "0 * * * *"))
    scheduler, executor = make_scheduler(store, now=at(9, 30))
    write_conf("p.yml", "edited: [unclosed\n")
    with caplog.at_level(logging.ERROR, logger="ddeutil.workflow.scheduling.catalog"):
        scheduler.tick(at(10, 0, 5))
    assert "last good version" in caplog.text
    assert len(executor.submitted) == 1


def laughs(levels: int) -> str:
    """Top-level anchors ``a0`` .. ``a<levels>``, each ten aliases of the one before."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * 10) + "]"]
    lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_in_the_conf_folder_does_not_delay_the_tick(
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_conf("steady.yml", pipeline_yaml("steady"))
    write_conf("edited.yml", pipeline_yaml("edited"))
    scheduler, executor = make_scheduler(store, now=at(10, 0, 30))
    assert [r.at for r in scheduler.tick(at(10, 1)).due] == [at(10, 1), at(10, 1)]
    write_conf("bomb.yml", laughs(6))  # 11 million nodes expanded, 400 bytes of text
    write_conf("edited.yml", laughs(6).replace("a", "b") + pipeline_yaml("edited"))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with caplog.at_level(logging.ERROR, logger="ddeutil.workflow.scheduling.catalog"):
            report = scheduler.tick(at(10, 2))
        seconds = time.perf_counter() - started
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert report.reloaded
    assert sorted(r.pipeline for r in report.due) == ["edited", "steady"]
    assert len(executor.submitted) == 4
    assert "WORKFLOW_CORE_CONF_MAX_NODES" in caplog.text
    assert "edited no longer loads: keeping its last good version" in caplog.text
    assert seconds < 5  # the reload is bounded: milliseconds, not minutes
    assert peak_mb < 30


def test_scheduled_runs_carry_the_template_version_so_workers_reuse_the_pipeline(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("versioned"))
    scheduler, executor = make_scheduler(store)
    scheduler.tick(at(10, 1))
    scheduler.tick(at(10, 2))
    write_conf("p.yml", pipeline_yaml("versioned", extra="  desc: edited\n"))
    scheduler.request_reload()
    scheduler.tick(at(10, 3))

    versions = [r.version for r in executor.submitted]
    templates = [executor.template_of[r.run_id] for r in executor.submitted]
    assert versions == [template_version(t) for t in templates]
    assert versions[0] == versions[1]
    assert versions[2] != versions[1]
    assert templates[2].data["desc"] == "edited"


def test_a_release_after_a_broken_edit_runs_the_last_good_version(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("kept", extra="  desc: good\n"))
    scheduler, executor = make_scheduler(store)
    scheduler.tick(at(10, 1))
    write_conf("p.yml", pipeline_yaml("kept", extra="  desc: bad\n  concurrency: sideways\n"))
    scheduler.request_reload()
    scheduler.tick(at(10, 2))

    first, second = executor.submitted
    assert second.version == first.version
    assert executor.template_of[second.run_id].data["desc"] == "good"
    assert scheduler.template("kept", "some other version") is None
    assert scheduler.template("missing", None) is None


def test_request_reload_forces_a_reload_without_changes(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("p"))
    scheduler, _ = make_scheduler(store)
    assert not scheduler.tick(at(10, 0, 30)).reloaded
    scheduler.request_reload()
    assert scheduler.tick(at(10, 0, 40)).reloaded
    assert not scheduler.tick(at(10, 0, 50)).reloaded


def test_required_param_without_default_is_not_scheduled_and_logged_once(
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_conf("p.yml", pipeline_yaml("needs-input", params="  params:\n    source: str\n"))
    with caplog.at_level(logging.WARNING, logger="ddeutil.workflow.scheduling.catalog"):
        scheduler, executor = make_scheduler(store)
        scheduler.tick(at(10, 0, 30))
        scheduler.tick(at(10, 1))
        scheduler.request_reload()
        scheduler.tick(at(10, 2))
    assert executor.submitted == []
    assert runs_for(store, "needs-input") == []
    warnings = [r for r in caplog.records if "not scheduled" in r.getMessage()]
    assert len(warnings) == 1
    assert "source" in warnings[0].getMessage()


def test_tick_report_is_typed_and_counts_events(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("p"))
    scheduler, executor = make_scheduler(store)
    scheduler.tick(at(10, 0, 30))
    (run_id,) = scheduler.tick(at(10, 1)).dispatched
    executor.end(run_id, at(10, 1, 10))
    report = scheduler.tick(at(10, 1, 20))
    assert isinstance(report, TickReport)
    assert [e.run_id for e in report.events] == [run_id]
    assert report.watermark == at(10, 1, 20)


def test_heartbeat_follows_each_tick(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    scheduler, _ = make_scheduler(store)
    for minute in range(3):
        scheduler.tick(at(10, minute) + timedelta(milliseconds=5))
        assert store.last_heartbeat() == (at(10, minute) + timedelta(milliseconds=5), "test")


def test_a_lost_finish_event_does_not_skip_a_skip_pipeline_forever(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("skipper", extra="  concurrency: skip\n"))
    scheduler, _executor = make_scheduler(store)
    (first,) = scheduler.tick(at(10, 1)).dispatched
    store.mark_running(first, now=at(10, 1))
    store.finish(first, status=Status.FAILED, now=at(10, 1, 30), error="worker process died")
    report = scheduler.tick(at(10, 2))
    assert report.skipped == ()
    assert len(report.dispatched) == 1


def test_prepare_does_the_conf_check_ahead_of_the_tick(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("a.yml", pipeline_yaml("a"))
    scheduler, executor = make_scheduler(store)
    write_conf("b.yml", pipeline_yaml("b"))
    assert scheduler.prepare() is True
    report = scheduler.tick(at(10, 1))
    assert report.reloaded
    assert sorted(r.pipeline for r in executor.submitted) == ["a", "b"]
    assert scheduler.prepare() is False
    write_conf("c.yml", pipeline_yaml("c"))  # saved between the check and the tick
    assert not scheduler.tick(at(10, 2)).reloaded
    assert scheduler.tick(at(10, 3)).reloaded  # picked up one tick later
    assert "c" in scheduler.pipelines


def test_prepare_does_nothing_unless_running(
    store: MemoryRunStore, make_scheduler: MakeScheduler
) -> None:
    scheduler, _ = make_scheduler(store, start=False)
    assert scheduler.prepare() is False


def test_the_tick_after_a_dispatch_ahead_leaves_the_store_alone_when_nothing_more_is_due(
    store: MemoryRunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("a"))
    scheduler, executor = make_scheduler(store)
    scheduler.prepare(at(10, 1))
    assert store.get_watermark() == at(10, 1)  # written ahead, with the heartbeat

    writes: list[str] = []
    claim_round = store.claim_round

    def beat(**kwargs: Any) -> bool:
        writes.append("heartbeat")
        return True

    def round_(*args: Any, **kwargs: Any) -> Any:
        writes.append("claim round")
        return claim_round(*args, **kwargs)

    store.set_watermark = lambda at: writes.append("watermark")  # type: ignore[method-assign]
    store.heartbeat = beat  # type: ignore[method-assign]
    store.claim_round = round_  # type: ignore[method-assign]
    report = scheduler.tick(at(10, 1) + timedelta(milliseconds=3))

    assert writes == []  # the runs starting now have the store to themselves
    assert [r.at for r in report.due] == [at(10, 1)]
    assert len(executor.submitted) == 1
    scheduler.tick(at(10, 2))  # the next boundary plans from 10:01: nothing lost
    assert [r.logical_date for r in executor.submitted] == [at(10, 1), at(10, 2)]
    assert writes == ["heartbeat", "claim round"]  # the watermarks move with the claims
    assert store.get_watermark() == at(10, 2)


# -- quiet pipelines (the due index) ------------------------------------------------


class _CountingStore(MemoryRunStore):
    """Counts the pipelines each claim round shows its ``decide`` callback."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[int] = []

    def claim_round(self, pipelines: Any, **kwargs: Any) -> Any:
        decide = kwargs["decide"]

        def counting(view: Any) -> Any:
            self.shown[-1] += len(view.watermarks)
            return decide(view)

        self.shown.append(0)
        return super().claim_round(pipelines, **{**kwargs, "decide": counting})


def _at(run: RunRecord) -> datetime:
    assert run.release is not None
    return run.release.at


def test_a_round_plans_only_pipelines_with_a_release_due_and_misses_none(
    make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf(
        "p.yml", pipeline_yaml("daily", "3 10 * * *") + pipeline_yaml("often", "*/2 * * * *")
    )
    store = _CountingStore()
    scheduler, _ = make_scheduler(store, now=at(10, 0, 30))
    for minute in range(1, 7):
        scheduler.tick(at(10, minute))
    assert [_at(r) for r in runs_for(store, "daily")] == [at(10, 3)]
    assert sorted(_at(r) for r in runs_for(store, "often")) == [at(10, 2), at(10, 4), at(10, 6)]
    # First round: both learned; then only a pipeline with a release due is planned.
    assert store.shown == [2, 1, 1, 1, 0, 1]
    assert store.get_watermark() == at(10, 6)


def test_a_schedule_edited_while_quiet_runs_from_its_edit_not_from_the_past(
    make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    """A quiet pipeline's watermark still moves every round: an edit that puts a fire
    time in the minutes already passed does not run it late (catchup: latest)."""
    write_conf("p.yml", pipeline_yaml("daily", "0 9 * * *"))
    store = MemoryRunStore()
    scheduler, _ = make_scheduler(store, now=at(10, 0, 30))
    for minute in range(1, 5):
        scheduler.tick(at(10, minute))
    write_conf("p.yml", pipeline_yaml("daily", "2,6 10 * * *"))  # 10:02 passed quietly
    scheduler.request_reload()
    scheduler.tick(at(10, 5))
    assert runs_for(store, "daily") == []
    scheduler.tick(at(10, 6))
    assert [_at(r) for r in runs_for(store, "daily")] == [at(10, 6)]
