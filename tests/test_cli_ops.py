"""``workflow health | runs | logs``: exit codes and output, against a real SQLite store."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ddeutil.workflow.cli import main
from ddeutil.workflow.cli import ops as cli_ops
from ddeutil.workflow.clock import FakeClock, SystemClock
from ddeutil.workflow.logs import run_log_path
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import Claim, ReleaseKey, RunStore, TriggerKind

UTC = timezone.utc
Run = Callable[..., tuple[int, str]]


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def env(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("WORKFLOW_"):
            monkeypatch.delenv(name)
    values = {
        "WORKFLOW_ROOT_PATH": str(root),
        "WORKFLOW_CORE_TIMEZONE": "UTC",
        "WORKFLOW_APP_HEALTH_STALE": "180",
        "DEMO_SECRET_TOKEN": "hunter2-secret",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def store(env: dict[str, str]) -> Iterator[RunStore]:
    s = open_store(Settings.from_env(env).api_db_url)
    yield s
    s.close()


@pytest.fixture
def run_cli(env: dict[str, str]) -> Run:
    def _run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = main(["--log-format", "text", *argv], out=out)
        return code, out.getvalue()

    return _run


def test_health_without_any_heartbeat_is_unhealthy(run_cli: Run, store: RunStore) -> None:
    code, out = run_cli("health")
    assert code == 1
    assert "no scheduler heartbeat" in out


def _join(store: RunStore, owner: str, *, at: datetime, beat: datetime | None = None) -> None:
    """Join ``owner`` (host and pid taken from ``host:pid:...``) and beat at ``beat``."""
    host, pid, *_ = owner.split(":")
    assert store.join(owner, now=at, host=host, pid=int(pid))
    if beat is not None:
        assert store.heartbeat(now=beat, owner=owner)


def test_health_with_a_fresh_heartbeat_is_healthy_and_prints_the_age(
    run_cli: Run, store: RunStore
) -> None:
    now = SystemClock().now()
    _join(store, "host:42", at=now - timedelta(seconds=60), beat=now - timedelta(seconds=30))
    code, out = run_cli("health")
    assert code == 0
    assert out.startswith("healthy: last heartbeat 3")
    assert "host:42" in out


def test_health_with_a_stale_heartbeat_exits_1(run_cli: Run, store: RunStore) -> None:
    now = SystemClock().now()
    _join(store, "host:42", at=now - timedelta(seconds=600), beat=now - timedelta(seconds=181))
    code, out = run_cli("health")
    assert code == 1
    assert out.startswith("stale: last heartbeat 18")


NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def at_noon(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """``workflow health`` reads "now" from a clock fixed at :data:`NOW`; lease 30 s."""
    monkeypatch.setattr(cli_ops, "default_clock", lambda: FakeClock(NOW))
    monkeypatch.setenv("WORKFLOW_APP_LEASE_SECONDS", "30")
    return NOW


def _fleet(store: RunStore, now: datetime) -> None:
    """A live daemon, an unresponsive one, one lost 55 s ago, one stopped an hour ago."""

    def ago(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    _join(store, "vm1:42:aa", at=ago(7200), beat=ago(5))
    _join(store, "vm2:7:bb", at=ago(7200), beat=ago(45))
    _join(store, "vm3:9:cc", at=ago(7200))
    store.leave("vm3:9:cc", now=ago(3600))
    _join(store, "vm4:1:dd", at=ago(300), beat=ago(90))
    taken = store.take_over("vm1:42:aa", now=ago(55), lease=timedelta(seconds=30), reason=str)
    assert sorted(o.owner for o in taken.owners) == ["vm3:9:cc", "vm4:1:dd"]


def test_health_lists_every_daemon_with_its_state_age_and_taker(
    run_cli: Run, store: RunStore, at_noon: datetime
) -> None:
    _fleet(store, at_noon)
    code, out = run_cli("health")
    assert code == 0
    assert out.splitlines() == [
        "healthy: last heartbeat 5.0s ago at 2024-01-01T11:59:55+00:00 by vm1:42:aa "
        "(stale after 180s)",
        "daemons (unresponsive after 30s):",
        "  OWNER      HOST  PID  STATE         LAST HEARTBEAT             AGE      TAKEN BY",
        "  vm1:42:aa  vm1   42   live          2024-01-01T11:59:55+00:00  5.0s     -",
        "  vm2:7:bb   vm2   7    unresponsive  2024-01-01T11:59:15+00:00  45.0s    -",
        "  vm4:1:dd   vm4   1    lost          2024-01-01T11:58:30+00:00  90.0s    vm1:42:aa",
        "ended more than 180s ago (kept for the record):",
        "  vm3:9:cc   vm3   9    stopped       2024-01-01T10:00:00+00:00  7200.0s  vm1:42:aa",
    ]


def test_health_json_reports_each_daemon_as_the_api_does(
    run_cli: Run, store: RunStore, at_noon: datetime
) -> None:
    _fleet(store, at_noon)
    code, out = run_cli("health", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["status"] == "healthy"
    assert (report["stale_after_seconds"], report["lease_seconds"]) == (180.0, 30.0)
    daemons = {d["owner"]: d for d in report["schedulers"]}
    assert list(daemons) == ["vm1:42:aa", "vm2:7:bb", "vm4:1:dd", "vm3:9:cc"]
    assert daemons["vm2:7:bb"] == {
        "owner": "vm2:7:bb",
        "host": "vm2",
        "pid": 7,
        "state": "unresponsive",
        "started": "2024-01-01T10:00:00+00:00",
        "last_heartbeat": "2024-01-01T11:59:15+00:00",
        "age_seconds": 45.0,
        "stale": False,
        "taken_by": None,
        "ended": None,
        "current": True,
    }
    lost = daemons["vm4:1:dd"]
    assert (lost["state"], lost["taken_by"], lost["ended"]) == (
        "lost",
        "vm1:42:aa",
        "2024-01-01T11:59:05+00:00",
    )
    assert lost["current"] is True
    stopped = daemons["vm3:9:cc"]
    assert (stopped["state"], stopped["stale"], stopped["current"]) == ("stopped", True, False)


def test_health_counts_an_unresponsive_daemon_until_its_heartbeat_is_stale(
    run_cli: Run, store: RunStore, at_noon: datetime
) -> None:
    _join(
        store, "vm2:7:bb", at=at_noon - timedelta(seconds=600), beat=at_noon - timedelta(seconds=45)
    )
    code, out = run_cli("health")
    assert code == 0
    assert out.splitlines()[0].startswith("healthy: last heartbeat 45.0s ago")
    assert out.splitlines()[3].split()[3] == "unresponsive"


def test_health_without_a_live_daemon_exits_1_even_after_a_recent_heartbeat(
    run_cli: Run, store: RunStore, at_noon: datetime
) -> None:
    _join(
        store,
        "vm1:42:aa",
        at=at_noon - timedelta(seconds=600),
        beat=at_noon - timedelta(seconds=10),
    )
    store.leave("vm1:42:aa", now=at_noon - timedelta(seconds=10))
    code, out = run_cli("health")
    assert code == 1
    assert out.splitlines()[0] == (
        "stopped: the scheduler vm1:42:aa stopped cleanly at 2024-01-01T11:59:50+00:00; "
        "no daemon is live"
    )
    assert out.splitlines()[3].split()[3] == "stopped"
    code, out = run_cli("health", "--json")
    assert (code, json.loads(out)["status"]) == (1, "stopped")


def test_health_reports_the_newest_of_several_stopped_daemons_whatever_its_age(
    run_cli: Run, store: RunStore, at_noon: datetime
) -> None:
    _join(store, "vm1:42:aa", at=at_noon - timedelta(seconds=7200))
    store.leave("vm1:42:aa", now=at_noon - timedelta(seconds=7000))
    _join(store, "vm2:7:bb", at=at_noon - timedelta(seconds=3600))
    store.leave("vm2:7:bb", now=at_noon - timedelta(seconds=3000))
    code, out = run_cli("health")
    assert code == 1
    assert out.splitlines()[0] == (
        "stopped: the scheduler vm2:7:bb stopped cleanly at 2024-01-01T11:10:00+00:00; "
        "no daemon is live"
    )


def test_health_picks_the_newest_live_heartbeat_over_a_stopped_daemon(
    run_cli: Run, store: RunStore, at_noon: datetime
) -> None:
    _join(
        store,
        "vm1:42:aa",
        at=at_noon - timedelta(seconds=600),
        beat=at_noon - timedelta(seconds=200),
    )
    _join(
        store, "vm2:7:bb", at=at_noon - timedelta(seconds=600), beat=at_noon - timedelta(seconds=2)
    )
    store.leave("vm2:7:bb", now=at_noon - timedelta(seconds=2))
    code, out = run_cli("health")
    assert code == 1
    assert out.startswith("stale: last heartbeat 200.0s ago")
    assert "by vm1:42:aa" in out.splitlines()[0]


def test_health_reads_the_system_clock_by_default() -> None:
    before = SystemClock().now()
    now = cli_ops.default_clock().now()
    assert before <= now <= SystemClock().now()


def test_health_json_without_any_heartbeat_is_unhealthy(run_cli: Run, store: RunStore) -> None:
    code, out = run_cli("health", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["status"] == "unhealthy"
    assert report["schedulers"] == []
    assert "no scheduler heartbeat" in report["message"]


def test_health_reports_an_unreadable_store(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("WORKFLOW_API_DB_URL", f"sqlite:///{blocker}/sub/runs.db")
    code, out = run_cli("health")
    assert code == 1
    assert out.startswith("unhealthy: cannot read the run store")
    code, out = run_cli("health", "--json")
    assert code == 1
    assert json.loads(out)["status"] == "unhealthy"
    assert json.loads(out)["message"].startswith("cannot read the run store")


def _seed(store: RunStore) -> list[str]:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    ids = []
    for i, pipeline in enumerate(["alpha", "beta", "alpha"]):
        run_id = f"run-{i}"
        key = ReleaseKey(
            pipeline=pipeline, schedule="* * * * *@UTC", at=base + timedelta(minutes=i)
        )
        assert store.claim(
            key,
            run_id=run_id,
            params={"token": "***"},
            logical_date=key.at,
            now=base + timedelta(minutes=i),
        )
        ids.append(run_id)
    store.mark_running("run-0", now=base)
    store.finish(
        "run-0", status=Status.FAILED, now=base + timedelta(seconds=90), error="boom\nmore"
    )
    store.create_run(
        run_id="manual-1",
        pipeline="beta",
        trigger=TriggerKind.MANUAL,
        params={},
        now=base + timedelta(minutes=5),
    )
    return ids


def test_runs_lists_newest_first_as_a_table(run_cli: Run, store: RunStore) -> None:
    _seed(store)
    code, out = run_cli("runs")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "RUN",
        "ID",
        "PIPELINE",
        "TRIGGER",
        "STATUS",
        "RELEASE",
        "DURATION",
        "OWNER",
        "ERROR",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["manual-1", "run-2", "run-1", "run-0"]
    assert lines[-1].split()[3:] == ["FAILED", "2024-01-01T00:00+00:00", "90.0s", "-", "boom"]


def test_runs_shows_the_daemon_that_owns_each_scheduled_run(run_cli: Run, store: RunStore) -> None:
    _seed(store)
    at = datetime(2024, 1, 1, 0, 10, tzinfo=UTC)
    _join(store, "vm1:42:aa", at=at)
    key = ReleaseKey(pipeline="alpha", schedule="* * * * *@UTC", at=at)
    assert store.claim_many([Claim(key, "run-9", {}, at)], now=at, owner="vm1:42:aa") == [True]
    code, out = run_cli("runs")
    assert code == 0
    owner_at = out.splitlines()[0].index("OWNER")
    owners = {line.split()[0]: line[owner_at:].split()[0] for line in out.splitlines()[1:]}
    assert owners == {
        "run-9": "vm1:42:aa",
        "manual-1": "-",
        "run-2": "-",
        "run-1": "-",
        "run-0": "-",
    }
    code, out = run_cli("runs", "--json", "--limit", "2")
    assert [(d["run_id"], d["owner"]) for d in json.loads(out)] == [
        ("run-9", "vm1:42:aa"),
        ("manual-1", None),
    ]


def test_runs_filters_by_pipeline_status_and_limit(run_cli: Run, store: RunStore) -> None:
    _seed(store)
    _, out = run_cli("runs", "--pipeline", "alpha")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["run-2", "run-0"]
    _, out = run_cli("runs", "--status", "failed")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["run-0"]
    _, out = run_cli("runs", "--limit", "1")
    assert len(out.splitlines()) == 2


def test_runs_json_prints_records(run_cli: Run, store: RunStore) -> None:
    _seed(store)
    code, out = run_cli("runs", "--json", "--pipeline", "beta")
    assert code == 0
    data = json.loads(out)
    assert [d["run_id"] for d in data] == ["manual-1", "run-1"]
    assert data[1]["release"]["at"] == "2024-01-01T00:01:00+00:00"
    assert data[1]["status"] == "PENDING"


def test_runs_with_no_runs_says_so(run_cli: Run, store: RunStore) -> None:
    code, out = run_cli("runs")
    assert (code, out.strip()) == (0, "no runs")


def test_runs_rejects_a_bad_limit(run_cli: Run) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli("runs", "--limit", "0")
    assert exc.value.code == 2


def test_logs_prints_the_run_log_file_masked(
    run_cli: Run, store: RunStore, env: dict[str, str]
) -> None:
    settings = Settings.from_env(env)
    path = run_log_path(settings.log_path, "run-7")
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        {"time": "t1", "level": "INFO", "message": "start", "run_id": "run-7"},
        {"time": "t2", "level": "INFO", "message": "got hunter2-secret", "job": "j", "stage": "s"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    code, out = run_cli("logs", "run-7")
    assert code == 0
    assert out.splitlines() == ["t1 INFO    start", "t2 INFO    [j/s] got ***"]
    code, out = run_cli("logs", "run-7", "--json")
    assert code == 0
    assert json.loads(out.splitlines()[1])["message"] == "got ***"


def test_logs_of_an_unknown_run_exits_2(
    run_cli: Run, store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out = run_cli("logs", "nope")
    assert code == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_logs_of_a_known_run_without_a_file_exits_1(run_cli: Run, store: RunStore) -> None:
    _seed(store)
    code, out = run_cli("logs", "run-1")
    assert code == 1
    assert "has no log file" in out


def test_scheduler_verb_runs_the_daemon_once(env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ddeutil.workflow", "--log-format", "json", "scheduler", "--once"],
        env={**os.environ, "WORKFLOW_APP_PROCESS_WORKER": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    messages = [json.loads(line)["message"] for line in proc.stdout.splitlines() if line]
    assert "scheduler stopped" in messages
    store = open_store(Settings.from_env(env).api_db_url)
    try:
        assert store.last_heartbeat() is not None
    finally:
        store.close()
