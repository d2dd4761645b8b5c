"""A stage that starts is announced; ``workflow run`` names a stage silent for a second."""

from __future__ import annotations

import io
import os
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from _terminal import run_on_terminal
from ddeutil.workflow.cli.run import Printer
from ddeutil.workflow.engine.context import RunEvent
from ddeutil.workflow.engine.pipeline import Pipeline
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings

CONF = """
quiet:
  type: Pipeline
  jobs:
    main:
      stages:
        - name: Skipped
          id: skipped
          if: "false"
          bash: echo never
        - name: Wait
          id: wait
          bash: sleep 2
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "p.yml").write_text(textwrap.dedent(CONF), encoding="utf-8")
    for name in [k for k in os.environ if k.startswith("WORKFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(tmp_path))
    monkeypatch.setenv("WORKFLOW_CORE_TIMEZONE", "UTC")
    return tmp_path


def _event(kind: str, status: Status, **fields: object) -> RunEvent:
    base: dict[str, object] = {
        "run_id": "r1",
        "pipeline": "p",
        "job": "main",
        "stage": "wait",
        "name": "Wait",
        "duration": 0.0,
    }
    return RunEvent(kind=kind, status=status, **{**base, **fields})  # type: ignore[arg-type]


class _Lines(io.StringIO):
    """An output stream that tells when a line containing ``marker`` arrives."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.seen = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.marker in text:
            self.seen.set()
        return written


def test_the_engine_announces_each_stage_that_starts(root: Path) -> None:
    settings = Settings.from_env()
    pipe = Pipeline.from_loader("quiet", settings=settings, loader=Loader.from_settings(settings))
    events: list[RunEvent] = []
    result = pipe.execute(settings=settings, on_event=events.append)
    assert result.status is Status.SUCCESS
    kinds = [(e.kind, e.stage, e.status) for e in events]
    assert kinds == [
        ("stage", "skipped", Status.SKIPPED),  # a skipped stage never starts
        ("stage_started", "wait", Status.RUNNING),
        ("stage", "wait", Status.SUCCESS),
        ("job", None, Status.SUCCESS),
    ]


def test_a_stage_silent_past_the_threshold_gets_a_running_line() -> None:
    out = _Lines("RUNNING")
    printer = Printer(out, Masker(), "p", quiet_after=0.0)
    printer.event(_event("stage_started", Status.RUNNING, matrix={"os": "linux"}))
    assert out.seen.wait(10), out.getvalue()
    printer.event(_event("stage", Status.SUCCESS, duration=2.5, matrix={"os": "linux"}))
    printer.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("RUNNING")
    assert lines[0].endswith("main / wait (Wait) [os=linux]")
    assert lines[1].startswith("SUCCESS")


def test_a_stage_that_ends_or_speaks_in_time_gets_no_running_line() -> None:
    out = io.StringIO()
    printer = Printer(out, Masker(), "p", quiet_after=3600.0)
    printer.event(_event("stage_started", Status.RUNNING))
    printer.event(_event("stage", Status.SUCCESS, duration=0.1))
    printer.close()
    assert "RUNNING" not in out.getvalue()

    spoken = io.StringIO()
    printer = Printer(spoken, Masker(), "p", quiet_after=0.1)
    printer.event(_event("stage_started", Status.RUNNING))
    printer.output("main", "wait", "first line")
    for timer in [t for t in threading.enumerate() if isinstance(t, threading.Timer)]:
        timer.join(10)  # the watch ran out while the stage was still running
    printer.close()
    assert spoken.getvalue().count("RUNNING") == 1, spoken.getvalue()  # named by its output


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_workflow_run_on_a_terminal_names_a_long_silent_stage(root: Path) -> None:
    argv = [sys.executable, "-m", "ddeutil.workflow", "run", "quiet", "--no-record"]
    code, text = run_on_terminal(argv, env=os.environ, cwd=root)
    assert code == 0, text
    running = text.index("RUNNING")
    assert "main / wait (Wait)" in text[running:].splitlines()[0], text
    assert running < text.index("SUCCESS"), text
    assert text.count("main / wait") == 2, text  # RUNNING, then SUCCESS
