"""What a cold ``workflow run`` costs beyond its pipeline: imports and the GC.

A cold run is mostly imports and pydantic building validators (see
``benchmarks/bench_engine.py``), so what only some pipelines need is loaded on
first use: the bash stage's ``subprocess``, the schedule (``on``/``cron``/``dst``)
modules, the param kinds (``param_types``: a pipeline without params never
imports them, one with params builds only the validators of the kinds it
declares), and the validators of ``retry`` and ``strategy``.
The process's command also keeps the cyclic garbage collector off what it
loaded (never garbage), while an in-process caller of ``main`` gets the
collector back as it was. These tests pin that in a fresh interpreter by what
ends up loaded or frozen, not by timing.
"""

from __future__ import annotations

import gc
import io
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

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

# Runs the CLI as the process's command (argv read from sys.argv, as `python -m`
# and the console script do), then reports what it loaded.
PROBE = """
import gc, sys
from ddeutil.workflow.cli import main

code = main()
print("FROZEN", gc.get_freeze_count())
print("MODULES", *sorted(sys.modules))
from ddeutil.workflow.engine.param_types import PARAM_TYPES
from ddeutil.workflow.engine.stages.base import Retry
from ddeutil.workflow.engine.strategy import Strategy

built = [c.__name__ for c in (*PARAM_TYPES.values(), Retry, Strategy) if c.__pydantic_complete__]
print("BUILT", *built)
sys.exit(code)
"""

# Needed only by some pipelines, or only by other verbs.
LAZY = (
    "subprocess",
    "concurrent.futures",
    "ddeutil.workflow.schedules.on",
    "ddeutil.workflow.schedules.cron",
    "ddeutil.workflow.schedules.dst",
    "ddeutil.workflow.schedules.hashed",
    "ddeutil.workflow.engine.param_types",
    "ddeutil.workflow.store",
    "ddeutil.workflow.api",
    "ddeutil.workflow.scheduling.scheduler",
    "ddeutil.workflow.cli.ops",
    "fastapi",
    "croniter",
)


def _run(root: Path, *argv: str) -> tuple[set[str], set[str], int]:
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
    return set(lines["MODULES"]), set(lines["BUILT"]), int(lines["FROZEN"][0])


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
    modules, built, _ = _run(root, "three")
    assert "ddeutil.workflow.engine.pipeline" in modules
    assert "cold_hooks.tasks" in modules
    assert sorted(m for m in LAZY if m in modules) == []
    assert built == set()


def test_what_a_pipeline_uses_is_loaded_when_it_runs(root: Path) -> None:
    modules, built, _ = _run(root, "scheduled", "-p", "who=team")
    used = {"subprocess", "ddeutil.workflow.engine.param_types"}
    assert (
        used
        | {
            "ddeutil.workflow.schedules.on",
            "ddeutil.workflow.schedules.cron",
            "ddeutil.workflow.schedules.dst",
        }
        <= modules
    )
    assert built == {"StrParam"}  # retry and strategy validate inside the pipeline's validator


def test_the_process_command_keeps_what_it_loaded_out_of_the_collectors_sight(
    root: Path,
) -> None:
    _, _, frozen = _run(root, "three")
    assert frozen > 10_000  # modules, classes and validators: never garbage


def test_an_in_process_run_leaves_the_garbage_collector_as_it_found_it(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ddeutil.workflow.cli import main

    (root / "conf" / "pipelines.yml").write_text(
        "plain:\n  type: Pipeline\n  jobs: {j: {stages: [{name: a, run: x = 1}]}}\n"
    )
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))
    monkeypatch.setenv("WORKFLOW_LOG_ENABLE_WRITE", "false")
    handlers = list(logging.getLogger().handlers)
    level = logging.getLogger().level
    frozen = gc.get_freeze_count()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            argv = ["--log-format", "text", "--log-level", "ERROR", "run", "plain"]
            code = main(argv, out=io.StringIO())
            assert (code, gc.isenabled(), gc.get_freeze_count()) == (0, enabled, frozen)
    finally:
        gc.enable()
        root_logger = logging.getLogger()
        for handler in [h for h in root_logger.handlers if h not in handlers]:
            root_logger.removeHandler(handler)
        root_logger.setLevel(level)


# The daemon's parent process: its catalog is filled by a helper process, so
# listing and validating the conf folder loads none of the engine there.
DAEMON_PROBE = """
import json, sys
first = sys.argv[1]
if first == "daemon":
    import ddeutil.workflow.app.daemon  # what the daemon's own imports bring
before = {m for m in sys.modules if m.startswith("ddeutil.workflow.engine")}

from ddeutil.workflow.loader import Loader
from ddeutil.workflow.scheduling.catalog import PipelineCatalog
from ddeutil.workflow.scheduling.validator_process import ProcessValidator
from ddeutil.workflow.settings import Settings

if __name__ == "__main__":
    settings = Settings.from_env()
    with ProcessValidator() as validator:
        catalog = PipelineCatalog(Loader.from_settings(settings), settings, validator)
        catalog.reload(force=False)
        catalog.reload(force=True)
        entries = {e.name: [on.key for on in e.schedules] for e in catalog}
    after = {m for m in sys.modules if m.startswith("ddeutil.workflow.engine")}
    print(json.dumps({
        "before": sorted(before), "added": sorted(after - before), "entries": entries,
        "pydantic": "pydantic" in sys.modules,
    }))
"""

DAEMON_CONF = """
every-5: {type: on.On, cron: "*/5 * * * *"}
named: {type: Pipeline, on: every-5, jobs: {j: {stages: [{name: a, run: "x = 1"}]}}}
inline:
  type: ddeutil.workflow.pipeline.Pipeline
  on: {cron: "0 1 * * *"}
  params: {who: {type: str, default: team}}
  jobs: {j: {stages: [{name: s, bash: "echo hi"}]}}
short: {type: pipeline.Pipeline, on: [every-5]}
"""


def _daemon_probe(root: Path, first: str) -> dict[str, Any]:
    import json

    (root / "conf" / "pipelines.yml").write_text(DAEMON_CONF, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKFLOW_", "PYTHON"))}
    env.update(WORKFLOW_ROOT_PATH=str(root), WORKFLOW_CORE_TIMEZONE="UTC")
    script = root / "probe.py"
    script.write_text(DAEMON_PROBE, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(script), first],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


EXPECTED_ENTRIES = {
    "inline": ["0 1 * * *@UTC"],
    "named": ["*/5 * * * *@UTC"],
    "short": ["*/5 * * * *@UTC"],
}


def test_loading_the_conf_with_the_helper_process_validator_never_imports_the_engine(
    root: Path,
) -> None:
    """The catalog, the loader and the registry load no engine module in the parent.

    Nor pydantic: the catalog's schedules are plain records (``CronSchedule``).
    """
    result = _daemon_probe(root, "catalog")
    assert result["entries"] == EXPECTED_ENTRIES
    assert result["before"] == []
    assert result["added"] == []
    assert result["pydantic"] is False


def test_the_daemons_parent_process_never_imports_the_engine(root: Path) -> None:
    """The daemon module, its scheduler, process pool and catalog: no engine module.

    Only worker processes (and the validator's helper process) run the engine.
    """
    result = _daemon_probe(root, "daemon")
    assert result["entries"] == EXPECTED_ENTRIES
    assert result["before"] == []
    assert result["added"] == []


@pytest.mark.parametrize(
    "module",
    [
        "ddeutil.workflow.dispatch.processes",
        "ddeutil.workflow.dispatch.base",
        "ddeutil.workflow.dispatch.records",
    ],
)
def test_the_process_pool_and_the_seam_load_no_engine_module(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "print(sorted(m for m in sys.modules if m.startswith('ddeutil.workflow.engine')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
