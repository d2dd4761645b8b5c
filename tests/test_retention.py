"""Retention: the prune loop on every store, ``workflow prune``, the setting and the daemon's pass."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.app import daemon as daemon_mod
from ddeutil.workflow.app.daemon import Daemon
from ddeutil.workflow.cli import main
from ddeutil.workflow.cli import prune as cli_prune
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.records import RunEvent
from ddeutil.workflow.errors import SettingsError
from ddeutil.workflow.logs import run_log_path
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import RunStore, open_store
from ddeutil.workflow.store.base import ReleaseKey, TriggerKind
from ddeutil.workflow.store.retention import PruneReport, Retention, prune

UTC = timezone.utc
NOW = datetime(2024, 3, 1, tzinfo=UTC)
OLD = NOW - timedelta(days=40)
CUTOFF = NOW - timedelta(days=30)
WAIT = 10.0
"""Bound of every wait on a thread in these tests (seconds)."""


@pytest.fixture(params=["memory", "sqlite-memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    """A fresh store of each implementation (as tests/store/conftest.py's ``store_url``)."""
    urls: dict[str, Callable[[], str]] = {
        "memory": lambda: "memory://",
        "sqlite-memory": lambda: "sqlite://:memory:",
        "sqlite": lambda: f"sqlite:///{tmp_path / 'store' / 'runs.db'}",
        "postgres": lambda: str(request.getfixturevalue("postgres_url")),
    }
    opened = open_store(urls[request.param]())
    yield opened
    opened.close()


def ended(
    store: RunStore,
    run_id: str,
    at: datetime,
    *,
    pipeline: str = "p",
    status: Status = Status.SUCCESS,
) -> None:
    store.create_run(run_id=run_id, pipeline=pipeline, trigger=TriggerKind.API, params={}, now=at)
    assert store.finish(run_id, status=status, now=at)


def created(store: RunStore, run_id: str, at: datetime, *, pipeline: str = "p") -> None:
    store.create_run(run_id=run_id, pipeline=pipeline, trigger=TriggerKind.API, params={}, now=at)


def write_log(log_dir: Path, run_id: str) -> Path:
    path = run_log_path(log_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"message": "x"}\n', encoding="utf-8")
    return path


def run_ids(store: RunStore) -> set[str]:
    return {r.run_id for r in store.list_runs(limit=500)}


class SpyStore:
    """A store whose ``prune_runs`` calls are recorded (the rest passes through)."""

    def __init__(self, inner: RunStore, on_batch: Callable[[], None] | None = None) -> None:
        self.inner = inner
        self.limits: list[int] = []
        self.returned: list[int] = []
        self.on_batch = on_batch

    def prune_runs(self, before: datetime, *, limit: int, keep: Collection[str] = ()) -> list[str]:
        self.limits.append(limit)
        ids = self.inner.prune_runs(before, limit=limit, keep=keep)
        self.returned.append(len(ids))
        if self.on_batch is not None:
            self.on_batch()
        return ids

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# -- the loop, on every store ------------------------------------------------------------


def test_prune_keeps_unended_runs_and_each_pipelines_newest(
    store: RunStore, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    for i in range(4):
        ended(store, f"a{i}", OLD + timedelta(minutes=i), status=Status.FAILED)
    created(store, "a-pending", OLD)
    created(store, "a-running", OLD)
    assert store.mark_running("a-running", now=OLD)
    ended(store, "a-new", NOW)  # after the cutoff: stays, and is a's newest
    ended(store, "b-only", OLD, pipeline="b")  # old, but b's newest: stays
    gone = [write_log(logs, "a0"), write_log(logs, "a1")]  # a2, a3 have no file: fine
    kept = [write_log(logs, "b-only"), write_log(logs, "a-running")]
    store.save_log("a2", '{"message": "kept in the store"}\n')

    report = prune(store, before=CUTOFF, log_dir=logs)

    assert run_ids(store) == {"a-pending", "a-running", "a-new", "b-only"}
    assert (report.runs, report.log_files, report.batches, report.stopped) == (4, 2, 1, False)
    assert not any(p.exists() for p in gone)
    assert all(p.exists() for p in kept)
    assert store.run_log("a2") is None
    assert report.before == CUTOFF
    assert 0 <= report.longest_batch <= report.elapsed


def test_a_pruned_release_can_be_claimed_again(store: RunStore) -> None:
    key = ReleaseKey("p", "0 0 * * *@UTC", OLD)
    assert store.claim(key, run_id="s1", params={}, logical_date=OLD, now=OLD)
    assert store.finish("s1", status=Status.SUCCESS, now=OLD)
    ended(store, "p-new", NOW)
    assert not store.claim(key, run_id="s1-again", params={}, logical_date=OLD, now=NOW)
    assert prune(store, before=CUTOFF, log_dir=None).runs == 1
    assert store.claim(key, run_id="s2", params={}, logical_date=OLD, now=NOW)


@pytest.mark.parametrize(("count", "limits"), [(7, [3, 3, 3]), (6, [3, 3, 3]), (0, [3])])
def test_batches_are_bounded_and_the_loop_ends_on_a_short_one(
    store: RunStore, count: int, limits: list[int]
) -> None:
    for i in range(count):
        ended(store, f"r{i:02d}", OLD + timedelta(seconds=i))
    ended(store, "newest", NOW)
    spy = SpyStore(store)
    report = prune(spy, before=CUTOFF, log_dir=None, batch=3)
    assert spy.limits == limits
    assert max(spy.returned) <= 3
    assert (report.runs, report.batches) == (count, sum(1 for n in spy.returned if n))
    assert run_ids(store) == {"newest"}


def test_dry_run_counts_and_deletes_nothing(store: RunStore, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for i in range(3):
        ended(store, f"r{i}", OLD + timedelta(seconds=i), status=Status.CANCELLED)
    ended(store, "b-old", OLD, pipeline="b")  # b's newest: not counted
    created(store, "pending", OLD)
    ended(store, "newest", NOW)
    path = write_log(logs, "r0")
    before = run_ids(store)
    report = prune(store, before=CUTOFF, log_dir=logs, dry_run=True)
    assert (report.dry_run, report.runs, report.log_files, report.batches) == (True, 3, None, 0)
    assert run_ids(store) == before
    assert path.exists()


def test_a_stop_request_ends_the_loop_between_batches(store: RunStore) -> None:
    for i in range(5):
        ended(store, f"r{i}", OLD + timedelta(seconds=i))
    ended(store, "newest", NOW)
    stop = threading.Event()
    spy = SpyStore(store, on_batch=stop.set)
    report = prune(spy, before=CUTOFF, log_dir=None, batch=2, stop=stop)
    assert (report.runs, report.batches, report.stopped) == (2, 1, True)
    assert spy.limits == [2]
    assert len(run_ids(store)) == 4


def test_a_log_file_that_cannot_be_removed_is_logged_and_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store("memory://")
    ended(store, "r1", OLD)
    ended(store, "newest", NOW)
    logs = tmp_path / "logs"
    run_log_path(logs, "r1").mkdir(parents=True)  # a folder where the file would be
    report = prune(store, before=CUTOFF, log_dir=logs)
    assert (report.runs, report.log_files) == (1, 0)
    assert "cannot remove the log file" in caplog.text


def test_batch_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="batch"):
        prune(open_store("memory://"), before=CUTOFF, log_dir=None, batch=0)


# -- the setting -------------------------------------------------------------------------


def test_retention_days_default_zero_and_fractions(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().run_retention_days == 30
    assert make_settings(WORKFLOW_RUN_RETENTION_DAYS="0").run_retention_days is None
    assert make_settings(WORKFLOW_RUN_RETENTION_DAYS="0.5").run_retention_days == 0.5


@pytest.mark.parametrize("raw", ["-1", "abc", "nan", "inf", "36501"])
def test_a_bad_retention_names_the_variable_and_the_value(
    make_settings: Callable[..., Settings], raw: str
) -> None:
    with pytest.raises(SettingsError) as exc:
        make_settings(WORKFLOW_RUN_RETENTION_DAYS=raw)
    assert "WORKFLOW_RUN_RETENTION_DAYS" in str(exc.value)
    assert raw in str(exc.value)


# -- workflow prune ----------------------------------------------------------------------


@pytest.fixture
def cli_env(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for name in list(os.environ):
        if name.startswith("WORKFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))
    monkeypatch.setenv("WORKFLOW_CORE_TIMEZONE", "UTC")
    monkeypatch.setattr(cli_prune, "default_clock", lambda: FakeClock(NOW))
    root_logger = logging.getLogger()
    handlers, level = list(root_logger.handlers), root_logger.level
    yield Settings.from_env()
    for handler in [h for h in root_logger.handlers if h not in handlers]:
        root_logger.removeHandler(handler)
    root_logger.setLevel(level)


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--log-format", "text", *argv], out=out)
    return code, out.getvalue()


def seed(settings: Settings) -> None:
    store = open_store(settings.api_db_url)
    try:
        ended(store, "old", NOW - timedelta(days=10))
        ended(store, "older", NOW - timedelta(days=40))
        ended(store, "newest", NOW)
    finally:
        store.close()
    write_log(settings.log_path, "older")


def stored(settings: Settings) -> set[str]:
    store = open_store(settings.api_db_url)
    try:
        return run_ids(store)
    finally:
        store.close()


def test_cli_dry_run_json_reports_and_deletes_nothing(cli_env: Settings) -> None:
    seed(cli_env)
    code, out = run_cli("prune", "--dry-run", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["dry_run"] is True
    assert report["runs"] == 1
    assert report["before"] == (NOW - timedelta(days=30)).isoformat()
    assert stored(cli_env) == {"old", "older", "newest"}


def test_cli_prunes_with_the_setting_then_with_older_than(cli_env: Settings) -> None:
    seed(cli_env)
    code, out = run_cli("prune")
    assert code == 0
    assert "deleted 1 ended runs" in out
    assert "and 1 log files" in out
    assert stored(cli_env) == {"old", "newest"}
    assert not run_log_path(cli_env.log_path, "older").exists()
    code, out = run_cli("prune", "--older-than", "1.5", "--json")
    assert code == 0
    assert json.loads(out)["runs"] == 1
    assert stored(cli_env) == {"newest"}


@pytest.mark.parametrize("raw", ["0", "-2", "abc", "nan", "inf", "36501"])
def test_cli_older_than_must_be_a_positive_number(
    cli_env: Settings, raw: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli("prune", "--older-than", raw)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --older-than: expected a" in err
    assert "number of days" in err


def test_cli_without_older_than_when_retention_is_off_exits_2(
    cli_env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(cli_env)
    monkeypatch.setenv("WORKFLOW_RUN_RETENTION_DAYS", "0")
    code, _ = run_cli("prune")
    assert code == 2
    assert "keep forever" in capsys.readouterr().err
    assert stored(cli_env) == {"old", "older", "newest"}


def test_cli_reports_a_store_error_with_exit_1(
    cli_env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKFLOW_API_DB_URL", "postgresql://nobody:pw-secret@127.0.0.1:1/x")
    code, _ = run_cli("prune", "--older-than", "1")
    assert code == 1
    assert "run store error" in capsys.readouterr().err


# -- the daemon's pass ---------------------------------------------------------------------


class QuietScheduler:
    """Just enough of a Scheduler for :class:`Daemon` (no ticks happen in these tests)."""

    waiting = 0
    next_start: datetime | None = None  # no release held for its jitter

    def start(self) -> None: ...

    def stop(self, timeout: float | None = None) -> None: ...

    def tick(self) -> None: ...

    def prepare(self, boundary: datetime | None = None) -> bool:
        return False

    def request_reload(self) -> None: ...

    def process_events(self) -> list[RunEvent]:
        return []

    def beat(self, now: datetime | None = None) -> None: ...

    def keep_alive(self, now: datetime | None = None) -> bool:
        return True

    def admit_waiting(self) -> list[str]:
        return []

    def start_held(self, now: datetime | None = None) -> list[str]:
        return []


class IdleExecutor:
    """No run ever ends: the daemon's helper thread waits on an event never set."""

    def __init__(self) -> None:
        self._never = threading.Event()

    def wait_event(self, timeout: float) -> bool:
        return self._never.wait(min(timeout, 0.05))

    def drain_events(self) -> list[RunEvent]:
        return []


class CountingRetention:
    """Wraps a :class:`Retention`: counts passes, can fail or block on one."""

    def __init__(self, inner: Retention, *, fail_first: bool = False, block: bool = False) -> None:
        self.inner = inner
        self.passes = 0
        self.fail_first = fail_first
        self.block = block
        self.blocked = threading.Event()
        self.changed = threading.Condition()

    def run(self, stop: threading.Event | None = None) -> PruneReport:
        with self.changed:
            self.passes += 1
            self.changed.notify_all()
        if self.fail_first and self.passes == 1:
            raise RuntimeError("prune hiccup")
        if self.block:
            assert stop is not None
            self.blocked.set()
            stop.wait(WAIT)  # a long prune: it ends at its next check of the stop event
        return self.inner.run(stop)

    def wait_for(self, passes: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.passes >= passes, WAIT)


@pytest.fixture
def no_reaping(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process daemons must not make pytest a subreaper or reap its children."""
    monkeypatch.setattr(daemon_mod, "become_subreaper", lambda: False)
    monkeypatch.setattr(daemon_mod, "reap_orphans", list)


def run_daemon(daemon: Daemon, until: Callable[[], bool]) -> float:
    """Run ``daemon`` on this (main) thread until ``until()``; return how long its stop took."""
    asked: list[float] = []

    def drive() -> None:
        until()
        asked.append(time.monotonic())
        daemon.request_stop()

    helper = threading.Thread(target=drive)
    helper.start()
    assert daemon.run() == 0
    stopped = time.monotonic()
    helper.join(WAIT)
    return stopped - asked[0]


def pruner_alive() -> bool:
    return any(t.name == "scheduler-retention" for t in threading.enumerate())


def make_daemon(settings: Settings, retention: CountingRetention, every: float) -> Daemon:
    return Daemon(
        settings=settings,
        scheduler=QuietScheduler(),  # type: ignore[arg-type]
        executor=IdleExecutor(),  # type: ignore[arg-type]
        retention=retention,  # type: ignore[arg-type]
        prune_first=every,
        prune_every=every,
    )


def test_the_daemon_prunes_on_its_interval_survives_an_error_and_stops(
    settings: Settings, no_reaping: None, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store("memory://")
    ended(store, "old", OLD)
    ended(store, "newest", NOW)
    clock = FakeClock(NOW)
    retention = CountingRetention(
        Retention(store=store, days=30, log_dir=None, clock=clock), fail_first=True
    )
    daemon = make_daemon(settings, retention, every=0.01)
    with caplog.at_level(logging.INFO):
        run_daemon(daemon, lambda: retention.wait_for(3))
    assert retention.passes >= 3
    assert "prune failed" in caplog.text
    assert "prune hiccup" in caplog.text
    assert "pruned 1 runs" in caplog.text
    assert run_ids(store) == {"newest"}
    assert not pruner_alive()


def test_the_daemon_does_not_prune_before_its_first_delay(
    settings: Settings, no_reaping: None
) -> None:
    store = open_store("memory://")
    retention = CountingRetention(
        Retention(store=store, days=30, log_dir=None, clock=FakeClock(NOW))
    )
    daemon = make_daemon(settings, retention, every=3600)
    run_daemon(daemon, lambda: True)
    assert retention.passes == 0
    assert not pruner_alive()


def test_a_daemon_stopping_mid_prune_stops_the_prune_promptly(
    settings: Settings, no_reaping: None
) -> None:
    store = open_store("memory://")
    retention = CountingRetention(
        Retention(store=store, days=30, log_dir=None, clock=FakeClock(NOW)), block=True
    )
    daemon = make_daemon(settings, retention, every=0.01)
    took = run_daemon(daemon, lambda: retention.blocked.wait(WAIT))
    assert retention.passes == 1
    assert took < WAIT / 2  # the stop event reached the blocked pass: no wait for its timeout
    assert not pruner_alive()
