"""A schedule's ``jitter:``: parsing, the per-release offset, and the scheduler holding
a jittered release until its start (driven by explicit instants, no sleeping)."""

from __future__ import annotations

import argparse
import io
import json
import logging
import pickle
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.cli import CliContext
from ddeutil.workflow.cli import templates as cli_templates
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.engine.schema import SCHEDULE_SCHEMA
from ddeutil.workflow.errors import ScheduleError
from ddeutil.workflow.loader import Loader, RawTemplate
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.metrics import NullMeter
from ddeutil.workflow.notify.late import record_missed
from ddeutil.workflow.result import Status
from ddeutil.workflow.runs import ReleaseKey, TriggerKind
from ddeutil.workflow.schedules.cron_schedule import CronSchedule
from ddeutil.workflow.schedules.jitter import (
    MAX_JITTER,
    format_seconds,
    jitter_offset,
    parse_jitter,
    start_of,
)
from ddeutil.workflow.schedules.on import On
from ddeutil.workflow.schedules.planner import Catchup
from ddeutil.workflow.scheduling.catalog import PipelineCatalog
from ddeutil.workflow.scheduling.scheduler import Scheduler
from ddeutil.workflow.scheduling.tick_report import log_next_releases
from ddeutil.workflow.scheduling.validation import Concurrency, PipelineFacts
from ddeutil.workflow.scheduling.validator_process import _from_wire, _to_wire
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import MemoryRunStore, SqliteRunStore
from ddeutil.workflow.store.base import Claim, RunStore
from test_scheduler import (
    MakeScheduler,
    RecordingExecutor,
    at,
    make_scheduler,
    runs_for,
    sqlite_url,
    store,
)

__all__ = ["make_scheduler", "sqlite_url", "store"]  # fixtures, imported for the tests below

HOURLY = "0 * * * *@UTC"
SCHEDULER_LOG = "ddeutil.workflow.scheduling.scheduler"


def jittered_yaml(name: str, jitter: str = "30m", cron: str = "0 * * * *", extra: str = "") -> str:
    return f"""
{name}:
  type: Pipeline
  on:
    - cronjob: "{cron}"
      timezone: "UTC"
      jitter: {jitter}
{extra}  jobs:
    only:
      stages:
        - name: nothing
"""


# -- parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1m30s", 90),
        ("1h0m0s", 3600),
        ("45", 45),
        (" 2M ", 120),
        (0, 0),
        ("0s", 0),
        (None, 0),
    ],
)
def test_jitter_values(value: Any, seconds: int) -> None:
    assert parse_jitter(value) == seconds


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2h", "between 0 and 1h"),
        (3601, "between 0 and 1h"),
        ("61m", "between 0 and 1h"),
        (-5, "between 0 and 1h"),
        ("-5s", "a duration"),
        ("30 s", "a duration"),
        ("s", "a duration"),
        ("", "a duration"),
        ("1s1m", "a duration"),
        ("soon", "a duration"),
        (1.5, "a duration"),
        (True, "a duration"),
        ([30], "a duration"),
        ("\u0663\u0660", "a duration"),  # Arabic-Indic 30: digits are ASCII, as in cron
        ("\uff13\uff10s", "a duration"),  # fullwidth 30s
        ("30s\u00a0", "a duration"),  # a no-break space is not blank
    ],
)
def test_bad_jitter_names_the_key_and_the_value(value: Any, reason: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        On.parse({"cron": "0 * * * *", "jitter": value}, default_tz="UTC")
    assert caught.value.key == "jitter"
    assert reason in caught.value.message
    assert repr(value) in caught.value.message


def test_a_schedule_template_with_bad_jitter_is_located(
    write_conf: Callable[..., Path], settings: Settings
) -> None:
    path = write_conf("on.yml", 'every_hour:\n  type: On\n  cron: "0 * * * *"\n  jitter: 2h\n')
    with pytest.raises(ScheduleError) as caught:
        On.from_loader("every_hour", settings=settings)
    assert caught.value.key == "jitter"
    assert caught.value.template == "every_hour"
    assert caught.value.file == str(path)
    assert "'2h'" in str(caught.value)


def test_jitter_is_kept_by_on_and_cron_schedule_but_not_in_the_key() -> None:
    on = On.parse({"cron": "0 * * * *", "jitter": "1m30s"}, default_tz="UTC")
    plain = On.parse({"cron": "0 * * * *"}, default_tz="UTC")
    assert (on.jitter, plain.jitter) == (90, 0)
    assert on.key == plain.key == HOURLY  # claims do not change with the jitter
    assert on.model_copy(update={"timezone": "Asia/Bangkok"}).jitter == 90
    record = CronSchedule.of(on)
    assert record.jitter == 90
    assert record.key == HOURLY
    assert pickle.loads(pickle.dumps(record)).jitter == 90
    assert CronSchedule.parse("0 * * * *", "UTC", None, 90) == record


def test_the_validator_helper_carries_the_jitter(write_conf: Callable[..., Path]) -> None:
    facts = PipelineFacts(
        schedules=(CronSchedule.parse("0 * * * *", "UTC", "hourly", 45),),
        concurrency=Concurrency.ALLOW,
        catchup=Catchup.LATEST,
        defaults={},
    )
    path = write_conf("x.yml", "x:\n  type: Pipeline\n")
    template = RawTemplate(name="x", type="Pipeline", data={}, file=path)
    back = _from_wire(pickle.loads(pickle.dumps(_to_wire(facts))), template)
    assert isinstance(back, PipelineFacts)
    assert [(s.key, s.name, s.jitter) for s in back.schedules] == [(HOURLY, "hourly", 45)]


def test_the_json_schema_describes_jitter() -> None:
    spec = SCHEDULE_SCHEMA["properties"]["jitter"]
    assert spec["maximum"] == MAX_JITTER
    assert "1h" in spec["description"]


# -- the offset --------------------------------------------------------------------


def test_offset_is_deterministic_in_range_and_varies() -> None:
    fires = [at(0) + timedelta(hours=h) for h in range(500)]
    offsets = [jitter_offset("p", HOURLY, t, 30) for t in fires]
    assert offsets == [jitter_offset("p", HOURLY, t, 30) for t in fires]
    assert all(0 <= o < 30 for o in offsets)
    assert len(set(offsets)) == 30  # every second of the window is used
    others = [jitter_offset("q", HOURLY, t, 30) for t in fires]
    assert others != offsets  # two pipelines on one schedule spread apart
    # a stable hash: the same in every process and on every daemon (hash() is salted)
    assert jitter_offset("p", HOURLY, at(10), 3600) == 1495
    assert start_of("p", HOURLY, at(10), 3600) == at(10) + timedelta(seconds=1495)


def test_no_jitter_means_no_offset() -> None:
    assert jitter_offset("p", HOURLY, at(10), 0) == 0
    assert jitter_offset("p", HOURLY, at(10), 1) == 0
    assert start_of("p", HOURLY, at(10), 0) == at(10)


def test_the_offset_depends_on_the_instant_not_its_zone() -> None:
    from zoneinfo import ZoneInfo

    local = at(10).astimezone(ZoneInfo("Asia/Bangkok"))
    assert jitter_offset("p", HOURLY, local, 600) == jitter_offset("p", HOURLY, at(10), 600)


@pytest.mark.parametrize(
    ("seconds", "text"), [(17, "17s"), (60, "1m"), (90, "1m30s"), (3600, "1h"), (0, "0s")]
)
def test_format_seconds(seconds: int, text: str) -> None:
    assert format_seconds(seconds) == text
    assert parse_jitter(text) == seconds


# -- the scheduler -----------------------------------------------------------------


def _offset(pipeline: str, fire: datetime, jitter: int = 1800) -> int:
    offset = jitter_offset(pipeline, HOURLY, fire, jitter)
    assert offset > 60, "pick a pipeline name whose offset is more than a minute"
    return offset


def test_a_jittered_release_is_claimed_at_its_fire_time_and_started_at_its_offset(
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_conf("p.yml", jittered_yaml("spread"))
    start = at(10) + timedelta(seconds=_offset("spread", at(10)))
    scheduler, executor = make_scheduler(store, now=at(9, 30))
    clock.set(at(10))
    with caplog.at_level(logging.INFO, logger=SCHEDULER_LOG):
        report = scheduler.tick(at(10))
    assert [r.at for r in report.due] == [at(10)]
    (run,) = runs_for(store, "spread")
    assert run.status is Status.PENDING  # claimed at its fire time, keyed by it
    assert run.release is not None
    assert run.release.at == at(10)
    assert executor.submitted == []
    assert (scheduler.held, scheduler.next_start) == (1, start)
    assert f"release held for its jitter: starts at {start.isoformat()}" in caplog.text

    clock.set(start - timedelta(seconds=1))
    assert scheduler.start_held() == []
    assert scheduler.tick(at(10, 1)).dispatched == ()  # the next tick does not start it either
    assert executor.submitted == []

    clock.set(start)
    assert scheduler.start_held() == [run.run_id]
    (request,) = executor.submitted
    assert request.logical_date == at(10)  # the release keeps its time
    assert request.release == ReleaseKey("spread", HOURLY, at(10))
    assert scheduler.held == 0
    assert scheduler.next_start is None
    assert scheduler.start_held(start + timedelta(minutes=5)) == []
    for minute in range(2, 6):
        scheduler.tick(at(10, minute))
    assert len(executor.submitted) == 1
    assert len(runs_for(store, "spread")) == 1


def test_without_jitter_a_release_goes_to_the_executor_at_once(
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    clock: FakeClock,
) -> None:
    write_conf("p.yml", jittered_yaml("plain", jitter="0"))
    scheduler, executor = make_scheduler(store, now=at(9, 30))
    clock.set(at(10))
    scheduler.tick(at(10))
    assert len(executor.submitted) == 1
    assert scheduler.held == 0


def test_a_restart_while_held_starts_the_release_once_at_the_same_instant(
    sqlite_url: str,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    clock: FakeClock,
) -> None:
    write_conf("p.yml", jittered_yaml("spread"))
    start = at(10) + timedelta(seconds=_offset("spread", at(10)))
    path = sqlite_url.removeprefix("sqlite:///")
    store_a = SqliteRunStore(path)
    before, exec_a = make_scheduler(store_a, now=at(9, 30))
    clock.set(at(10))
    before.tick(at(10))
    assert before.next_start == start
    before.stop(timeout=0)  # the claim stays PENDING
    store_a.close()
    assert exec_a.submitted == []

    store_b = SqliteRunStore(path)
    after, exec_b = make_scheduler(store_b, now=at(10, 1))
    assert after.next_start == start  # the same start, computed again
    assert exec_b.submitted == []
    clock.set(start)
    (run_id,) = after.start_held()
    for minute in range(2, 10):
        after.tick(at(10, minute))
    assert [r.run_id for r in exec_b.submitted] == [run_id]
    assert [r.run_id for r in runs_for(store_b, "spread")] == [run_id]
    store_b.close()


def test_a_restart_after_the_start_instant_starts_the_release_at_once(
    sqlite_url: str,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    clock: FakeClock,
) -> None:
    write_conf("p.yml", jittered_yaml("spread"))
    start = at(10) + timedelta(seconds=_offset("spread", at(10)))
    path = sqlite_url.removeprefix("sqlite:///")
    store_a = SqliteRunStore(path)
    before, _ = make_scheduler(store_a, now=at(9, 30))
    clock.set(at(10))
    before.tick(at(10))
    before.stop(timeout=0)
    store_a.close()

    store_b = SqliteRunStore(path)
    after, executor = make_scheduler(store_b, now=start + timedelta(seconds=1))
    assert after.held == 0
    assert len(executor.submitted) == 1
    assert executor.submitted[0].logical_date == at(10)
    store_b.close()


@pytest.mark.parametrize("catchup", ["latest", "all"])
def test_catchup_after_downtime_starts_missed_releases_whose_start_has_passed(
    catchup: str,
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    clock: FakeClock,
) -> None:
    write_conf("p.yml", jittered_yaml("spread", extra=f"  catchup: {catchup}\n"))
    scheduler, executor = make_scheduler(store, now=at(6, 30))
    clock.set(at(8, 45))  # down from 06:30; every start of 07:00 and 08:00 has passed
    report = scheduler.tick(at(8, 45))
    expected = [at(8)] if catchup == "latest" else [at(7), at(8)]
    assert [r.at for r in report.due] == expected
    assert all(r.late for r in report.due)
    assert sorted(r.logical_date for r in executor.submitted) == expected  # type: ignore[type-var]
    assert scheduler.held == 0
    for minute in range(46, 60):
        scheduler.tick(at(8, minute))
    assert len(runs_for(store, "spread")) == len(expected)


def test_a_release_whose_fire_time_passed_during_a_stop_but_not_its_start_is_on_time(
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    clock: FakeClock,
) -> None:
    write_conf("p.yml", jittered_yaml("spread", extra="  catchup: none\n"))
    start = at(10) + timedelta(seconds=_offset("spread", at(10)))
    scheduler, executor = make_scheduler(store, now=at(9, 59, 50))
    clock.set(at(10, 0, 20))
    report = scheduler.tick(at(10, 0, 20))  # within the grace: on time, even with none
    assert [(r.at, r.late) for r in report.due] == [(at(10), False)]
    assert scheduler.next_start == start
    clock.set(start)
    assert len(scheduler.start_held()) == 1
    assert len(executor.submitted) == 1


def _shared(
    store: RunStore, settings: Settings, clock: FakeClock, owner: str
) -> tuple[Scheduler, RecordingExecutor]:
    executor = RecordingExecutor(store)
    scheduler = Scheduler(
        settings=settings,
        store=store,
        executor=executor,
        clock=clock,
        loader=Loader.from_settings(settings),
        owner=owner,
        exclusive=False,
    )
    executor.templates = scheduler.template
    scheduler.start()
    return scheduler, executor


def test_two_schedulers_on_one_sqlite_store_claim_and_start_a_jittered_release_once(
    sqlite_url: str,
    settings: Settings,
    write_conf: Callable[..., Path],
    clock: FakeClock,
) -> None:
    write_conf("p.yml", jittered_yaml("spread"))
    start = at(10) + timedelta(seconds=_offset("spread", at(10)))
    path = sqlite_url.removeprefix("sqlite:///")
    store_a, store_b = SqliteRunStore(path), SqliteRunStore(path)
    clock.set(at(9, 30))
    a, exec_a = _shared(store_a, settings, clock, "a")
    b, exec_b = _shared(store_b, settings, clock, "b")
    clock.set(at(10))
    first, second = a.tick(at(10)), b.tick(at(10))
    assert len(first.dispatched) + len(second.dispatched) == 0  # held, not started
    assert len(runs_for(store_a, "spread")) == 1  # one claim between the two
    assert a.held + b.held == 1
    clock.set(start)
    started = a.start_held() + b.start_held()
    assert len(started) == 1
    assert len(exec_a.submitted) + len(exec_b.submitted) == 1
    assert len(runs_for(store_a, "spread")) == 1
    a.stop(timeout=0)
    b.stop(timeout=0)
    store_a.close()
    store_b.close()


def test_a_lost_lease_forgets_held_releases(
    store: MemoryRunStore,
    make_scheduler: MakeScheduler,
    write_conf: Callable[..., Path],
    clock: FakeClock,
) -> None:
    write_conf("p.yml", jittered_yaml("spread"))
    scheduler, executor = make_scheduler(store, now=at(9, 30))
    clock.set(at(10))
    scheduler.tick(at(10))
    assert scheduler.held == 1
    scheduler._rejoin(at(10, 0, 5))  # taken over: the release belongs to the taker
    assert scheduler.held == 0
    assert scheduler.start_held(at(12)) == []
    assert executor.submitted == []


class _Lags(NullMeter):
    def __init__(self) -> None:
        self.lags: list[float | None] = []

    def run_started(self, *, lag: float | None) -> None:
        self.lags.append(lag)


def test_the_start_lag_counts_from_the_jittered_start(
    store: MemoryRunStore,
    settings: Settings,
    write_conf: Callable[..., Path],
    clock: FakeClock,
) -> None:
    write_conf("p.yml", jittered_yaml("spread"))
    start = at(10) + timedelta(seconds=_offset("spread", at(10)))
    meter = _Lags()
    clock.set(at(9, 30))
    executor = RecordingExecutor(store)
    scheduler = Scheduler(
        settings=settings,
        store=store,
        executor=executor,
        clock=clock,
        loader=Loader.from_settings(settings),
        owner="test",
        meter=meter,
    )
    executor.templates = scheduler.template
    scheduler.start()
    clock.set(at(10))
    scheduler.tick(at(10))
    clock.set(start)
    (run_id,) = scheduler.start_held()
    clock.set(start + timedelta(seconds=2))
    executor.begin(run_id, clock.now())
    scheduler.process_events()
    assert meter.lags == [2.0]  # not the offset plus 2 s
    assert scheduler.offset_of(ReleaseKey("spread", HOURLY, at(10))) == (start - at(10)).seconds
    assert scheduler.offset_of(ReleaseKey("unknown", HOURLY, at(10))) == 0


# -- what is shown -----------------------------------------------------------------


def test_next_releases_and_the_start_up_log_say_the_offset(
    settings: Settings,
    write_conf: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_conf("p.yml", jittered_yaml("spread"))
    catalog = PipelineCatalog(Loader.from_settings(settings), settings)
    catalog.reload(force=True)
    offset = _offset("spread", at(10))
    upcoming = catalog.next_releases(at(9, 30))
    assert upcoming == [(at(10), "spread", HOURLY, offset)]
    with caplog.at_level(logging.INFO, logger=SCHEDULER_LOG):
        log_next_releases(upcoming, at(9, 30))
    assert (
        f"next release of spread: 2024-01-01T10:00:00+00:00 +{format_seconds(offset)} "
        f"(in {1800 + offset}s, schedule {HOURLY})"
    ) in caplog.text


class _Wanted:
    late_after = 60

    def wants(self, event: str) -> bool:
        return event == "missed"


class _Notifier:
    def __init__(self) -> None:
        self.told: list[str] = []

    def missed(self, targets: Any, *, run_id: str, **fields: Any) -> list[Any]:
        self.told.append(run_id)
        return []


def test_missed_notices_count_from_the_jittered_start(store: MemoryRunStore) -> None:
    key = ReleaseKey("spread", HOURLY, at(10))
    store.claim_many([Claim(key, "r1", {}, at(10), trigger=TriggerKind.SCHEDULE)], now=at(10))
    notifier = _Notifier()

    def missed(now: datetime, delay: int | None) -> list[str]:
        notifier.told.clear()
        delay_of = None if delay is None else (lambda release: delay)
        targets: Any = lambda _: _Wanted()  # noqa: E731 (a Targets double)
        record_missed(store, notifier, targets, now=now, delay_of=delay_of)  # type: ignore[arg-type]
        return notifier.told

    assert missed(at(10, 2), None) == ["r1"]  # without jitter: late after 60 s
    assert missed(at(10, 2), 1800) == []  # held for its jitter until 10:30
    assert missed(at(10, 30, 59), 1800) == []
    assert missed(at(10, 31), 1800) == ["r1"]


def _next(settings: Settings, monkeypatch: pytest.MonkeyPatch, *argv: str) -> str:
    monkeypatch.setattr(cli_templates, "default_clock", lambda: FakeClock(at(9, 30)))
    parser = argparse.ArgumentParser(prog="workflow")
    cli_templates.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["next", *argv])
    out = io.StringIO()
    assert args.handler(args, CliContext(settings=settings, masker=Masker(), out=out)) == 0
    return out.getvalue()


def test_workflow_next_shows_when_a_jittered_release_starts(
    settings: Settings, write_conf: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_conf("p.yml", jittered_yaml("spread"))
    offset = _offset("spread", at(10))
    text = _next(settings, monkeypatch, "spread", "-n", "2")
    lines = text.splitlines()
    assert lines[0] == "inline schedule: 0 * * * * (UTC, jitter 30m)"
    assert lines[1] == (
        f"  2024-01-01 10:00:00+00:00 (+{format_seconds(offset)})  =  2024-01-01 10:00:00Z"
    )
    doc = json.loads(_next(settings, monkeypatch, "spread", "-n", "2", "--json"))
    (schedule,) = doc["schedules"]
    assert schedule["jitter"] == 1800
    first = schedule["fire_times"][0]
    assert first["utc"] == "2024-01-01T10:00:00+00:00"  # unchanged: the fire time
    assert first["offset"] == offset
    assert first["start"] == (at(10) + timedelta(seconds=offset)).isoformat()


def test_workflow_next_without_jitter_keeps_its_output(
    settings: Settings, write_conf: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_conf("p.yml", jittered_yaml("plain", jitter="0"))
    assert _next(settings, monkeypatch, "plain", "-n", "1").splitlines() == [
        "inline schedule: 0 * * * * (UTC)",
        "  2024-01-01 10:00:00+00:00  =  2024-01-01 10:00:00Z",
    ]
    doc = json.loads(_next(settings, monkeypatch, "plain", "-n", "1", "--json"))
    assert doc["schedules"][0]["fire_times"] == [
        {"utc": "2024-01-01T10:00:00+00:00", "local": "2024-01-01T10:00:00+00:00"}
    ]


def test_the_api_schedule_view_adds_the_starts() -> None:
    from ddeutil.workflow.api.views import _schedule_info

    on = On.parse({"cron": "0 * * * *", "jitter": "30m"}, default_tz="UTC")
    info = _schedule_info("spread", on, at(9, 30), 2)
    assert info.next == [at(10), at(11)]
    assert info.jitter == 1800
    assert info.starts == [start_of("spread", HOURLY, t, 1800) for t in (at(10), at(11))]
    assert info.starts[0] > at(10)
