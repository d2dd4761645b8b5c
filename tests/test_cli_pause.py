"""``workflow pause | unpause`` and the paused state in ``workflow list``, on a real SQLite store."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.cli import main
from ddeutil.workflow.cli import pause as cli_pause
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import RunFilter, TriggerKind, open_store
from test_scheduler import make_scheduler

T0 = datetime(2024, 1, 1, 10, 0, 30, tzinfo=timezone.utc)
Run = Callable[..., tuple[int, str]]

__all__ = ["make_scheduler"]  # a fixture, imported for the catch-up test

PIPELINE = """
nightly:
  type: Pipeline
  on:
    - cronjob: "0 1 * * *"
      timezone: UTC
  jobs:
    only:
      stages:
        - name: nothing
not-a-pipeline:
  type: Schedule
  cronjob: "* * * * *"
"""


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(params=["sqlite", "postgres"])
def env(
    request: pytest.FixtureRequest,
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_conf: Callable[..., Path],
) -> Settings:
    """The CLI's environment: the default SQLite store, or a PostgreSQL one."""
    for name in list(os.environ):
        if name.startswith("WORKFLOW_"):
            monkeypatch.delenv(name)
    if request.param == "postgres":
        monkeypatch.setenv("WORKFLOW_API_DB_URL", str(request.getfixturevalue("postgres_url")))
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))
    monkeypatch.setenv("WORKFLOW_CORE_TIMEZONE", "UTC")
    monkeypatch.setattr(cli_pause, "default_clock", lambda: FakeClock(T0))
    write_conf("p.yml", PIPELINE)
    return Settings.from_env()


@pytest.fixture
def run_cli(env: Settings) -> Run:
    def _run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = main(["--log-format", "text", *argv], out=out)
        return code, out.getvalue()

    return _run


def _paused(settings: Settings) -> dict[str, datetime]:
    store = open_store(settings.api_db_url)
    try:
        return store.paused()
    finally:
        store.close()


def test_pause_is_kept_in_the_store_and_unpause_removes_it(run_cli: Run, env: Settings) -> None:
    code, out = run_cli("pause", "nightly")
    assert code == 0
    assert "paused at 2024-01-01T10:00:30+00:00" in out
    assert _paused(env) == {"nightly": T0}
    code, out = run_cli("pause", "nightly")
    assert code == 0
    assert "already paused (since 2024-01-01T10:00:30+00:00)" in out
    code, out = run_cli("unpause", "nightly", "--json")
    assert code == 0
    assert json.loads(out) == {
        "pipeline": "nightly",
        "paused": False,
        "paused_at": T0.isoformat(),
    }
    assert _paused(env) == {}
    code, out = run_cli("unpause", "nightly")
    assert code == 0
    assert "was not paused" in out


def test_workflow_list_shows_a_paused_pipeline(run_cli: Run) -> None:
    code, out = run_cli("list")
    assert code == 0
    assert "PAUSED" not in out
    assert run_cli("pause", "nightly")[0] == 0
    code, out = run_cli("list")
    assert "PAUSED since 2024-01-01 10:00:30Z" in out
    code, out = run_cli("list", "--json")
    [row] = [r for r in json.loads(out)["templates"] if r["name"] == "nightly"]
    assert (row["paused"], row["paused_at"]) == (True, T0.isoformat())


def test_list_creates_no_store_when_none_exists(run_cli: Run, env: Settings) -> None:
    code, _ = run_cli("list")
    assert code == 0
    assert not (env.root_path / ".workflow" / "runs.db").exists()


@pytest.mark.parametrize("verb", ["pause", "unpause"])
@pytest.mark.parametrize("name", ["missing", "not-a-pipeline"])
def test_pausing_an_unknown_pipeline_is_bad_input(
    run_cli: Run, verb: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_cli(verb, name)
    assert code == 2
    assert f"no pipeline called {name!r}" in capsys.readouterr().err


CATCHUP = """
minutely:
  type: Pipeline
  on:
    - cronjob: "* * * * *"
      timezone: Asia/Bangkok
  jobs:
    only:
      stages:
        - name: note
          bash: echo "${{ release.logical_date }}" >> "$CATCHUP_LOG"
"""


def test_unpause_catchup_runs_each_release_the_pause_skipped_once(
    *,
    run_cli: Run,
    env: Settings,
    write_conf: Callable[..., Path],
    make_scheduler: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    log = tmp_path / "catchup.log"
    monkeypatch.setenv("CATCHUP_LOG", str(log))
    write_conf("minutely.yml", CATCHUP)
    store = open_store(env.api_db_url)
    try:
        scheduler, _ = make_scheduler(store, now=T0)
        assert run_cli("pause", "minutely")[0] == 0  # at 10:00:30
        for minute in (1, 2, 3):
            report = scheduler.tick(T0.replace(minute=minute, second=0))
            assert len(report.skipped) == 1
        scheduler.stop()
        monkeypatch.setattr(cli_pause, "default_clock", lambda: FakeClock(T0.replace(minute=3)))
        code, out = run_cli("unpause", "minutely", "--catchup", "--json")
        assert code == 0, out
        lines = [json.loads(line) for line in out.splitlines()]
        assert lines[-1]["summary"] is True
        assert (lines[-1]["succeeded"], lines[-1]["failed"]) == (3, 0)
        assert store.paused() == {}
        runs = store.list_runs(RunFilter(pipeline="minutely"), limit=100)
        by_release = sorted((r.release.at.minute, r.trigger, r.status) for r in runs if r.release)
        assert by_release == [
            (m, TriggerKind.BACKFILL, Status.SUCCESS) for m in (1, 2, 3)
        ]  # the skipped records made way for the runs
        assert log.read_text().split("\n")[:3] == [
            f"2024-01-01 17:0{m}:00+07:00" for m in (1, 2, 3)
        ]  # each release's logical date, in its schedule's zone
        code, out = run_cli("unpause", "minutely", "--catchup", "--json")
        assert code == 0
        assert json.loads(out.splitlines()[-1])["total"] == 0  # nothing left: never twice
    finally:
        store.close()


def test_a_refused_catchup_leaves_the_pipeline_paused(
    run_cli: Run, env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli("pause", "nightly")[0] == 0
    assert run_cli("unpause", "nightly", "--catchup", "--since", "yesterday-ish")[0] == 2
    assert "since 'yesterday-ish' is not an ISO 8601" in capsys.readouterr().err
    assert list(_paused(env)) == ["nightly"]
    assert run_cli("unpause", "missing", "--catchup")[0] == 2
