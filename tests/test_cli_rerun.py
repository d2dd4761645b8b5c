"""``workflow rerun RUN_ID``: a recorded run reusing what an earlier run's succeeded jobs made.

Each stage appends its label to a log file as it executes, and fails while its
label is listed in a fail file: the log is what the tests count (never timing).
Runs on SQLite and PostgreSQL stores.
"""

from __future__ import annotations

import io
import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddeutil.workflow.cli import main
from ddeutil.workflow.result import Status
from ddeutil.workflow.store import RunFilter, RunStore, TriggerKind, open_store

CONF = """
flaky:
  type: Pipeline
  params:
    tag: {type: str, default: "t0"}
  jobs:
    extract:
      stages:
        - name: pull
          id: pull
          bash: |
            echo extract >> "$EXEC_LOG"
            if grep -qx extract "$FAIL_FILE"; then exit 3; fi
    fan:
      needs: [extract]
      strategy:
        matrix:
          part: [1, 2, 3]
      stages:
        - name: work
          bash: |
            echo "fan-${{ matrix.part }}" >> "$EXEC_LOG"
            if grep -qx "fan-${{ matrix.part }}" "$FAIL_FILE"; then exit 3; fi
            echo "${{ params.tag }} ${{ release.logical_date }}" >> "$SEEN_FILE"
    report:
      needs: [fan]
      stages:
        - name: write
          bash: |
            echo report >> "$EXEC_LOG"
            if grep -qx report "$FAIL_FILE"; then exit 3; fi
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "p.yml").write_text(textwrap.dedent(CONF), encoding="utf-8")
    (tmp_path / "fail.txt").write_text("")
    return tmp_path


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, root: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{root / 'db' / 'runs.db'}"


@pytest.fixture
def store(store_url: str, env: dict[str, str]) -> Iterator[RunStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def env(root: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "WORKFLOW_ROOT_PATH": str(root),
        "WORKFLOW_CORE_TIMEZONE": "UTC",
        "WORKFLOW_API_DB_URL": store_url,
        "EXEC_LOG": str(root / "executed.log"),
        "FAIL_FILE": str(root / "fail.txt"),
        "SEEN_FILE": str(root / "seen.txt"),
    }
    for name in [k for k in os.environ if k.startswith("WORKFLOW_")]:
        monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--log-format", "text", *argv], out=out)
    return code, out.getvalue()


def executed(root: Path) -> list[str]:
    """The labels logged since the last call, sorted (and forget them)."""
    log = root / "executed.log"
    lines = sorted(log.read_text().split()) if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def failed_run(root: Path, store: RunStore, *failing: str) -> str:
    (root / "fail.txt").write_text("\n".join(failing) + "\n")
    code, _ = cli("run", "flaky", "-p", "tag=first")
    assert code == 1
    (run,) = store.list_runs(RunFilter(pipeline="flaky"), limit=1)
    assert run.status is Status.FAILED
    (root / "fail.txt").write_text("")
    return run.run_id


def test_a_rerun_runs_the_failed_combination_and_its_downstream_only(
    root: Path, store: RunStore
) -> None:
    first = failed_run(root, store, "fan-2")
    assert executed(root) == ["extract", "fan-1", "fan-2", "fan-3"]
    code, out = cli("rerun", first)
    assert code == 0, out
    assert executed(root) == ["fan-2", "report"]
    assert "REUSED" in out
    assert f"job extract (from run {first})" in out
    assert f"rerun of run {first} (FAILED)" in out
    newest = store.list_runs(RunFilter(pipeline="flaky"), limit=1)[0]
    assert (newest.status, newest.rerun_of, newest.trigger) == (
        Status.SUCCESS,
        first,
        TriggerKind.MANUAL,
    )
    assert newest.params == {"tag": "first"}  # the earlier run's params ...
    seen = set((root / "seen.txt").read_text().splitlines())
    assert len(seen) == 1  # ... and logical date: fan-2 now saw what fan-1 and fan-3 did
    assert next(iter(seen)).startswith("first ")


def test_a_rerun_from_a_job_reruns_it_and_its_downstream(root: Path, store: RunStore) -> None:
    first = failed_run(root, store, "report")
    executed(root)
    code, _ = cli("rerun", first, "--from-job", "fan")
    assert code == 0
    assert executed(root) == ["fan-1", "fan-2", "fan-3", "report"]


def test_the_json_result_names_the_run_it_reruns(root: Path, store: RunStore) -> None:
    first = failed_run(root, store, "extract")
    code, out = cli("rerun", first, "--json")
    assert code == 0
    body = json.loads(out)
    assert (body["status"], body["rerun_of"]) == ("SUCCESS", first)
    assert body["context"]["needs"] == {"extract": [], "fan": ["extract"], "report": ["fan"]}


def test_rerun_refusals_are_bad_input(
    root: Path, store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("rerun", "20990101T000000-00000000")[0] == 2
    assert "no run with id '20990101T000000-00000000'" in capsys.readouterr().err
    first = failed_run(root, store, "fan-1")
    capsys.readouterr()
    assert cli("rerun", first, "--from-job", "nope")[0] == 2
    assert "job 'nope'" in capsys.readouterr().err
    conf = root / "conf" / "p.yml"
    conf.write_text(conf.read_text().replace("needs: [fan]", "needs: [extract]"))
    assert cli("rerun", first)[0] == 2
    err = capsys.readouterr().err
    assert "job 'report' needs changed: ['fan'] -> ['extract']" in err
    assert "--force" in err
    executed(root)
    assert cli("rerun", first, "--force")[0] == 0
    assert executed(root) == ["fan-1", "report"]


def test_a_succeeded_run_has_nothing_to_rerun(
    root: Path, store: RunStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("run", "flaky")[0] == 0
    (run,) = store.list_runs(RunFilter(pipeline="flaky"), limit=1)
    assert cli("rerun", run.run_id)[0] == 2
    assert "nothing to rerun" in capsys.readouterr().err
