"""The CLI frame: verb routing, lazy verb modules, settings errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ddeutil.workflow.cli import VERB_MODULES, _requested_verb, build_parser, main


@pytest.mark.parametrize(
    ("argv", "verb"),
    [
        (["run", "x"], "run"),
        (["--log-format", "json", "run", "x"], "run"),
        (["--log-level", "DEBUG", "validate"], "validate"),
        (["--version"], None),
        ([], None),
    ],
)
def test_requested_verb_skips_global_options(argv: list[str], verb: str | None) -> None:
    assert _requested_verb(argv) == verb


def test_every_verb_of_the_spec_is_registered() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    registered = set(sub.choices)  # type: ignore[arg-type]
    spec = {
        "run",
        "validate",
        "list",
        "next",
        "scheduler",
        "runs",
        "logs",
        "health",
        "schema",
        "api",
    }
    assert spec <= registered
    assert registered == set(VERB_MODULES)


def test_run_does_not_import_the_store_or_the_api() -> None:
    code = (
        "import sys\n"
        "from ddeutil.workflow.cli import build_parser\n"
        "build_parser(['run', 'x'])\n"
        "heavy = [m for m in ('ddeutil.workflow.store', 'ddeutil.workflow.cli.ops',"
        " 'ddeutil.workflow.api', 'fastapi') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bad_setting_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKFLOW_CORE_MAX_JOB_PARALLEL", "abc")
    assert main(["validate"]) == 2
    err = capsys.readouterr().err
    assert "WORKFLOW_CORE_MAX_JOB_PARALLEL" in err
    assert "'abc'" in err


def test_python_dash_m_runs_the_same_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ddeutil.workflow", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0
    assert out.stdout.startswith("workflow ")
