"""``workflow pause | unpause`` and the paused state in ``workflow list``, on a real SQLite store."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ddeutil.workflow.cli import main
from ddeutil.workflow.cli import pause as cli_pause
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store

T0 = datetime(2024, 1, 1, 10, 0, 30, tzinfo=timezone.utc)
Run = Callable[..., tuple[int, str]]

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


@pytest.fixture
def env(root: Path, monkeypatch: pytest.MonkeyPatch, write_conf: Callable[..., Path]) -> Settings:
    for name in list(os.environ):
        if name.startswith("WORKFLOW_"):
            monkeypatch.delenv(name)
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
