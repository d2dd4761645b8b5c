"""``workflow cancel`` and the cancel watch: a cancel reaches a run wherever it executes.

The store side (``request_cancel``, ``cancel_requests``) is pinned by the store
contract suite; here: what the command says and exits with on SQLite and
PostgreSQL, the watch handing each request to an executor once, and a real
daemon process whose running bash stage is killed by ``workflow cancel`` from
another process. The API's route is in ``tests/api/test_api_cancel.py``, a
recorded ``workflow run`` in ``tests/test_run_recorded.py``.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import pytest

from _procs import wait_group_gone
from ddeutil.workflow.cli import main
from ddeutil.workflow.cli.cancel import WAIT_POLL, wait_ended
from ddeutil.workflow.dispatch.cancel_watch import CANCEL_REASON, CancelWatch
from ddeutil.workflow.result import Status
from ddeutil.workflow.store import MemoryRunStore, RunStore, TriggerKind, open_store
from ddeutil.workflow.store.cancel import ask_cancel

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
WAIT = 30.0
"""Longest wait for another process (a bound, not an expected duration)."""

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'store' / 'runs.db'}"


@pytest.fixture
def store(store_url: str) -> Iterator[RunStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def cli(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str]]:
    """``workflow ...`` in this process on the test's store: (exit code, stdout)."""
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(tmp_path))
    monkeypatch.setenv("WORKFLOW_API_DB_URL", store_url)

    def _run(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        code = main(["--log-format", "text", *argv], out=out)
        return code, out.getvalue()

    return _run


def _run(store: RunStore, run_id: str, *, owner: str | None = None, start: bool = True) -> None:
    if owner is not None:
        assert store.join(owner, now=T0, host="h", pid=1, kind="client")
    store.create_run(
        run_id=run_id, pipeline="p", trigger=TriggerKind.MANUAL, params={}, now=T0, owner=owner
    )
    if start:
        assert store.mark_running(run_id, now=T0, owner=owner)


# -- the command ----------------------------------------------------------------------


def test_a_pending_run_is_recorded_cancelled_at_once(
    store: RunStore, cli: Callable[..., tuple[int, str]]
) -> None:
    _run(store, "r-pending", start=False)
    code, out = cli("cancel", "r-pending", "--reason", "not today")
    assert code == 0
    assert "was PENDING: recorded CANCELLED" in out
    record = store.get_run("r-pending")
    assert record is not None
    assert record.status is Status.CANCELLED
    assert record.error == "not today"
    assert not store.mark_running("r-pending", now=T0)  # nobody starts it


def test_a_running_run_is_asked_of_its_owner(
    store: RunStore, cli: Callable[..., tuple[int, str]]
) -> None:
    _run(store, "r-running", owner="client-1")
    code, out = cli("cancel", "r-running")
    assert code == 0
    assert "is RUNNING: cancel asked of owner client-1" in out
    assert store.cancel_requests("client-1") == ["r-running"]
    record = store.get_run("r-running")
    assert record is not None
    assert record.status is Status.RUNNING


def test_a_running_api_run_names_the_api_process(
    store: RunStore, cli: Callable[..., tuple[int, str]]
) -> None:
    _run(store, "r-api")
    code, out = cli("cancel", "r-api")
    assert code == 0
    assert "cancel asked of the API process (no owner)" in out
    assert store.cancel_requests(None) == ["r-api"]


def test_wait_prints_the_status_the_executor_recorded(
    store: RunStore, cli: Callable[..., tuple[int, str]]
) -> None:
    _run(store, "r-wait", owner="client-2")

    def executor() -> None:  # what a client's lease thread and its run do
        wait_for("the cancel request", lambda: store.cancel_requests("client-2"), 10.0)
        store.finish("r-wait", status=Status.CANCELLED, now=T0, error="cancelled: asked")

    thread = threading.Thread(target=executor)
    thread.start()
    code, out = cli("cancel", "r-wait", "--wait", "20")
    thread.join(10.0)
    assert code == 0
    assert "run r-wait ended CANCELLED: cancelled: asked" in out


def test_an_ended_run_is_left_alone_with_exit_1(
    store: RunStore, cli: Callable[..., tuple[int, str]]
) -> None:
    _run(store, "r-done")
    store.finish("r-done", status=Status.SUCCESS, now=T0)
    code, out = cli("cancel", "r-done")
    assert code == 1
    assert "already ended: SUCCESS" in out
    record = store.get_run("r-done")
    assert record is not None
    assert record.status is Status.SUCCESS
    assert record.cancel_requested is None


def test_an_unknown_run_id_exits_2(
    store: RunStore, cli: Callable[..., tuple[int, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = cli("cancel", "no-such-run")
    assert code == 2
    assert "no run with id 'no-such-run'" in capsys.readouterr().err


def test_a_store_that_does_not_answer_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(tmp_path))
    monkeypatch.setenv("WORKFLOW_API_DB_URL", "postgresql://nobody:pw@127.0.0.1:1/none")
    assert main(["cancel", "r1"], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "cannot open the run store" in err
    assert "pw@" not in err


@pytest.mark.parametrize("bad", ["-1", "x", "100000"])
def test_wait_is_bounded(
    bad: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(tmp_path))
    with pytest.raises(SystemExit) as exc:
        main(["cancel", "r1", "--wait", bad])
    assert exc.value.code == 2
    assert "--wait" in capsys.readouterr().err


def test_wait_ended_gives_up_at_its_bound() -> None:
    store = MemoryRunStore()
    _run(store, "r1")
    now = [0.0]
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    record = wait_ended(store, "r1", 1.0, monotonic=lambda: now[0], pause=pause)
    assert record is not None
    assert record.status is Status.RUNNING
    assert now[0] == pytest.approx(1.0)
    assert max(pauses) <= WAIT_POLL


def test_ask_cancel_tells_a_run_cancelled_now_from_one_cancelled_before() -> None:
    store = MemoryRunStore()
    _run(store, "r1", start=False)

    outcome = ask_cancel(store, "r1", now=T0)
    assert outcome is not None
    assert (outcome.what, outcome.status, outcome.cancel_requested) == (
        "cancelled",
        Status.CANCELLED,
        False,
    )
    again = ask_cancel(store, "r1", now=T0)
    assert again is not None
    assert (again.what, again.status) == ("ended", Status.CANCELLED)
    assert ask_cancel(store, "missing", now=T0) is None


# -- the watch --------------------------------------------------------------------------


def test_the_watch_hands_each_request_of_its_owner_over_once() -> None:
    store = MemoryRunStore()
    _run(store, "mine", owner="d1")
    _run(store, "other", owner="d2")
    asked: list[tuple[str, str]] = []

    def cancel(run_id: str, reason: str) -> bool:
        asked.append((run_id, reason))
        return True

    watch = CancelWatch(store, owner=lambda: "d1", cancel=cancel)
    assert watch.check() == []
    store.request_cancel("mine", now=T0, reason="x")
    store.request_cancel("other", now=T0, reason="x")
    assert watch.check() == ["mine"]
    assert watch.check() == []  # asked once
    assert asked == [("mine", CANCEL_REASON)]
    store.finish("mine", status=Status.CANCELLED, now=T0)
    watch.check()
    assert watch._asked == set()  # forgotten once ended: bounded by the runs in flight


def test_the_watch_goes_on_when_a_cancel_raises_and_follows_a_new_owner_id() -> None:
    store = MemoryRunStore()
    _run(store, "a", owner="old")
    _run(store, "b", owner="new")
    owner = ["old"]
    seen: list[str] = []

    def cancel(run_id: str, reason: str) -> bool:
        seen.append(run_id)
        raise RuntimeError("boom")

    watch = CancelWatch(store, owner=lambda: owner[0], cancel=cancel)
    store.request_cancel("a", now=T0, reason="x")
    store.request_cancel("b", now=T0, reason="x")
    assert watch.check() == ["a"]
    owner[0] = "new"
    assert watch.check() == ["b"]
    assert seen == ["a", "b"]


def test_the_watch_thread_polls_and_stops() -> None:
    store = MemoryRunStore()
    _run(store, "r1", owner="d1")
    handed = threading.Event()

    def cancel(run_id: str, reason: str) -> bool:
        handed.set()
        return True

    watch = CancelWatch(store, owner=lambda: "d1", cancel=cancel, poll=0.01).start()
    try:
        store.request_cancel("r1", now=T0, reason="x")
        assert handed.wait(10.0)
    finally:
        watch.close()
    watch.close()  # idempotent


# -- a real daemon ----------------------------------------------------------------------

DAEMON_CONF = """
every-minute-sleeper:
  type: Pipeline
  on: [{cronjob: "* * * * *", timezone: UTC}]
  jobs:
    first:
      stages:
        - name: Sleep
          bash: |
            echo $$ > "$PID_FILE"
            sleep 120
"""


@pytest.mark.timeout(120)
def test_cancel_reaches_a_run_in_a_daemon_worker_process(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "sleeper.yml").write_text(textwrap.dedent(DAEMON_CONF), encoding="utf-8")
    pid_file = tmp_path / "bash.pid"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")},
        "WORKFLOW_ROOT_PATH": str(tmp_path),
        "WORKFLOW_API_DB_URL": store_url,
        "WORKFLOW_CORE_TIMEZONE": "UTC",
        "WORKFLOW_APP_PROCESS_WORKER": "1",
        "WORKFLOW_APP_STOP_TIMEOUT": "90",
        "PID_FILE": str(pid_file),
    }
    store = open_store(store_url)
    try:
        boundary = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        store.set_watermark(boundary - timedelta(seconds=1))  # as if it ticked before it
        daemon = subprocess.Popen(
            [sys.executable, "-m", "ddeutil.workflow.app", "--once", "--log-format", "json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            run_id = wait_for(
                "the scheduled run to start",
                lambda: next(
                    (r.run_id for r in store.list_runs() if r.status is Status.RUNNING), None
                ),
            )
            pgid = os.getpgid(int(wait_for("the bash pid", lambda: _text(pid_file))))
            monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(tmp_path))
            monkeypatch.setenv("WORKFLOW_API_DB_URL", store_url)
            out = io.StringIO()
            assert main(["cancel", run_id, "--wait", str(WAIT)], out=out) == 0
            assert "cancel asked of owner" in out.getvalue()
            assert f"run {run_id} ended CANCELLED" in out.getvalue()
            wait_group_gone(pgid, WAIT)
            # --once waits for its runs up to the stop timeout: it ends at once now.
            _, err = daemon.communicate(timeout=WAIT)
            assert daemon.returncode == 0, err
        finally:
            if daemon.poll() is None:
                daemon.kill()
            daemon.communicate(timeout=10)  # reaps it and closes its stderr pipe
        record = store.get_run(run_id)
        assert record is not None
        assert record.status is Status.CANCELLED
        assert record.trigger is TriggerKind.SCHEDULE
    finally:
        store.close()


def _text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
