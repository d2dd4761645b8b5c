"""What a cold ``workflow run`` loads: only what its pipeline uses.

A cold run is mostly imports and pydantic building validators (see
``benchmarks/bench_engine.py``), so what only some pipelines need is loaded on
first use: the bash stage's ``subprocess``, the schedule (``on``/``cron``)
modules, the validators of the param kinds, of ``retry`` and of ``strategy``.
These tests pin that in a fresh interpreter by what ends up loaded, not by
timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

THREE = """
three:
  type: Pipeline
  jobs:
    j:
      stages:
        - {name: empty, echo: hello}
        - {name: assign, run: x = 1}
        - {name: hook, uses: tasks/add-one@v1, with: {x: 1}}

scheduled:
  type: Pipeline
  on: {cron: "*/5 * * * *"}
  params: {who: str}
  jobs:
    j:
      strategy: {matrix: {n: [1]}}
      stages:
        - {name: shell, bash: "echo hi ${{ params.who }}", retry: 2}
"""

HOOKS = """
from ddeutil.workflow.registry import tag


@tag("v1", alias="add-one")
def add_one(x: int) -> dict:
    return {"y": x + 1}
"""

# Runs the CLI in this interpreter, then reports what it loaded.
PROBE = """
import sys
from ddeutil.workflow.cli import main

code = main(sys.argv[1:])
from ddeutil.workflow.params import PARAM_TYPES
from ddeutil.workflow.stages.base import Retry
from ddeutil.workflow.strategy import Strategy

built = [c.__name__ for c in (*PARAM_TYPES.values(), Retry, Strategy) if c.__pydantic_complete__]
print("MODULES", *sorted(sys.modules))
print("BUILT", *built)
sys.exit(code)
"""

# Needed only by some pipelines, or only by other verbs.
LAZY = (
    "subprocess",
    "concurrent.futures",
    "ddeutil.workflow.on",
    "ddeutil.workflow.cron",
    "ddeutil.workflow.store",
    "ddeutil.workflow.api",
    "ddeutil.workflow.scheduler",
    "ddeutil.workflow.cli.ops",
    "fastapi",
    "croniter",
)


def _run(root: Path, *argv: str) -> tuple[set[str], set[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKFLOW_", "PYTHON"))}
    env.update(
        PYTHONPATH=str(root / "pkg"),
        WORKFLOW_ROOT_PATH=str(root),
        WORKFLOW_CORE_REGISTRY="ddeutil.workflow,cold_hooks",
        WORKFLOW_CORE_TIMEZONE="UTC",
        WORKFLOW_LOG_ENABLE_WRITE="false",
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "--log-format", "text", "run", *argv],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = {line.split(" ", 1)[0]: line.split()[1:] for line in out.stdout.splitlines()}
    return set(lines["MODULES"]), set(lines["BUILT"])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "pipelines.yml").write_text(textwrap.dedent(THREE), encoding="utf-8")
    hooks = tmp_path / "pkg" / "cold_hooks"
    hooks.mkdir(parents=True)
    (hooks / "__init__.py").write_text("")
    (hooks / "tasks.py").write_text(HOOKS)
    return tmp_path


def test_a_run_without_bash_schedules_or_params_loads_none_of_their_modules(root: Path) -> None:
    modules, built = _run(root, "three")
    assert "ddeutil.workflow.pipeline" in modules
    assert "cold_hooks.tasks" in modules
    assert sorted(m for m in LAZY if m in modules) == []
    assert built == set()


def test_what_a_pipeline_uses_is_loaded_when_it_runs(root: Path) -> None:
    modules, built = _run(root, "scheduled", "-p", "who=team")
    assert {"subprocess", "ddeutil.workflow.on", "ddeutil.workflow.cron"} <= modules
    assert built == {"StrParam"}  # retry and strategy validate inside the pipeline's validator
