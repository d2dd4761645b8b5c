"""``workflow runs show RUN_ID``: one run in full, against a real SQLite store."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ddeutil.workflow.cli import main
from ddeutil.workflow.cli.run_show import job_rows
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import RunStore, TriggerKind

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
Run = Callable[..., tuple[int, str, str]]

CONTEXT = {
    "params": {"day": "2024-01-01"},
    "needs": {"extract": [], "load": ["extract"], "report": ["load"]},
    "jobs": {
        "extract": {"status": "SUCCESS", "matrix": {}, "stages": {}},
        "load": {"status": "FAILED", "matrix": {}, "stages": {}},
        "report": {"status": "SKIPPED", "stages": {}, "skipped": "needs load FAILED"},
    },
    "timeline": {
        "spans": [
            {
                "job": "extract",
                "stage": None,
                "status": "SUCCESS",
                "start": "2024-01-01T00:00:02+00:00",
                "end": "2024-01-01T00:00:04.500000+00:00",
            },
            {
                "job": "extract",
                "stage": "s1",
                "status": "SUCCESS",
                "start": "2024-01-01T00:00:02+00:00",
                "end": "2024-01-01T00:00:03+00:00",
            },
            {
                "job": "load",
                "stage": None,
                "status": "FAILED",
                "start": "2024-01-01T00:00:05+00:00",
                "end": "2024-01-01T00:00:06+00:00",
            },
        ]
    },
}


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
    values = {"WORKFLOW_ROOT_PATH": str(root), "DEMO_SECRET_TOKEN": "hunter2-secret"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def store(env: dict[str, str]) -> Iterator[RunStore]:
    s = open_store(Settings.from_env(env).api_db_url)
    yield s
    s.close()


@pytest.fixture
def run_cli(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> Run:
    def _run(*argv: str) -> tuple[int, str, str]:
        out = io.StringIO()
        code = main(["--log-format", "text", *argv], out=out)
        return code, out.getvalue(), capsys.readouterr().err

    return _run


def _seed(store: RunStore) -> None:
    store.create_run(
        run_id="run-1",
        pipeline="etl",
        trigger=TriggerKind.MANUAL,
        params={"day": "2024-01-01", "password": "hunter2-secret"},
        now=T0,
        owner="cli:1:aa",
        rerun_of="run-0",
    )
    store.mark_running("run-1", now=T0 + timedelta(seconds=1.5))
    store.finish(
        "run-1",
        status=Status.FAILED,
        now=T0 + timedelta(seconds=7),
        context=CONTEXT,
        error="job 'load' failed: hunter2-secret rejected",
    )


def test_show_prints_one_run_with_durations_jobs_and_masked_values(
    run_cli: Run, store: RunStore
) -> None:
    _seed(store)
    code, out, _ = run_cli("runs", "show", "run-1")
    assert code == 0
    assert "hunter2-secret" not in out
    assert out.splitlines() == [
        "run:      run-1",
        "pipeline: etl",
        "status:   FAILED",
        "trigger:  manual",
        "owner:    cli:1:aa",
        "rerun of: run-0",
        "release:  -",
        'params:   {"day": "2024-01-01", "password": "***"}',
        "created:  2024-01-01T00:00:00+00:00",
        "started:  2024-01-01T00:00:01.500000+00:00  (waited 1.5s)",
        "ended:    2024-01-01T00:00:07+00:00  (took 5.5s)",
        "error:    job 'load' failed: *** rejected",
        "jobs:",
        "  extract  SUCCESS       2.5s",
        "  load     FAILED        1.0s",
        "  report   SKIPPED          -  needs load FAILED",
    ]


def test_show_json(run_cli: Run, store: RunStore) -> None:
    _seed(store)
    code, out, _ = run_cli("runs", "show", "run-1", "--json")
    assert code == 0
    data = json.loads(out)
    assert "context" not in data
    assert (data["run_id"], data["status"], data["rerun_of"]) == ("run-1", "FAILED", "run-0")
    assert (data["wait_seconds"], data["run_seconds"]) == (1.5, 5.5)
    assert data["params"]["password"] == "***"
    assert [(j["job"], j["status"], j["duration_seconds"]) for j in data["jobs"]] == [
        ("extract", "SUCCESS", 2.5),
        ("load", "FAILED", 1.0),
        ("report", "SKIPPED", None),
    ]


def test_show_an_unknown_run_exits_2(run_cli: Run, store: RunStore) -> None:
    _seed(store)
    code, out, err = run_cli("runs", "show", "nope")
    assert (code, out) == (2, "")
    assert "no run 'nope' in the run store" in err


def test_show_never_creates_a_store(run_cli: Run, env: dict[str, str]) -> None:
    db = Path(Settings.from_env(env).api_db_url.removeprefix("sqlite:///"))
    assert not db.exists()
    code, _, err = run_cli("runs", "show", "run-1")
    assert code != 0
    assert not db.exists()
    assert str(db) in err


def test_runs_without_show_still_lists(run_cli: Run, store: RunStore) -> None:
    _seed(store)
    code, out, _ = run_cli("runs", "--limit", "5")
    assert code == 0
    assert out.splitlines()[1].split()[0] == "run-1"


def test_job_rows_of_a_pending_run_or_an_odd_context_is_empty_or_partial() -> None:
    assert job_rows(None) == []
    assert job_rows({"jobs": "oops", "timeline": {"spans": [1, {"stage": None}]}}) == []
    assert job_rows({"needs": {"a": []}, "jobs": {}}) == [
        {"job": "a", "status": "not run", "duration_seconds": None, "reason": None}
    ]
