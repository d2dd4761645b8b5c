"""What stage code prints reaches the process output masked."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from ddeutil.workflow.engine import stdio
from ddeutil.workflow.engine.stdio import PENDING_LIMIT, MaskedStream, masked_output
from ddeutil.workflow.masking import MASK, Masker

SECRET = "pa'ss-w0rd\\value-42"

LEAK = """
leak:
  type: Pipeline
  jobs:
    j:
      stages:
        - name: talk
          run: |
            import os, sys, threading
            secret = os.environ["DDW_LEAK_TOKEN"]
            print("token is", secret)
            sys.stdout.write(secret[:5])
            sys.stdout.write(secret[5:] + "\\n")
            print(repr(secret), file=sys.stderr)
            t = threading.Thread(target=print, args=("from a thread", secret))
            t.start()
            t.join()
"""


def test_print_in_a_run_stage_reaches_the_process_output_masked(root: Path) -> None:
    (root / "conf" / "leak.yml").write_text(textwrap.dedent(LEAK), encoding="utf-8")
    env = {
        **os.environ,
        "WORKFLOW_ROOT_PATH": str(root),
        "WORKFLOW_CORE_TIMEZONE": "UTC",
        "DDW_LEAK_TOKEN": SECRET,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "ddeutil.workflow", "--log-level", "WARNING", "run", "leak"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert SECRET not in output
    assert repr(SECRET)[1:-1] not in output
    assert "pa'ss" not in output
    assert "token is ***" in proc.stdout
    assert "from a thread ***" in proc.stdout
    assert f'"{MASK}"' in proc.stderr


def test_a_secret_written_in_pieces_is_held_until_it_can_be_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    masker = Masker(frozenset({"line-one\nline-two"}))
    with masked_output(masker):
        assert isinstance(sys.stdout, MaskedStream)
        print("line-one")
        assert capsys.readouterr().out == ""  # may still become the secret
        print("line-two")
        print("done", end="")
    assert capsys.readouterr().out == f"{MASK}\ndone"


def test_an_endless_line_is_written_in_parts_never_cutting_a_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    masker = Masker(frozenset({"abcdef-secret"}))
    with masked_output(masker):
        sys.stdout.write("x" * (PENDING_LIMIT - 3) + "abcdef")
        sys.stdout.write("-secret" + "y" * 10)
        assert capsys.readouterr().out == "x" * (PENDING_LIMIT - 3)
    assert capsys.readouterr().out == MASK + "y" * 10


def test_other_threads_are_masked_only_while_a_stage_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    masker = Masker(frozenset({"hunter2-hunter2"}))
    entered, release = threading.Event(), threading.Event()

    def stage() -> None:
        with masked_output(masker):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=stage)
    thread.start()
    assert entered.wait(10)
    try:
        print("during hunter2-hunter2")
    finally:
        release.set()
        thread.join(10)
    print("after hunter2-hunter2")
    assert capsys.readouterr().out == f"during {MASK}\nafter hunter2-hunter2\n"


def test_any_split_of_the_writes_gives_the_same_masked_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rnd = random.Random(9)
    alphabet = "ab\n'\\x\"y"
    for _ in range(500):
        monkeypatch.setattr(stdio, "PENDING_LIMIT", rnd.choice([3, 8, PENDING_LIMIT]))
        secrets = {"".join(rnd.choices(alphabet, k=rnd.randint(4, 9))) for _ in range(2)}
        masker = Masker(frozenset(secrets))
        pieces = []
        for _ in range(rnd.randint(1, 8)):
            secret = rnd.choice(sorted(secrets))
            noise = "".join(rnd.choices(alphabet, k=rnd.randint(0, 12)))
            pieces.append(rnd.choice([secret, repr(secret)[1:-1], noise]))
        text = "".join(pieces)
        with masked_output(masker):
            at = 0
            while at < len(text):
                step = rnd.randint(1, 6)
                sys.stdout.write(text[at : at + step])
                at += step
        assert capsys.readouterr().out == masker.text(text), (secrets, text)
