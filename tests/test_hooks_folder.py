"""Hooks from the hooks folder: the README's steps, followed literally, run a hook."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ddeutil.workflow.errors import SettingsError
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import RunFilter

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 60
_BLOCK = re.compile(r"^( *)```(\w+)\n(.*?)^\1```", re.S | re.M)


def _steps() -> list[tuple[str, str]]:
    """(language, code) of each fenced block of the README's step-by-step hook section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("#### Your own hook, step by step")
    end = readme.index("A group module may hold several hooks", start)
    return [(lang, textwrap.dedent(body)) for _, lang, body in _BLOCK.findall(readme[start:end])]


def _follow_the_readme(root: Path) -> dict[str, str]:
    """Write the README's files under ``root``; return the variables it exports."""
    exported: dict[str, str] = {}
    for lang, code in _steps():
        if lang == "shell":
            for line in code.splitlines():
                name, _, value = line.removeprefix("export ").partition("=")
                exported[name] = value
            continue
        first = code.splitlines()[0]
        assert first.startswith("# "), f"a {lang} step must start with its file name: {first!r}"
        target = root / first[2:].strip()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code, encoding="utf-8")
    return exported


def _env(root: Path, exported: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(exported, WORKFLOW_LOG_ENABLE_WRITE="false", WORKFLOW_CORE_TIMEZONE="UTC")
    return env


def _workflow(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ddeutil.workflow", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_the_readme_steps_run_the_hook_with_workflow_run(tmp_path: Path) -> None:
    exported = _follow_the_readme(tmp_path)
    assert (tmp_path / "hooks" / "my_hooks" / "tasks.py").is_file()
    assert exported == {"WORKFLOW_CORE_REGISTRY": "ddeutil.workflow,my_hooks"}
    env = _env(tmp_path, exported)  # the root is the current folder, as in the README

    checked = _workflow(["validate"], env, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    done = _workflow(["run", "greet-every-minute", "--json"], env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"greeting": "hello world"' in done.stdout
    listed = _workflow(["list"], env, tmp_path)
    assert "greet-every-minute" in listed.stdout


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_readme_steps_run_the_hook_every_minute_under_the_daemon(tmp_path: Path) -> None:
    env = _env(tmp_path, _follow_the_readme(tmp_path))
    del env["WORKFLOW_LOG_ENABLE_WRITE"]  # the default, as a new user has it: a file per run
    out = tmp_path / "daemon.out"
    with out.open("w", encoding="utf-8") as sink:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "ddeutil.workflow", "--log-format", "text", "scheduler"],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 100  # the next minute boundary, and start-up
            while "run finished: SUCCESS" not in out.read_text(encoding="utf-8"):
                assert daemon.poll() is None, out.read_text(encoding="utf-8")
                assert time.monotonic() < deadline, out.read_text(encoding="utf-8")
                time.sleep(0.2)
        finally:
            daemon.send_signal(signal.SIGINT)
            assert daemon.wait(timeout=60) == 0
    assert "hello world" in out.read_text(encoding="utf-8")
    settings = Settings.from_env({"WORKFLOW_ROOT_PATH": str(tmp_path)})
    store = open_store(settings.api_db_url)
    try:
        runs = store.list_runs(RunFilter(pipeline="greet-every-minute"))
    finally:
        store.close()
    assert [r.status for r in runs][:1] == [Status.SUCCESS]
    # The README's last step: the hook's output, in the run's log.
    shown = _workflow(["logs", runs[0].run_id], env, tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "hello world" in shown.stdout


def test_without_the_hooks_folder_the_error_names_the_import_and_where_it_looked(
    tmp_path: Path,
) -> None:
    exported = _follow_the_readme(tmp_path)
    (tmp_path / "hooks").rename(tmp_path / "elsewhere")
    done = _workflow(["validate"], _env(tmp_path, exported), tmp_path)
    assert done.returncode == 1
    assert (
        "cannot import my_hooks.tasks: ModuleNotFoundError: No module named 'my_hooks'"
    ) in done.stdout
    assert f"searched: {tmp_path / 'hooks'} (absent), sys.path" in done.stdout
    assert "greet-every-minute" in done.stdout  # the template is named
    assert "defines no" not in done.stdout


def test_a_hooks_folder_outside_the_root_is_used(tmp_path: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    exported = _follow_the_readme(root)
    (root / "hooks").rename(tmp_path / "shared-hooks")
    exported["WORKFLOW_CORE_PATH_HOOKS"] = str(tmp_path / "shared-hooks")
    done = _workflow(["run", "greet-every-minute", "--json"], _env(root, exported), root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"greeting": "hello world"' in done.stdout


def test_hook_folders_resolve_under_the_root(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    settings = Settings.from_env(
        {"WORKFLOW_ROOT_PATH": str(tmp_path), "WORKFLOW_CORE_PATH_HOOKS": "a, a ,/"}
    )
    assert settings.hook_paths == (tmp_path / "a", Path("/"))


def test_the_default_hooks_folder_may_be_absent(tmp_path: Path) -> None:
    settings = Settings.from_env({"WORKFLOW_ROOT_PATH": str(tmp_path)})
    assert settings.hook_paths == (tmp_path / "hooks",)


def test_a_hooks_folder_you_name_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"WORKFLOW_ROOT_PATH": str(tmp_path), "WORKFLOW_CORE_PATH_HOOKS": "x"})
    message = str(info.value)
    assert "WORKFLOW_CORE_PATH_HOOKS" in message
    assert f"{tmp_path / 'x'}' does not exist" in message
