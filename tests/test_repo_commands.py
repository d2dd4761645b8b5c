"""The README's two commands are real: CI runs the test one, and the start one names the app."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _shell_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```shell\n(.*?)```", text, flags=re.S)]


def test_quick_start_has_exactly_two_one_line_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = _shell_blocks(quick)
    assert len(blocks) == 2
    assert all("\n" not in block for block in blocks)
    start, test = blocks
    assert "python -m ddeutil.workflow.app" in start
    assert "'.[test]'" in test
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    test_command = _shell_blocks(quick)[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()
    assert "|| true" not in ci  # a red test run must not be hidden
    assert "set -euo pipefail" in ci


def test_bundled_conf_exists_for_the_start_command() -> None:
    assert any((ROOT / "conf").rglob("*.yml"))
