"""Cooperative cancellation: the CancelToken and how a run reacts to it."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ddeutil.workflow.cancellation import CancelToken
from ddeutil.workflow.settings import Settings


def test_cancel_sets_the_flag_and_keeps_the_first_reason() -> None:
    token = CancelToken()
    assert not token.cancelled
    assert token.reason is None
    token.cancel("stop please")
    token.cancel("second")
    assert token.cancelled
    assert token.reason == "stop please"


def test_wait_returns_at_once_when_cancelled_and_false_on_timeout() -> None:
    token = CancelToken()
    assert token.wait(0.01) is False
    assert token.wait(0) is False
    token.cancel()
    started = time.perf_counter()
    assert token.wait(30) is True
    assert time.perf_counter() - started < 1


def test_wait_wakes_when_another_thread_cancels() -> None:
    token = CancelToken()
    waiting = threading.Event()
    woke: list[bool] = []

    def waiter() -> None:
        waiting.set()
        woke.append(token.wait(30))

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(5)
    token.cancel("from test")
    thread.join(5)
    assert woke == [True]


def test_child_follows_parent_but_not_the_other_way_round() -> None:
    parent = CancelToken()
    child = parent.child()
    other = parent.child()
    other.cancel("only me")
    assert not parent.cancelled
    parent.cancel("all")
    assert child.cancelled
    assert child.reason == "all"
    assert other.reason == "only me"


def test_callbacks_run_once_and_at_once_when_already_cancelled() -> None:
    token = CancelToken()
    seen: list[str] = []
    token.add_callback(lambda reason: seen.append(f"a:{reason}"))
    remove = token.add_callback(lambda reason: seen.append("removed"))
    remove()
    token.cancel("r")
    token.cancel("again")
    assert seen == ["a:r"]
    token.add_callback(lambda reason: seen.append(f"late:{reason}"))
    assert seen == ["a:r", "late:r"]


def test_a_failing_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = CancelToken()
    seen: list[str] = []

    def bad(reason: str) -> None:
        raise RuntimeError("callback broke")

    token.add_callback(bad)
    token.add_callback(seen.append)
    with caplog.at_level(logging.ERROR, logger="ddeutil.workflow.cancellation"):
        token.cancel("x")
    assert seen == ["x"]
    assert "cancel callback" in caplog.text


def test_an_interrupt_stops_the_other_running_jobs_and_their_scripts(
    write_conf: Callable[[str, str], Path],
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from hooks_pkg.engine import Engine, wait_dead

    engine = Engine(
        write_conf,
        make_settings(
            WORKFLOW_CORE_REGISTRY="ddeutil.workflow,hooks_pkg", WORKFLOW_CORE_MAX_JOB_PARALLEL="2"
        ),
    )
    fifo = tmp_path / "ready"
    os.mkfifo(fifo)
    pidfile = tmp_path / "child.pid"
    pipe = engine.load_data(
        {
            "p": {
                "type": "Pipeline",
                "jobs": {
                    "ctrl-c": {
                        "stages": [
                            {
                                "name": "i",
                                "uses": "tasks/interrupt_when_ready@v1",
                                "with": {"fifo": str(fifo)},
                            }
                        ]
                    },
                    "long": {
                        "stages": [
                            {
                                "name": "sh",
                                "bash": f"sleep 30 &\necho $! > {pidfile}\necho go > {fifo}\nwait",
                            }
                        ]
                    },
                },
            }
        }
    )
    started = time.perf_counter()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a plain script
    try:
        with pytest.raises(KeyboardInterrupt):
            pipe.execute(settings=engine.settings)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - started < 10
    assert wait_dead(int(pidfile.read_text()))
