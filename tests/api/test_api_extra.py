"""The core imports and runs without the `api` extra; `workflow api` says what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import argparse, io, sys
    from contextlib import redirect_stderr

    BLOCKED = {"fastapi", "starlette", "uvicorn"}

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Block())

    import ddeutil.workflow
    import ddeutil.workflow.cli
    from ddeutil.workflow.engine.pipeline import Pipeline
    Pipeline = getattr(ddeutil.workflow, "Pipeline", Pipeline)  # the root export, once curated
    from ddeutil.workflow.settings import Settings

    settings = Settings.from_env({"WORKFLOW_ROOT_PATH": sys.argv[1], "WORKFLOW_CORE_TIMEZONE": "UTC"})
    result = Pipeline.from_loader("plain", settings=settings).execute({}, settings=settings)
    print("RUN", result.status.value)

    try:
        import ddeutil.workflow.api
    except ImportError as exc:
        print("IMPORT", exc)

    from ddeutil.workflow.cli import CliContext
    from ddeutil.workflow.cli import api as api_cli
    from ddeutil.workflow.masking import Masker

    parser = argparse.ArgumentParser()
    api_cli.register(parser.add_subparsers())
    args = parser.parse_args(["api", "--port", "8123"])
    err = io.StringIO()
    with redirect_stderr(err):
        code = args.handler(args, CliContext(settings=settings, masker=Masker(), out=sys.stdout))
    print("EXIT", code)
    print("STDERR", err.getvalue().strip())
    print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
    """
)


def test_core_and_cli_work_without_fastapi(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "p.yml").write_text(
        "plain:\n  type: Pipeline\n  jobs:\n    j:\n      stages:\n        - name: s\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["RUN"] == "SUCCESS"
    assert "pip install 'ddeutil-workflow[api]'" in lines["IMPORT"]
    assert lines["EXIT"] == "2"
    assert "needs the `api` extra" in lines["STDERR"]
    assert "pip install 'ddeutil-workflow[api]'" in lines["STDERR"]
    assert "missing: fastapi" in lines["STDERR"] or "missing: uvicorn" in lines["STDERR"]
    assert lines["LOADED"] == "[]"
