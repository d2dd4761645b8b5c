"""Backfill: every release of a range once, oldest first, at most N at once, with the daemon.

The core (:class:`~ddeutil.workflow.scheduling.backfill.Backfill`) runs on the
memory, SQLite and PostgreSQL stores; ``workflow backfill`` is run in-process
for its output and exit codes and as a real subprocess for Ctrl-C. Concurrency
is measured by a gauge the runs call (``_backfill_gauge``), never by timing.
"""

from __future__ import annotations

import io
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.cli import backfill as cli_backfill
from ddeutil.workflow.cli import main
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
from ddeutil.workflow.loader import Loader, RawTemplate
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.result import Status
from ddeutil.workflow.runs import TriggerKind
from ddeutil.workflow.schedules.cron_schedule import CronSchedule
from ddeutil.workflow.schedules.planner import PlannedSchedule, releases_between
from ddeutil.workflow.scheduling import backfill as backfill_module
from ddeutil.workflow.scheduling.backfill import (
    Backfill,
    BackfillInputError,
    Outcome,
    load_entry,
    prepare,
)
from ddeutil.workflow.scheduling.scheduler import Scheduler
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import MemoryRunStore, open_store
from ddeutil.workflow.store.base import Claim, ReleaseKey, RunFilter, RunRecord, RunStore

UTC = timezone.utc
TESTS = Path(__file__).parent
NOW = datetime(2024, 1, 2, 0, 0, 30, tzinfo=UTC)

GAUGED = """
gauged:
  type: Pipeline
  on:
    - cron: "0 * * * *"
      timezone: Asia/Bangkok
  params:
    tag:
      type: str
      default: dflt
  jobs:
    j:
      stages:
        - name: gauge
          run: |
            import _backfill_gauge
            _backfill_gauge.meet(str(${{ release.logical_date }}))
"""

SIMPLE = """
hourly:
  type: Pipeline
  on:
    - cron: "0 * * * *"
      timezone: UTC
  jobs:
    j:
      stages:
        - name: hi
          echo: hi
failing:
  type: Pipeline
  on:
    - cron: "0 * * * *"
      timezone: UTC
  jobs:
    j:
      stages:
        - name: boom
          bash: exit 3
manual:
  type: Pipeline
  jobs:
    j:
      stages:
        - name: hi
          echo: hi
needs_param:
  type: Pipeline
  on:
    - cron: "0 * * * *"
  params:
    x: str
  jobs:
    j:
      stages:
        - name: hi
          echo: hi
every_minute:
  type: Pipeline
  on:
    - cron: "* * * * *"
      timezone: UTC
  jobs:
    j:
      stages:
        - name: hi
          echo: hi
"""


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'runs.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    opened = open_store(url)
    yield opened
    opened.close()


@pytest.fixture
def gauge(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(TESTS))
    import _backfill_gauge

    return _backfill_gauge


def _backfill(
    store: RunStore,
    settings: Settings,
    name: str,
    *,
    start: str,
    end: str,
    parallel: int,
    clock: FakeClock,
    outcomes: list[Outcome] | None = None,
    claimed: list[str] | None = None,
    held: list[int] | None = None,
) -> Backfill:
    loader = Loader.from_settings(settings)
    checked = prepare(
        load_entry(name, loader, settings),
        start=start,
        end=end,
        parallel=parallel,
        now=clock.now(),
        settings=settings,
    )

    def on_claimed(run_ids: Sequence[str]) -> None:
        if claimed is not None:
            claimed.extend(run_ids)
        if held is not None:  # claimed and not ended, right after a claim
            held.append(backfill.in_flight())

    backfill = Backfill(
        store=store,
        settings=settings,
        entry=checked.entry,
        releases=checked.releases(),
        parallel=parallel,
        clock=clock,
        masker=Masker(),
        loader=loader,
        on_outcome=None if outcomes is None else outcomes.append,
        on_claimed=on_claimed,
        log_files=False,
        lease_poll=0.05,
    )
    return backfill


def _runs(store: RunStore, name: str) -> list[RunRecord]:
    return store.list_runs(RunFilter(pipeline=name), limit=10_000)


# ------------------------------------------------------------------ store, planner


def test_release_runs_names_who_holds_each_claim(store: RunStore) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    daemon = ReleaseKey("p", "0 * * * *@UTC", t0)
    filler = ReleaseKey("p", "0 * * * *@UTC", t0 + timedelta(hours=1))
    other = ReleaseKey("p", "30 * * * *@UTC", t0)
    free = ReleaseKey("p", "0 * * * *@UTC", t0 + timedelta(hours=2))
    assert store.claim_many([Claim(daemon, "r-daemon")], now=t0) == [True]
    assert store.claim_many(
        [Claim(filler, "r-fill", trigger=TriggerKind.BACKFILL)], now=t0, owner="me"
    ) == [True]
    found = store.release_runs([daemon, filler, other, free])
    assert set(found) == {daemon, filler}
    assert (found[daemon].run_id, found[daemon].trigger) == ("r-daemon", TriggerKind.SCHEDULE)
    assert (found[filler].run_id, found[filler].trigger, found[filler].owner) == (
        "r-fill",
        TriggerKind.BACKFILL,
        "me",
    )
    assert found[filler].status is Status.PENDING


def test_releases_between_is_half_open_oldest_first_and_merges_schedules() -> None:
    hourly = CronSchedule.parse("0 * * * *", "Asia/Bangkok")
    odd = CronSchedule.parse("30 */2 * * *", "UTC")
    planned = [
        PlannedSchedule("p", hourly),
        PlannedSchedule("p", odd),
        PlannedSchedule("p", hourly),
    ]
    got = list(
        releases_between(
            planned,
            start=datetime(2024, 1, 1, 0, tzinfo=UTC),
            end=datetime(2024, 1, 1, 3, tzinfo=UTC),
        )
    )
    assert [(r.at.hour, r.at.minute) for r in got] == [(0, 0), (0, 30), (1, 0), (2, 0), (2, 30)]
    assert got[0].logical_date.utcoffset() == timedelta(hours=7)  # the schedule's zone
    huge = releases_between(
        [PlannedSchedule("p", CronSchedule.parse("* * * * *", "UTC"))],
        start=datetime(2000, 1, 1, tzinfo=UTC),
        end=datetime(2024, 1, 1, tzinfo=UTC),
    )
    assert next(huge).at == datetime(2000, 1, 1, tzinfo=UTC)  # lazy: twelve million slots


# ------------------------------------------------------------------ the core


def test_backfill_runs_each_release_once_oldest_first_at_most_n_at_once(
    store: RunStore,
    gauge: Any,
    settings: Settings,
    write_conf: Callable[[str, str], Path],
) -> None:
    write_conf("p.yml", GAUGED)
    gauge.reset(2)
    outcomes: list[Outcome] = []
    claimed: list[str] = []
    held: list[int] = []
    # naive bounds are read in the schedules' zone (Asia/Bangkok, UTC+7)
    backfill = _backfill(
        store,
        settings,
        "gauged",
        start="2024-01-01T07:00",
        end="2024-01-01T15:00",
        parallel=2,
        clock=FakeClock(NOW),
        outcomes=outcomes,
        claimed=claimed,
        held=held,
    )
    summary = backfill.run()
    assert (summary.total, summary.succeeded, summary.failed) == (8, 8, 0)
    assert gauge.highest == 2  # executed at once
    assert max(held) == 2  # claimed just in time: never more than the free slots
    runs = _runs(store, "gauged")
    assert len(runs) == 8
    ats = [r.release.at for r in runs if r.release is not None]
    assert sorted(ats) == [datetime(2024, 1, 1, h, tzinfo=UTC) for h in range(8)]
    by_id = {r.run_id: r for r in runs}
    claim_order = [by_id[run_id].release.at for run_id in claimed]  # type: ignore[union-attr]
    assert claim_order == sorted(claim_order)
    for run in runs:
        assert (run.trigger, run.status, run.owner) == (
            TriggerKind.BACKFILL,
            Status.SUCCESS,
            backfill.owner,
        )
        assert run.params == {"tag": "dflt"}
        assert run.logical_date == run.release.at  # type: ignore[union-attr]
    assert sorted(gauge.order) == [f"2024-01-01 {h:02d}:00:00+07:00" for h in range(7, 15)]
    assert len(outcomes) == 8
    assert all(o.status is Status.SUCCESS for o in outcomes)
    [owner] = [o for o in store.owners() if o.owner == backfill.owner]
    assert (owner.kind, owner.state.value) == ("client", "stopped")


def test_a_second_backfill_skips_what_the_first_ran(
    store: RunStore, settings: Settings, write_conf: Callable[[str, str], Path]
) -> None:
    write_conf("p.yml", SIMPLE)
    clock = FakeClock(NOW)
    first = _backfill(
        store,
        settings,
        "hourly",
        start="2024-01-01T00:00",
        end="2024-01-01T03:00",
        parallel=1,
        clock=clock,
    ).run()
    outcomes: list[Outcome] = []
    again = _backfill(
        store,
        settings,
        "hourly",
        start="2024-01-01T00:00",
        end="2024-01-01T05:00",
        parallel=3,
        clock=clock,
        outcomes=outcomes,
    ).run()
    assert (first.succeeded, again.succeeded, again.skipped_backfill) == (3, 2, 3)
    assert sum(o.skipped for o in outcomes) == 3
    assert len(_runs(store, "hourly")) == 5


class _Executor:
    """The daemon's executor double: it keeps what it is given (runs stay PENDING)."""

    def __init__(self) -> None:
        self.templates: Callable[[str, str | None], RawTemplate | None] = lambda n, v: None
        self.submitted: list[RunRequest] = []

    def start(self) -> None:
        pass

    def submit(self, request: RunRequest) -> None:
        self.submitted.append(request)

    def drain_events(self) -> list[RunEvent]:
        return []

    def wait_event(self, timeout: float) -> bool:
        return False

    def in_flight(self) -> int:
        return 0

    def capacity(self) -> int:
        return 100

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        return True

    def shutdown(self, timeout: float, *, reason: str | None = None) -> None:
        pass


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_backfill_next_to_the_daemon_runs_every_release_once(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    write_conf: Callable[[str, str], Path],
) -> None:
    write_conf("p.yml", SIMPLE.replace('"0 * * * *"', '"* * * * *"'))
    url = (
        f"sqlite:///{tmp_path / 'runs.db'}"
        if kind == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    settings = make_settings(WORKFLOW_API_DB_URL=url)
    store = open_store(url)
    daemon_clock = FakeClock(datetime(2024, 1, 1, 10, 0, 30, tzinfo=UTC))
    executor = _Executor()
    scheduler = Scheduler(
        settings=settings,
        store=store,
        executor=executor,
        clock=daemon_clock,
        loader=Loader.from_settings(settings),
        owner="daemon",
    )
    executor.templates = scheduler.template
    scheduler.start()
    try:
        for minute in (1, 2, 3):
            scheduler.tick(datetime(2024, 1, 1, 10, minute, tzinfo=UTC))
        daemon_runs = {r.run_id for r in _runs(store, "every_minute")}
        assert len(daemon_runs) == 3
        summary = _backfill(
            store,
            settings,
            "every_minute",
            start="2024-01-01T10:00",
            end="2024-01-01T10:06",
            parallel=4,
            clock=FakeClock(datetime(2024, 1, 1, 10, 6, 5, tzinfo=UTC)),
        ).run()
        assert (summary.succeeded, summary.skipped_schedule, summary.skipped_backfill) == (3, 3, 0)
        scheduler.tick(datetime(2024, 1, 1, 10, 6, tzinfo=UTC))  # catch-up meets claimed ones
    finally:
        scheduler.stop(0)
        store.close()
    store = open_store(url)
    runs = _runs(store, "every_minute")
    store.close()
    ats = [r.release.at for r in runs if r.release is not None]
    assert len(ats) == len(set(ats)) == 7  # 10:00 .. 10:06, each once
    assert {r.trigger for r in runs if r.release.at.minute in (0, 4, 5)} == {  # type: ignore[union-attr]
        TriggerKind.BACKFILL
    }


def test_prepare_refuses_bad_input(
    settings: Settings, write_conf: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cap is a constant; a smaller one keeps this test from counting a million releases.
    monkeypatch.setattr(backfill_module, "MAX_RELEASES", 20_000)
    write_conf("p.yml", SIMPLE)
    loader = Loader.from_settings(settings)

    def refused(name: str, start: str, end: str, parallel: int | None = None) -> BackfillInputError:
        with pytest.raises(BackfillInputError) as info:
            prepare(
                load_entry(name, loader, settings),
                start=start,
                end=end,
                parallel=parallel,
                now=NOW,
                settings=settings,
            )
        return info.value

    with pytest.raises(BackfillInputError, match="no pipeline named 'nope'") as info:
        load_entry("nope", loader, settings)
    assert info.value.status == 404
    assert "no schedules" in refused("manual", "2024-01-01", "2024-01-02").message
    assert "required param" in refused("needs_param", "2024-01-01", "2024-01-02").message
    assert "not after start" in refused("hourly", "2024-01-02", "2024-01-01").message
    assert "in the future" in refused("hourly", "2024-01-01", "2024-01-03").message
    assert "ISO 8601" in refused("hourly", "yesterday", "2024-01-01").message
    assert "out of range" in refused("hourly", "0001-01-01", "2024-01-01", 1).message
    huge = refused("every_minute", "2020-01-01", "2024-01-01", 8)
    assert (huge.field, "more than 20000 releases" in huge.message) == ("end", True)
    big = refused("every_minute", "2024-01-01", "2024-01-02")
    assert (big.field, "1440 releases" in big.message) == ("parallel", True)
    assert "between 1 and 256" in refused("hourly", "2024-01-01", "2024-01-02", 257).message
    assert (
        prepare(
            load_entry("every_minute", loader, settings),
            start="2024-01-01",
            end="2024-01-02",
            parallel=1,
            now=NOW,
            settings=settings,
        ).total
        == 1440
    )


# ------------------------------------------------------------------ the command line


@pytest.fixture
def cli(
    root: Path, monkeypatch: pytest.MonkeyPatch, write_conf: Callable[[str, str], Path]
) -> Callable[..., tuple[int, str]]:
    for name in list(os.environ):
        if name.startswith("WORKFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))
    monkeypatch.setenv("WORKFLOW_CORE_TIMEZONE", "UTC")
    monkeypatch.setenv("WORKFLOW_LOG_ENABLE_WRITE", "false")
    monkeypatch.setattr(cli_backfill, "default_clock", lambda: FakeClock(NOW))
    write_conf("p.yml", SIMPLE)

    def run(*args: str) -> tuple[int, str]:
        out = io.StringIO()
        code = main(["--log-level", "WARNING", "backfill", *args], out=out)
        return code, out.getvalue()

    return run


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_cli_prints_a_json_line_per_release_and_a_summary(
    cli: Callable[..., tuple[int, str]], root: Path
) -> None:
    code, out = cli(
        "hourly", "--start", "2024-01-01T00:00", "--end", "2024-01-01T04:00", "--parallel", "2"
    )
    assert code == 0
    *each, summary = _lines(out)
    assert sorted(line["release"] for line in each) == [
        f"2024-01-01T0{h}:00:00+00:00" for h in range(4)
    ]
    assert {line["status"] for line in each} == {"SUCCESS"}
    assert summary["summary"] is True
    assert (summary["ran"], summary["succeeded"], summary["interrupted"]) == (4, 4, False)
    code, out = cli("hourly", "--start", "2024-01-01T00:00", "--end", "2024-01-01T06:00")
    *each, summary = _lines(out)
    assert (code, summary["ran"], summary["skipped_backfill"]) == (0, 2, 4)
    assert [line.get("claimed_by") for line in each].count("backfill") == 4


def test_cli_dry_run_lists_releases_and_claims_nothing(
    cli: Callable[..., tuple[int, str]], root: Path
) -> None:
    assert cli("hourly", "--start", "2024-01-01T00:00", "--end", "2024-01-01T02:00")[0] == 0
    code, out = cli(
        "hourly", "--start", "2024-01-01T00:00", "--end", "2024-01-01T04:00", "--dry-run"
    )
    *each, summary = _lines(out)
    assert code == 0
    assert [line["claimed"] for line in each] == [True, True, False, False]
    assert each[0]["status"] == "SUCCESS"
    assert each[0]["claimed_by"] == "backfill"
    assert (summary["total"], summary["would_run"], summary["claimed"]) == (4, 2, 2)
    store = open_store(Settings.from_env(dict(os.environ)).api_db_url)
    try:
        assert len(_runs(store, "hourly")) == 2
    finally:
        store.close()


def test_cli_exit_1_when_a_run_failed(cli: Callable[..., tuple[int, str]]) -> None:
    code, out = cli("failing", "--start", "2024-01-01T00:00", "--end", "2024-01-01T02:00")
    *each, summary = _lines(out)
    assert code == 1
    assert {line["status"] for line in each} == {"FAILED"}
    assert summary["failed"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--start", "2024-01-01", "--end", "2024-01-02"], "no pipeline named 'nope'"),
        (["manual", "--start", "2024-01-01", "--end", "2024-01-02"], "has no schedules"),
        (["hourly", "--start", "2024-01-02", "--end", "2024-01-01"], "is not after start"),
        (["hourly", "--start", "2024-01-01", "--end", "2030-01-01"], "is in the future"),
        (["hourly", "--start", "2024-02-30", "--end", "2024-03-01"], "not an ISO 8601"),
        (["every_minute", "--start", "2024-01-01", "--end", "2024-01-02"], "1440 releases"),
        (["hourly", "--start", "2024-01-01", "--end", "2024-01-02", "--parallel", "999"], "256"),
    ],
)
def test_cli_bad_input_exits_2_with_a_message(
    cli: Callable[..., tuple[int, str]],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code, out = cli(*args)
    assert (code, out) == (2, "")
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------ Ctrl-C, for real


SLOW = """
slow:
  type: Pipeline
  on:
    - cron: "0 * * * *"
      timezone: UTC
  jobs:
    j:
      stages:
        - name: nap
          bash: sleep {seconds}
"""


def _spawn(root: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env |= {
        "WORKFLOW_ROOT_PATH": str(root),
        "WORKFLOW_CORE_TIMEZONE": "UTC",
        "WORKFLOW_LOG_ENABLE_WRITE": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ddeutil.workflow", "--log-level", "WARNING", "backfill", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_lines(proc: subprocess.Popen[str], count: int, timeout: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(lines)} line(s) within {timeout}s"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            line = proc.stdout.readline()
            assert line, "the backfill ended early"
            lines.append(line)
    return lines


def _wait_for(proc: subprocess.Popen[str], text: str, timeout: float) -> None:
    """Read stderr until a line holds ``text`` (bounded)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} not seen on stderr within {timeout}s"
        ready, _, _ = select.select([proc.stderr], [], [], left)
        if ready:
            line = proc.stderr.readline()
            assert line, f"stderr closed before {text!r}"
            if text in line:
                return


def test_sigint_stops_claiming_and_a_second_run_continues_exactly_once(
    root: Path, write_conf: Callable[[str, str], Path]
) -> None:
    write_conf("p.yml", SLOW.format(seconds="0.2"))
    args = ("slow", "--start", "2024-01-01T00:00", "--end", "2024-01-01T12:00", "--parallel", "2")
    proc = _spawn(root, *args)
    try:
        _read_lines(proc, 3, timeout=30)  # a few runs finished
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "no more releases are claimed" in err
    summary = json.loads(out.splitlines()[-1])
    assert summary["interrupted"] is True
    assert summary["not_reached"] > 0
    first_ran = summary["ran"]

    again = _spawn(root, *args)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["skipped_backfill"] == first_ran
    assert summary["ran"] + summary["skipped_backfill"] == 12
    store = open_store(f"sqlite:///{root / '.workflow' / 'runs.db'}")
    try:
        runs = _runs(store, "slow")
    finally:
        store.close()
    ats = [r.release.at for r in runs if r.release is not None]
    assert len(ats) == len(set(ats)) == 12
    assert {r.status for r in runs} == {Status.SUCCESS}


def test_a_second_sigint_cancels_the_runs_in_flight(
    root: Path, write_conf: Callable[[str, str], Path]
) -> None:
    write_conf("p.yml", SLOW.format(seconds="60"))
    proc = _spawn(
        root, "slow", "--start", "2024-01-01T00:00", "--end", "2024-01-01T04:00", "--parallel", "2"
    )
    db = root / ".workflow" / "runs.db"
    started = time.monotonic()
    try:
        deadline = time.monotonic() + 30
        running = 0
        while running < 2:
            assert time.monotonic() < deadline, "the runs did not start"
            if db.exists():
                store = open_store(f"sqlite:///{db}")
                try:
                    running = store.count_runs(RunFilter(pipeline="slow", status=Status.RUNNING))
                finally:
                    store.close()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _wait_for(proc, "no more releases are claimed", timeout=10)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 30
    store = open_store(f"sqlite:///{db}")
    try:
        runs = _runs(store, "slow")
    finally:
        store.close()
    assert len(runs) == 2  # nothing else was claimed, nothing left PENDING
    assert {r.status for r in runs} == {Status.CANCELLED}


WAITING = """
waiting:
  type: Pipeline
  on:
    - cron: "0 * * * *"
      timezone: UTC
  jobs:
    j:
      stages:
        - name: wait for a cancel
          run: |
            if cancel_token.wait(30):
                raise RuntimeError(cancel_token.reason)
"""


def test_a_cancel_asked_through_the_store_reaches_a_backfill_run(
    settings: Settings, write_conf: Callable[[str, str], Path]
) -> None:
    write_conf("p.yml", WAITING)
    store = MemoryRunStore()
    backfill = _backfill(
        store,
        settings,
        "waiting",
        start="2024-01-01T00:00",
        end="2024-01-01T01:00",
        parallel=1,
        clock=FakeClock(NOW),
    )
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(backfill.run()))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not (running := store.list_runs(RunFilter(status=Status.RUNNING))):
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.01)
        assert store.request_cancel(running[0].run_id, now=NOW, reason="asked") is Status.RUNNING
    finally:
        thread.join(20)
        if thread.is_alive():
            backfill.cancel()
            thread.join(20)
    [summary] = done
    assert (summary.cancelled, summary.interrupted) == (1, False)
    assert store.get_run(running[0].run_id).status is Status.CANCELLED  # type: ignore[union-attr]


def test_the_terminal_progress_line_is_redrawn_in_place() -> None:
    out = io.StringIO()
    bar = cli_backfill._Bar(out, 4, "run the same command again to continue")
    release = next(
        releases_between(
            [PlannedSchedule("p", CronSchedule.parse("0 * * * *", "UTC"))],
            start=NOW - timedelta(hours=1),
            end=NOW,
        )
    )
    bar.outcome(Outcome(release, "r1", Status.SUCCESS))
    bar.outcome(Outcome(release, "r2", Status.FAILED, "boom"))
    text = out.getvalue()
    assert "\n" not in text
    last = text.rsplit("\r", 1)[-1]
    assert last.startswith("[" + "#" * 15 + "-" * 15 + "] 2/4 failed 1 skipped 0 ")
    assert "ETA" in last
