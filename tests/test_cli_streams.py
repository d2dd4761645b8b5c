"""The command line as a process: a closed pipe, and the global options on either side of the verb."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ddeutil.workflow.cli import build_parser

CONF = """
every-minute:
  type: Pipeline
  on:
    - cronjob: "* * * * *"
      timezone: UTC
  jobs:
    only:
      stages:
        - name: nothing
"""


@pytest.fixture
def app_root(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "p.yml").write_text(textwrap.dedent(CONF), encoding="utf-8")
    return tmp_path


def test_a_reader_that_goes_away_ends_the_command_quietly(app_root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env |= {"WORKFLOW_ROOT_PATH": str(app_root), "WORKFLOW_CORE_TIMEZONE": "UTC"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ddeutil.workflow", "next", "every-minute", "-n", "20000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=app_root,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline()  # like `| head -1`: read a line, then go away
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141  # 128 + SIGPIPE, as the shell reports `yes | head`
    assert b"Traceback" not in err
    assert b"BrokenPipeError" not in err


@pytest.mark.parametrize(
    ("argv", "fmt", "level"),
    [
        (["--log-format", "json", "--log-level", "DEBUG", "list"], "json", "DEBUG"),
        (["list", "--log-format", "json", "--log-level", "DEBUG"], "json", "DEBUG"),
        (["--log-level", "DEBUG", "list", "--log-format", "text"], "text", "DEBUG"),
        (["list"], "auto", None),
    ],
)
def test_log_options_go_before_or_after_the_verb(
    argv: list[str], fmt: str, level: str | None
) -> None:
    args = build_parser(argv).parse_args(argv)
    assert (args.log_format, args.log_level) == (fmt, level)


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["runs"], 2),
        (["logs", "20240101T000000-00000000"], 2),
        (["health"], 1),
        (["cancel", "20240101T000000-00000000"], 2),
        (["prune", "--older-than", "1"], 1),
    ],
)
def test_verbs_that_read_runs_never_create_a_store(
    app_root: Path, argv: list[str], code: int
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env |= {"WORKFLOW_ROOT_PATH": str(app_root), "WORKFLOW_CORE_TIMEZONE": "UTC"}
    done = subprocess.run(
        [sys.executable, "-m", "ddeutil.workflow", *argv],
        env=env,
        cwd=app_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    store = app_root / ".workflow" / "runs.db"
    assert done.returncode == code, done.stderr
    assert f"no run store at {store}" in done.stdout + done.stderr  # where it looked
    assert not store.exists()
    assert not (app_root / ".workflow").exists()
