"""``workflow run --logical-date T``: a run by hand for a past day; the bundled examples run as documented."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ddeutil.workflow.cli import main
from ddeutil.workflow.store import RunFilter, open_store

REPO = Path(__file__).resolve().parents[1]

DATED = """
dated:
  type: Pipeline
  jobs:
    only:
      stages:
        - name: day
          id: day
          run: day = str(when)
          vars: {when: "${{ release.logical_date }}"}
"""


@pytest.fixture
def cli(
    root: Path, write_conf: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str]]:
    write_conf("dated.yml", DATED)
    for name in [k for k in os.environ if k.startswith("WORKFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))
    monkeypatch.setenv("WORKFLOW_CORE_TIMEZONE", "Asia/Bangkok")

    def run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        return main(["--log-level", "WARNING", *argv], out=out), out.getvalue()

    return run


def _day(out: str) -> str:
    return str(json.loads(out)["context"]["jobs"]["only"]["stages"]["day"]["outputs"]["day"])


@pytest.mark.parametrize(
    ("given", "seen"),
    [
        ("2024-01-31", "2024-01-31 00:00:00+07:00"),  # naive: the configured zone
        ("2024-01-31T01:30:00Z", "2024-01-31 01:30:00+00:00"),
        ("2024-01-31T01:30+02:00", "2024-01-31 01:30:00+02:00"),
    ],
)
def test_logical_date_sets_release_logical_date(
    cli: Callable[..., tuple[int, str]], given: str, seen: str
) -> None:
    code, out = cli("run", "dated", "--no-record", "--logical-date", given, "--json")
    assert code == 0
    assert _day(out) == seen


def test_a_recorded_run_keeps_its_logical_date(
    cli: Callable[..., tuple[int, str]], root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{root / 'runs.db'}"
    monkeypatch.setenv("WORKFLOW_API_DB_URL", url)
    assert cli("run", "dated", "--logical-date", "2024-01-31", "--json")[0] == 0
    store = open_store(url)
    try:
        (run,) = store.list_runs(RunFilter(pipeline="dated"))
        assert run.logical_date is not None
        assert run.logical_date.isoformat() == "2024-01-30T17:00:00+00:00"
    finally:
        store.close()


def test_a_bad_logical_date_is_bad_input(
    cli: Callable[..., tuple[int, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli("run", "dated", "--logical-date", "last tuesday")
    assert exited.value.code == 2
    assert "expected an ISO 8601 date or date-time" in capsys.readouterr().err


def test_the_bundled_examples_header_command_runs(tmp_path: Path) -> None:
    header = (REPO / "conf" / "examples.yml").read_text().splitlines()[:3]
    command = next(m.group(1) for line in header if (m := re.search(r"(workflow run .+)$", line)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env |= {
        "WORKFLOW_ROOT_PATH": str(REPO),
        "WORKFLOW_API_DB_URL": f"sqlite:///{tmp_path / 'r.db'}",
    }
    words = command.split()[2:]
    done = subprocess.run(
        [sys.executable, "-m", "ddeutil.workflow", "run", *words, "--no-record"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
