"""Stage output lines reach the run's log, masked and capped, and ``workflow run``."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from _terminal import run_on_terminal
from ddeutil.workflow.cli import main
from ddeutil.workflow.engine.pipeline import Pipeline
from ddeutil.workflow.engine.stage_output import OUTPUT_LOGGER
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.logs import RunLogRouter
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.settings import Settings

SECRET = "sekrit-out-0123456789"

CONF = """
talk:
  type: Pipeline
  jobs:
    main:
      stages:
        - name: Echo
          id: echo
          bash: |
            echo "hello from bash"
            echo "the token is $OUT_TEST_TOKEN"
            echo "to stderr" >&2
        - name: Py
          id: py
          run: |
            print("hello from python")
flood:
  type: Pipeline
  jobs:
    main:
      stages:
        - name: Many
          id: many
          bash: seq 100000
grid:
  type: Pipeline
  jobs:
    main:
      strategy:
        matrix:
          os: [linux, mac]
      stages:
        - name: Say
          id: say
          bash: echo "on ${{ matrix.os }}"
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "p.yml").write_text(textwrap.dedent(CONF), encoding="utf-8")
    for name in [k for k in os.environ if k.startswith("WORKFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(tmp_path))
    monkeypatch.setenv("WORKFLOW_CORE_TIMEZONE", "UTC")
    monkeypatch.setenv("OUT_TEST_TOKEN", SECRET)
    return tmp_path


@pytest.fixture
def info() -> Iterator[None]:
    logger = logging.getLogger("ddeutil.workflow")
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(logging.NOTSET)


def run_logged(root: Path, name: str, **env: str) -> list[dict[str, object]]:
    """Run ``name`` in-process the way an executor does: its records routed to its file."""
    settings = Settings.from_env({"WORKFLOW_ROOT_PATH": str(root), **env})
    pipeline = Pipeline.from_loader(name, settings=settings, loader=Loader.from_settings(settings))
    masker = Masker.from_env(os.environ)
    with RunLogRouter.installed(root / "logs", masker) as router, router.capture("r1") as path:
        result = pipeline.execute({}, settings=settings, masker=masker, run_id="r1")
    assert result.status.value == "SUCCESS"
    return [json.loads(line) for line in path.read_text().splitlines()]


def output(lines: list[dict[str, object]]) -> list[str]:
    return [str(line["message"]) for line in lines if "stream" in line]


def test_bash_and_python_lines_are_in_the_run_log_masked(root: Path, info: None) -> None:
    lines = run_logged(root, "talk")
    assert output(lines) == [
        "hello from bash",
        "the token is ***",
        "to stderr",
        "hello from python",
    ]
    echo = next(line for line in lines if line["message"] == "hello from bash")
    assert (echo["job"], echo["stage"], echo["stream"]) == ("main", "echo", "stdout")
    assert SECRET not in json.dumps(lines)


def test_a_flood_of_lines_is_capped_with_one_more_lines_line(root: Path, info: None) -> None:
    lines = output(run_logged(root, "flood", WORKFLOW_CORE_STAGE_LOG_LINES="50"))
    assert lines[:50] == [str(n) for n in range(1, 51)]
    assert len(lines) == 51
    assert lines[50].startswith("... 99950 more lines not logged")


def test_matrix_values_are_in_the_lines_of_a_matrix_job(root: Path, info: None) -> None:
    lines = [line for line in run_logged(root, "grid") if "stream" in line]
    assert sorted(str(line["message"]) for line in lines) == [
        "[os=linux] on linux",
        "[os=mac] on mac",
    ]
    assert sorted(str(line["matrix"]) for line in lines) == ["{'os': 'linux'}", "{'os': 'mac'}"]


def test_without_a_listener_nothing_is_logged_and_prints_pass_through(root: Path) -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger(OUTPUT_LOGGER)
    handler = Keep(logging.INFO)
    logger.addHandler(handler)
    try:
        logging.getLogger("ddeutil.workflow").setLevel(logging.WARNING)
        settings = Settings.from_env({"WORKFLOW_ROOT_PATH": str(root)})
        pipeline = Pipeline.from_loader(
            "talk", settings=settings, loader=Loader.from_settings(settings)
        )
        assert pipeline.execute({}, settings=settings).status.value == "SUCCESS"
    finally:
        logger.removeHandler(handler)
        logging.getLogger("ddeutil.workflow").setLevel(logging.NOTSET)
    assert seen == []


def test_a_recorded_run_shows_its_lines_in_workflow_logs(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOW_API_DB_URL", f"sqlite:///{root / 'runs.db'}")
    out = io.StringIO()
    assert main(["--log-format", "text", "run", "talk"], out=out) == 0
    run_id = out.getvalue().rsplit("(run ", 1)[1].split(")")[0]
    logs = io.StringIO()
    assert main(["logs", run_id], out=logs) == 0
    text = logs.getvalue()
    assert "hello from bash" in text
    assert "hello from python" in text
    assert "the token is ***" in text
    assert SECRET not in text


def test_workflow_run_on_a_terminal_prints_each_stage_once_and_its_lines(root: Path) -> None:
    env = {**os.environ, "WORKFLOW_ROOT_PATH": str(root)}
    argv = [sys.executable, "-m", "ddeutil.workflow", "run", "talk", "--no-record"]
    code, text = run_on_terminal(argv, env=env, cwd=root)
    assert code == 0, text
    assert text.count("main / echo") == 2, text  # RUNNING and SUCCESS
    assert text.count("SUCCESS") == 4, text  # two stages, the job, the pipeline
    assert "stage 'Echo' SUCCESS" not in text  # the console log does not repeat it
    assert "| hello from bash" in text
    assert "! to stderr" in text
    assert "| hello from python" in text
    assert "the token is ***" in text
    assert SECRET not in text
