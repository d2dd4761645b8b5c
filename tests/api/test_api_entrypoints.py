"""`uvicorn ddeutil.workflow.api:app` (built lazily, once) and the `workflow api` verb."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.cli import CliContext
from ddeutil.workflow.cli import api as api_cli
from ddeutil.workflow.errors import SettingsError
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.settings import Settings

LAZY = textwrap.dedent(
    """
    import ddeutil.workflow.api as api
    print("BUILT_ON_IMPORT", api._default_app.cache_info().currsize)
    app = api.app
    print("TYPE", type(app).__name__)
    print("SAME", api.app is app)
    print("TOKEN_REQUIRED", app.state.settings.api_token is not None)
    """
)


def run_lazy(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conf").mkdir(exist_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    environ.update({"WORKFLOW_ROOT_PATH": str(tmp_path), **env})
    return subprocess.run(
        [sys.executable, "-c", LAZY],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
    )


def test_module_app_is_built_on_first_access_from_the_environment(tmp_path: Path) -> None:
    done = run_lazy(tmp_path, WORKFLOW_API_TOKEN="from-the-env-123")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines == {
        "BUILT_ON_IMPORT": "0",
        "TYPE": "FastAPI",
        "SAME": "True",
        "TOKEN_REQUIRED": "True",
    }


def test_module_app_refuses_without_a_token_in_one_line(tmp_path: Path) -> None:
    done = run_lazy(tmp_path)
    assert done.returncode == 2
    assert "BUILT_ON_IMPORT 0" in done.stdout
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("workflow: error: WORKFLOW_API_TOKEN")
    assert len(done.stderr.strip().splitlines()) == 1


def test_uvicorn_without_a_token_prints_the_clean_message_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    environ["WORKFLOW_ROOT_PATH"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--port", "0", "ddeutil.workflow.api:app"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "workflow: error: WORKFLOW_API_TOKEN" in done.stderr
    verb = subprocess.run(
        [sys.executable, "-m", "ddeutil.workflow", "--log-format", "text", "api"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
    )
    assert verb.returncode == 2
    assert verb.stderr.strip() in done.stderr.splitlines()  # the very same line


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    api_cli.register(parser.add_subparsers())
    return parser.parse_args(["api", *argv])


def test_workflow_api_serves_the_app_with_uvicorn(
    monkeypatch: pytest.MonkeyPatch, make_settings: Any
) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    settings: Settings = make_settings(WORKFLOW_API_TOKEN="cli-token-123")
    args = parse("--host", "0.0.0.0", "--port", "9001")
    ctx = CliContext(settings=settings, masker=Masker(), out=io.StringIO())
    assert args.handler(args, ctx) == 0
    [call] = calls
    assert (call["host"], call["port"], call["workers"]) == ("0.0.0.0", 9001, 1)
    assert call["app"].state.settings is settings


def test_workflow_api_without_token_is_a_settings_error(make_settings: Any) -> None:
    args = parse()
    ctx = CliContext(settings=make_settings(), masker=Masker(), out=io.StringIO())
    with pytest.raises(SettingsError, match="WORKFLOW_API_TOKEN"):
        args.handler(args, ctx)


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_workflow_api_rejects_bad_ports(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("--port", port)
    assert "port" in capsys.readouterr().err


def test_the_entry_points_hide_the_built_app_from_the_cyclic_gc() -> None:
    import gc

    from ddeutil.workflow.api.factory import freeze_long_lived

    before = gc.get_freeze_count()
    try:
        freeze_long_lived()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
