"""``workflow run`` and ``workflow schema``: output, exit codes, masking, Ctrl-C."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ddeutil.workflow.cli import main
from hooks_pkg.engine import wait_dead

Cli = Callable[..., tuple[int, str]]
"""Runs the CLI with arguments; returns the exit code and what it printed."""

PIPELINES = """
hello:
  type: Pipeline
  params:
    who: str
    times: {type: int, default: 2}
  jobs:
    greet:
      strategy:
        matrix: {n: [1, 2]}
      stages:
        - name: "Say hi ${{ matrix.n }}"
          echo: "hi ${{ params.who }}"
        - name: count
          run: total = times * 10
          vars: {times: "${{ params.times }}"}
    after:
      needs: [greet]
      stages:
        - name: leak
          bash: echo "key=$API_TOKEN"

broken:
  type: Pipeline
  jobs:
    j:
      stages:
        - name: boom
          run: raise RuntimeError("token super-secret-value leaked")
"""


@pytest.fixture
def cli(
    root: Path, write_conf: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cli]:
    write_conf("cli.yml", PIPELINES)
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))
    monkeypatch.setenv("WORKFLOW_CORE_TIMEZONE", "UTC")
    monkeypatch.setenv("API_TOKEN", "super-secret-value")
    before = list(logging.getLogger().handlers)
    level = logging.getLogger().level

    def run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = main(["--log-format", "text", "--log-level", "WARNING", *argv], out=out)
        return code, out.getvalue()

    yield run
    root_logger = logging.getLogger()
    for handler in list(root_logger.handlers):
        if handler not in before:
            root_logger.removeHandler(handler)
    root_logger.setLevel(level)


def test_run_prints_a_line_per_stage_and_job_and_exits_0(cli: Cli) -> None:
    code, out = cli("run", "hello", "-p", "who=team", "-p", "times=3")
    assert code == 0
    lines = out.splitlines()
    stage_lines = [line for line in lines if " greet / " in line]
    assert len(stage_lines) == 4
    assert any("greet / say-hi-1 (Say hi 1) [n=1]" in line for line in stage_lines)
    assert all(line.startswith("SUCCESS") and "s  " in line for line in stage_lines)
    assert any(line.startswith("SUCCESS") and line.endswith("job greet") for line in lines)
    assert "after / leak" in out
    assert lines[-1].startswith("pipeline hello: SUCCESS in ")


def test_run_json_prints_the_full_masked_result(cli: Cli) -> None:
    code, out = cli("run", "hello", "-p", "who=team", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "SUCCESS"
    assert data["context"]["params"] == {"who": "team", "times": 2}
    strategies = data["context"]["jobs"]["greet"]["strategies"]
    assert [s["stages"]["count"]["outputs"]["total"] for s in strategies.values()] == [20, 20]
    assert data["context"]["jobs"]["after"]["stages"]["leak"]["outputs"]["stdout"] == "key=***"
    assert "super-secret-value" not in out


def test_a_failed_run_exits_1_and_masks_the_error(cli: Cli) -> None:
    code, out = cli("run", "broken")
    assert code == 1
    assert "FAILED" in out
    assert "error j/boom: RuntimeError: token *** leaked" in out
    assert "super-secret-value" not in out


def test_bad_params_exit_2_listing_every_problem(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = cli("run", "hello", "-p", "times=many")
    assert code == 2
    err = capsys.readouterr().err
    assert "who: is required" in err
    assert "times: " in err
    assert "expected a whole number" in err
    assert out == ""


def test_a_malformed_param_exits_2(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = cli("run", "hello", "-p", "no-equals-sign")
    assert code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_an_unknown_pipeline_exits_2_naming_it(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = cli("run", "ghost")
    assert code == 2
    assert "'ghost'" in capsys.readouterr().err


def test_schema_prints_the_json_schema(cli: Cli, tmp_path: Path) -> None:
    code, out = cli("schema")
    assert code == 0
    schema = json.loads(out)
    assert "PipelineTemplate" in schema["$defs"]
    target = tmp_path / "schema.json"
    code, out = cli("schema", "-o", str(target))
    assert code == 0
    assert json.loads(target.read_text()) == schema


def test_ctrl_c_cancels_the_run_and_kills_its_shell_children(
    root: Path, write_conf: Callable[[str, str], Path], tmp_path: Path
) -> None:
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    pidfile = tmp_path / "child.pid"
    write_conf(
        "slow.yml",
        f"""
slow:
  type: Pipeline
  jobs:
    j:
      stages:
        - name: wait
          bash: |
            sleep 30 &
            echo $! > {pidfile}
            echo go > {fifo}
            wait
""",
    )
    env = {**os.environ, "WORKFLOW_ROOT_PATH": str(root), "WORKFLOW_CORE_TIMEZONE": "UTC"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ddeutil.workflow", "--log-level", "WARNING", "run", "slow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with fifo.open() as fh:
            assert fh.read().strip() == "go"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "pipeline slow: CANCELLED" in out
    assert "SIGINT received" in out
    assert time.perf_counter() - started < 15
    assert wait_dead(int(pidfile.read_text()))
