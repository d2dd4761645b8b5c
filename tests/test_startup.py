"""Start-up checks: unknown WORKFLOW_* variables warn, a missing conf folder exits 2."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ddeutil.workflow.settings import Settings
from ddeutil.workflow.startup import (
    UnknownVariable,
    conf_path_problem,
    unknown_variables,
    warn_unknown_variables,
)

TIMEOUT = 60


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(WORKFLOW_ROOT_PATH=str(root), WORKFLOW_LOG_ENABLE_WRITE="false", **extra)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_an_unknown_variable_is_named_with_the_closest_known_one() -> None:
    env = {
        "WORKFLOW_APP_MAX_PROCESS": "4",
        "WORKFLOW_CORE_TIMEZONE": "UTC",
        "WORKFLOW_ZZZ": "1",
        "HOME": "/x",
    }
    assert unknown_variables(env) == [
        UnknownVariable("WORKFLOW_APP_MAX_PROCESS", "WORKFLOW_APP_PROCESS_WORKER"),
        UnknownVariable("WORKFLOW_ZZZ", None),
    ]


def test_the_same_words_in_another_order_are_the_closest() -> None:
    assert unknown_variables({"WORKFLOW_CORE_CONF_PATH": "conf"}) == [
        UnknownVariable("WORKFLOW_CORE_CONF_PATH", "WORKFLOW_CORE_PATH_CONF")
    ]


def test_the_test_suite_variables_are_allowed() -> None:
    env = {"WORKFLOW_TEST_POSTGRES_URL": "postgresql://x", "WORKFLOW_TEST_AMQP_URL": "amqp://x"}
    assert unknown_variables(env) == []


def test_each_unknown_variable_is_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ddeutil.workflow.startup"):
        warn_unknown_variables({"WORKFLOW_APP_MAX_PROCESS": "4", "WORKFLOW_LOG_LEVEL": "INFO"})
    assert [r.getMessage() for r in caplog.records] == [
        "unknown setting WORKFLOW_APP_MAX_PROCESS is ignored; "
        "did you mean WORKFLOW_APP_PROCESS_WORKER?"
    ]


def test_the_cli_warns_about_an_unknown_variable_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    env = _env(tmp_path, WORKFLOW_APP_MAX_PROCESS="4", WORKFLOW_TEST_ANYTHING="1")
    done = _run(["-m", "ddeutil.workflow", "--log-format", "text", "list"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert output.count("unknown setting WORKFLOW_APP_MAX_PROCESS is ignored") == 1
    assert "did you mean WORKFLOW_APP_PROCESS_WORKER?" in output
    assert "WORKFLOW_TEST_ANYTHING" not in output


def test_conf_path_problem_names_the_folder(tmp_path: Path) -> None:
    settings = Settings.from_env({"WORKFLOW_ROOT_PATH": str(tmp_path)})
    problem = conf_path_problem(settings)
    assert problem is not None
    assert f"{tmp_path / 'conf'}' does not exist" in problem
    assert "WORKFLOW_CORE_PATH_CONF" in problem
    (tmp_path / "conf").mkdir()
    assert conf_path_problem(settings) is None


def test_a_conf_path_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "conf").write_text("", encoding="utf-8")
    settings = Settings.from_env({"WORKFLOW_ROOT_PATH": str(tmp_path)})
    assert "is not a folder" in (conf_path_problem(settings) or "")


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "ddeutil.workflow.app", "--once"],
        ["-m", "ddeutil.workflow", "scheduler", "--once"],
        ["-m", "ddeutil.workflow", "validate"],
        ["-m", "ddeutil.workflow", "list"],
        ["-m", "ddeutil.workflow", "api", "--port", "0"],
        ["-m", "uvicorn", "ddeutil.workflow.api:app", "--port", "0"],
    ],
    ids=["daemon", "scheduler", "validate", "list", "api", "uvicorn"],
)
def test_a_missing_conf_folder_exits_2_naming_it(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "no-such-conf"
    token = "a-test-token-0123456789"
    env = _env(tmp_path, WORKFLOW_CORE_PATH_CONF="no-such-conf", WORKFLOW_API_TOKEN=token)
    done = _run(args, env, tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"conf folder '{missing}' does not exist" in done.stderr
    assert not (tmp_path / ".workflow" / "runs.db").exists()  # refused before any work
