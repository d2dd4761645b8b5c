"""The daemon process: lock, recovery, signals, stop timeout, zombies.

Real ``python -m ddeutil.workflow.app`` processes where the behaviour lives in
the OS (signals, locks, kill -9, child processes); the loop itself is also run
in-process with doubles. A run is started in a real daemon without waiting for
a minute boundary by claiming a release in the store *before* the daemon starts:
the daemon's start-up recovery dispatches that PENDING claim at once (exactly
what happens when a daemon died right after claiming).

Every wait is bounded and waits for a condition, never for time to pass.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ddeutil.workflow.app import daemon as daemon_mod
from ddeutil.workflow.app.daemon import Daemon, main, serve
from ddeutil.workflow.app.reaper import zombie_children
from ddeutil.workflow.dispatch.records import RunEvent
from ddeutil.workflow.engine.pipeline import Pipeline
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.result import Status
from ddeutil.workflow.scheduling.scheduler import INTERRUPTED_REASON, SchedulerState
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import SqliteRunStore, open_store
from ddeutil.workflow.store.base import ReleaseKey, RunFilter, RunRecord, RunStore

UTC = timezone.utc
RELEASE = datetime(2024, 1, 1, tzinfo=UTC)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


class DaemonProcess:
    """A real daemon subprocess with its JSON log lines in a file."""

    def __init__(self, root: Path, env: dict[str, str], *args: str) -> None:
        self.log = root / f"daemon-{time.monotonic_ns()}.log"
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ddeutil.workflow.app", *args],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, needle: str, timeout: float = 20) -> None:
        wait_until(lambda: needle in self.text() or self.proc.poll() is not None, timeout, needle)
        assert needle in self.text(), self.text()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"daemon did not exit within {timeout}s:\n{self.text()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._out.close()


@pytest.fixture
def daemon_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(
        WORKFLOW_ROOT_PATH=str(root),
        WORKFLOW_CORE_TIMEZONE="UTC",
        WORKFLOW_APP_PROCESS_WORKER="1",
        WORKFLOW_APP_PIPELINE_PER_PROCESS="4",
        WORKFLOW_APP_STOP_TIMEOUT="1",
        WORKFLOW_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def spawn(root: Path, daemon_env: dict[str, str]) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def _spawn(*args: str, **env: str) -> DaemonProcess:
        proc = DaemonProcess(root, {**daemon_env, **env}, *args)
        started.append(proc)
        return proc

    yield _spawn
    for proc in started:
        proc.close()


@pytest.fixture
def store(daemon_env: dict[str, str]) -> Iterator[RunStore]:
    s = open_store(Settings.from_env(daemon_env).api_db_url)
    yield s
    s.close()


def bash_pipeline(name: str, body: str, extra: str = "") -> str:
    return f"""
{name}:
  type: Pipeline
{extra}  on:
    - cronjob: "0 0 1 1 *"
      timezone: UTC
  jobs:
    only:
      stages:
        - name: work
          bash: |
{"".join(f"            {line}{chr(10)}" for line in body.strip().splitlines())}"""


def claim(
    store: RunStore,
    daemon_env: dict[str, str],
    pipeline: str,
    run_id: str,
    at: datetime = RELEASE,
) -> None:
    """Claim a release as a daemon that died before starting it would have."""
    settings = Settings.from_env(daemon_env)
    loader = Loader.from_settings(settings)
    on = Pipeline.from_template(loader.get(pipeline), loader=loader, settings=settings).on[0]
    key = ReleaseKey(pipeline=pipeline, schedule=on.key, at=at)
    assert store.claim(key, run_id=run_id, params={}, logical_date=at, now=at)


def record(store: RunStore, run_id: str) -> RunRecord:
    run = store.get_run(run_id)
    assert run is not None
    return run


def status_is(store: RunStore, run_id: str, *statuses: Status) -> Callable[[], bool]:
    return lambda: record(store, run_id).status in statuses


# -- real processes -------------------------------------------------------------------


def test_bad_settings_exit_2_naming_the_variable(daemon_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ddeutil.workflow.app"],
        env={**daemon_env, "WORKFLOW_CORE_MAX_JOB_PARALLEL": "abc"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "WORKFLOW_CORE_MAX_JOB_PARALLEL" in proc.stderr


def test_once_dispatches_a_pending_claim_and_exits_0(
    spawn: Callable[..., DaemonProcess],
    store: RunStore,
    daemon_env: dict[str, str],
    write_conf: Callable[..., Path],
) -> None:
    write_conf("p.yml", bash_pipeline("quick", "echo hello"))
    claim(store, daemon_env, "quick", "run-once")
    daemon = spawn("--once", WORKFLOW_APP_STOP_TIMEOUT="20")
    assert daemon.wait(40) == 0
    assert record(store, "run-once").status is Status.SUCCESS
    assert store.last_heartbeat() is not None


def test_second_daemon_on_the_same_store_refuses_to_start(
    spawn: Callable[..., DaemonProcess], write_conf: Callable[..., Path]
) -> None:
    first = spawn()
    first.wait_log("scheduler running")
    second = spawn()
    assert second.wait(30) == 1
    assert "another scheduler daemon is already running" in second.text()
    assert first.proc.poll() is None
    first.proc.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0


def test_sigterm_cancels_a_long_bash_stage_within_the_stop_timeout(
    spawn: Callable[..., DaemonProcess],
    store: RunStore,
    daemon_env: dict[str, str],
    write_conf: Callable[..., Path],
    root: Path,
) -> None:
    pidfile = root / "bash.pid"
    write_conf("p.yml", bash_pipeline("long", f"echo $$ > {pidfile}\nsleep 120"))
    claim(store, daemon_env, "long", "run-long")
    daemon = spawn(WORKFLOW_APP_STOP_TIMEOUT="1")
    wait_until(pidfile.exists, 30, "the bash stage to start")
    bash_pid = int(wait_until(lambda: pidfile.read_text().strip(), 5, "the pid"))
    assert record(store, "run-long").status is Status.RUNNING
    sent = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    elapsed = time.monotonic() - sent
    run = record(store, "run-long")
    assert run.status is Status.CANCELLED, daemon.text()
    assert elapsed < 1 + 5 + 5  # stop timeout + cancel grace + start-up slack
    wait_until(lambda: not pid_alive(bash_pid), 10, "the bash stage to be killed")


def test_sigterm_drains_a_run_that_finishes_within_the_stop_timeout(
    spawn: Callable[..., DaemonProcess],
    store: RunStore,
    daemon_env: dict[str, str],
    write_conf: Callable[..., Path],
    root: Path,
) -> None:
    started = root / "started"
    release = root / "release"
    write_conf(
        "p.yml",
        bash_pipeline(
            "drain",
            f"touch {started}\nfor i in $(seq 200); do [ -e {release} ] && exit 0; sleep 0.05; done\nexit 1",
        ),
    )
    claim(store, daemon_env, "drain", "run-drain")
    daemon = spawn(WORKFLOW_APP_STOP_TIMEOUT="30")
    wait_until(started.exists, 30, "the bash stage to start")
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.wait_log("stopping")
    release.touch()  # the run finishes while the daemon drains
    assert daemon.wait(30) == 0
    assert record(store, "run-drain").status is Status.SUCCESS


def test_a_second_stop_signal_exits_at_once(
    spawn: Callable[..., DaemonProcess],
    store: RunStore,
    daemon_env: dict[str, str],
    write_conf: Callable[..., Path],
    root: Path,
) -> None:
    pidfile = root / "bash.pid"
    write_conf("p.yml", bash_pipeline("long", f"echo $$ > {pidfile}\nsleep 120"))
    claim(store, daemon_env, "long", "run-long")
    daemon = spawn(WORKFLOW_APP_STOP_TIMEOUT="120")
    wait_until(pidfile.exists, 30, "the bash stage to start")
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.wait_log("stopping")
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.wait(10) == 128 + signal.SIGTERM
    assert "second stop signal" in daemon.text()


def test_kill_9_of_the_daemon_then_restart_fails_the_started_run_and_runs_the_claimed_one(
    spawn: Callable[..., DaemonProcess],
    store: RunStore,
    daemon_env: dict[str, str],
    write_conf: Callable[..., Path],
    root: Path,
) -> None:
    pidfile = root / "bash.pid"
    write_conf("long.yml", bash_pipeline("long", f"echo $$ > {pidfile}\nsleep 120"))
    write_conf("quick.yml", bash_pipeline("quick", "echo ok"))
    claim(store, daemon_env, "long", "run-started")
    first = spawn()
    wait_until(pidfile.exists, 30, "the bash stage to start")
    bash_pid = int(wait_until(lambda: pidfile.read_text().strip(), 5, "the pid"))
    # The daemon claims a release and dies (with its workers) before starting it.
    claim(store, daemon_env, "quick", "run-claimed")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    assert record(store, "run-started").status is Status.RUNNING  # what a crash leaves

    second = spawn()
    wait_until(status_is(store, "run-claimed", Status.SUCCESS), 30, "the claimed run")
    started = record(store, "run-started")
    assert started.status is Status.FAILED
    assert INTERRUPTED_REASON in (started.error or "")
    assert store.count_runs(RunFilter(pipeline="long")) == 1
    assert store.count_runs(RunFilter(pipeline="quick")) == 1
    second.proc.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    assert record(store, "run-started").status is Status.FAILED  # not run again
    if pid_alive(bash_pid):  # orphaned by kill -9 of its whole session
        os.kill(bash_pid, signal.SIGKILL)


def test_killed_worker_leaves_no_zombie_and_the_next_release_still_runs(
    spawn: Callable[..., DaemonProcess],
    store: RunStore,
    daemon_env: dict[str, str],
    write_conf: Callable[..., Path],
    root: Path,
) -> None:
    pidfile = root / "bash.pid"
    gate = root / "gate"
    write_conf(
        "p.yml",
        bash_pipeline(
            "victim",
            f"[ -e {pidfile} ] && exit 0\n"  # the second release finishes at once
            f"echo $$ > {pidfile}\nwhile [ ! -e {gate} ]; do sleep 0.05; done",
            extra="  concurrency: queue\n",
        ),
    )
    claim(store, daemon_env, "victim", "run-victim")
    claim(store, daemon_env, "victim", "run-next", RELEASE + timedelta(minutes=1))
    daemon = spawn()
    wait_until(pidfile.exists, 30, "the bash stage to start")
    bash_pid = int(wait_until(lambda: pidfile.read_text().strip(), 5, "the pid"))
    assert record(store, "run-next").status is Status.PENDING  # queued behind the first
    worker = int(Path(f"/proc/{bash_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(worker, signal.SIGKILL)
    wait_until(status_is(store, "run-victim", Status.FAILED), 30, "the run to be failed")
    assert "died" in (record(store, "run-victim").error or "")
    # The daemon lives on: the queued release runs on the replacement worker.
    wait_until(status_is(store, "run-next", Status.SUCCESS), 30, "the next release to run")
    assert daemon.proc.poll() is None
    # The bash stage dies with its worker (its group's watchdog kills it) and the
    # daemon, a subreaper like PID 1, reaps what is orphaned: no zombie is left.
    wait_until(lambda: not Path(f"/proc/{bash_pid}").exists(), 10, "the stage to be reaped")
    assert zombie_children(daemon.pid) == []
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """One scrape of the daemon's metrics port, parsed; empty while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_metrics_port_counts_runs_and_a_worker_restart(
    spawn: Callable[..., DaemonProcess],
    store: RunStore,
    daemon_env: dict[str, str],
    write_conf: Callable[..., Path],
    root: Path,
) -> None:
    pidfile = root / "bash.pid"
    write_conf(
        "p.yml",
        bash_pipeline(
            "victim",
            f"[ -e {pidfile} ] && exit 0\necho $$ > {pidfile}\nsleep 60",
            extra="  concurrency: queue\n",
        ),
    )
    claim(store, daemon_env, "victim", "run-victim")
    claim(store, daemon_env, "victim", "run-next", RELEASE + timedelta(minutes=1))
    port = _free_port()
    daemon = spawn(WORKFLOW_APP_METRICS_PORT=str(port))
    wait_until(pidfile.exists, 30, "the bash stage to start")
    bash_pid = int(wait_until(lambda: pidfile.read_text().strip(), 5, "the pid"))
    worker = int(Path(f"/proc/{bash_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(worker, signal.SIGKILL)
    wait_until(status_is(store, "run-next", Status.SUCCESS), 30, "the next release to run")
    finished = "workflow_runs_finished_total"
    ok = frozenset({("status", "SUCCESS"), ("trigger", "schedule")})
    samples = wait_until(
        lambda: (s := _scrape(port)).get((finished, ok)) == 1 and s, 10, "the scrape to count"
    )
    failed = frozenset({("status", "FAILED"), ("trigger", "schedule")})
    assert samples[finished, failed] == 1  # the run its worker took with it
    assert samples["workflow_worker_restarts_total", frozenset()] == 1
    assert samples["workflow_runs_started_total", frozenset()] == 2
    assert samples["workflow_release_start_lag_seconds_count", frozenset()] == 2
    assert samples["workflow_stage_duration_seconds_count", frozenset()] == 1  # run-next's
    assert samples["workflow_runs_in_flight", frozenset()] == 0
    assert 0 <= samples["workflow_daemon_heartbeat_age_seconds", frozenset()] < 60
    assert "Prometheus metrics served on http://127.0.0.1:" in daemon.text()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0


# -- in-process: the loop with doubles ------------------------------------------------


class FakeScheduler:
    def __init__(self) -> None:
        self.state = SchedulerState.STOPPED
        self.ticks = 0
        self.stopped_with: float | None = None
        self.reload = threading.Event()
        self.events = threading.Event()
        self.prepared_for: datetime | None = None
        self.waiting = 0
        self.beats = 0
        self.admitted = 0
        self.next_start: datetime | None = None  # a release held for its jitter
        self.started_held: list[datetime] = []
        self.held_started = threading.Event()

    def start(self) -> None:
        self.state = SchedulerState.RUNNING

    def tick(self) -> None:
        self.ticks += 1

    def prepare(self, boundary: datetime | None = None) -> bool:
        self.prepared_for = boundary
        return False

    def stop(self, timeout: float | None = None) -> None:
        self.stopped_with = timeout
        self.state = SchedulerState.STOPPED

    def request_reload(self) -> None:
        self.reload.set()

    def process_events(self) -> list[RunEvent]:
        self.events.set()
        return []

    def beat(self, now: datetime | None = None) -> None:
        self.beats += 1

    def keep_alive(self, now: datetime | None = None) -> bool:
        return True

    def admit_waiting(self) -> list[str]:
        self.admitted += 1
        return []

    def start_held(self, now: datetime | None = None) -> list[str]:
        at = datetime.now(timezone.utc)
        if self.next_start is None or self.next_start > at:
            return []
        self.next_start = None
        self.started_held.append(at)
        self.held_started.set()
        return ["held"]


class FakeExecutor:
    def __init__(self) -> None:
        self._event = threading.Event()

    def emit(self) -> None:
        self._event.set()

    def wait_event(self, timeout: float) -> bool:
        hit = self._event.wait(timeout)
        self._event.clear()
        return hit

    def drain_events(self) -> list[RunEvent]:
        return []

    def in_flight(self) -> int:
        return 0

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        return False


@pytest.fixture(autouse=True)
def _no_process_wide_reaping(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process daemons must not make pytest a subreaper or reap its children."""
    monkeypatch.setattr(daemon_mod, "become_subreaper", lambda: False)
    monkeypatch.setattr(daemon_mod, "reap_orphans", list)


def make_daemon(settings: Settings) -> tuple[Daemon, FakeScheduler, FakeExecutor]:
    scheduler, executor = FakeScheduler(), FakeExecutor()
    daemon = Daemon(settings=settings, scheduler=scheduler, executor=executor)  # type: ignore[arg-type]
    return daemon, scheduler, executor


def test_once_ticks_once_and_stops_with_the_stop_timeout(
    make_settings: Callable[..., Settings],
) -> None:
    daemon, scheduler, _ = make_daemon(make_settings(WORKFLOW_APP_STOP_TIMEOUT="4"))
    before = signal.getsignal(signal.SIGTERM)
    assert daemon.run(once=True) == 0
    assert scheduler.ticks == 1
    assert scheduler.stopped_with == 4
    assert signal.getsignal(signal.SIGTERM) == before


def test_the_conf_check_before_a_boundary_plans_for_that_boundary_in_utc(
    settings: Settings,
) -> None:
    daemon, scheduler, _ = make_daemon(settings)
    next_run = datetime(2024, 1, 1, 10, 0)  # the schedule library's naive local time
    try:
        daemon._prepare(next_run)
    finally:
        daemon._signals.restore()  # closes its wake-up sockets (run() was not called)
    assert scheduler.prepared_for == next_run.astimezone(timezone.utc)
    assert scheduler.prepared_for is not None
    assert scheduler.prepared_for.tzinfo is timezone.utc


def test_loop_reloads_on_sighup_pumps_events_and_stops_on_sigterm(settings: Settings) -> None:
    daemon, scheduler, executor = make_daemon(settings)
    result: list[int] = []

    def drive() -> None:
        assert wait_until(lambda: scheduler.state is SchedulerState.RUNNING, 10, "start")
        os.kill(os.getpid(), signal.SIGHUP)
        scheduler.reload.wait(10)
        executor.emit()
        scheduler.events.wait(10)
        os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=drive)
    helper.start()
    result.append(daemon.run())
    helper.join(10)
    assert result == [0]
    assert scheduler.reload.is_set()
    assert scheduler.events.is_set()
    assert scheduler.stopped_with == settings.app_stop_timeout


def test_the_event_helper_starts_a_release_held_for_its_jitter_at_its_start(
    settings: Settings,
) -> None:
    daemon, scheduler, _ = make_daemon(settings)
    start = datetime.now(timezone.utc) + timedelta(seconds=0.3)
    scheduler.next_start = start
    helper = threading.Thread(target=daemon._pump)
    helper.start()
    try:
        assert scheduler.held_started.wait(10)  # not after the 5 s event wait
    finally:
        daemon._stop_events.set()
        helper.join(10)
        daemon._signals.restore()
    (when,) = scheduler.started_held
    assert start <= when < start + timedelta(seconds=2)


def test_request_stop_wakes_the_sleeping_loop(settings: Settings) -> None:
    daemon, scheduler, _ = make_daemon(settings)
    helper = threading.Thread(
        target=lambda: (
            wait_until(lambda: scheduler.state is SchedulerState.RUNNING, 10, "start"),
            daemon.request_stop(),  # type: ignore[func-returns-value]
        )
    )
    helper.start()
    started = time.monotonic()
    assert daemon.run() == 0
    helper.join(10)
    assert time.monotonic() - started < 10  # woke up, did not sleep to the boundary


def test_tick_errors_are_logged_not_fatal(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    daemon, scheduler, _ = make_daemon(settings)

    def boom() -> None:
        raise RuntimeError("store hiccup")

    scheduler.tick = boom  # type: ignore[method-assign]
    assert daemon.run(once=True) == 0
    assert "tick failed" in caplog.text
    assert scheduler.stopped_with is not None


def test_a_daemon_owning_its_process_hides_its_catalog_from_the_collector(
    settings: Settings,
) -> None:
    import gc

    gc.unfreeze()
    daemon, _, _ = make_daemon(settings)
    try:
        assert daemon.run(once=True) == 0
        assert gc.get_freeze_count() == 0  # a caller that does not own the process
        daemon, _, _ = make_daemon(settings)
        assert daemon.run(once=True, freeze=True) == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_main_reports_bad_settings_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKFLOW_CORE_TIMEZONE", "Mars/Olympus")
    assert main([]) == 2
    assert "WORKFLOW_CORE_TIMEZONE" in capsys.readouterr().err


def test_serve_refuses_when_the_lock_is_held(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    path = settings.api_db_url.removeprefix("sqlite:///")
    holder = SqliteRunStore(path)
    with holder.scheduler_lock("someone-else"):
        assert serve(settings, masker=Masker()) == 1
    holder.close()
    assert "refusing to start" in capsys.readouterr().err


def test_serve_reports_a_store_that_cannot_be_opened(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    conf = make_settings(WORKFLOW_API_DB_URL=f"sqlite:///{blocker}/runs.db")
    assert serve(conf, masker=Masker()) == 1
    assert "cannot open the run store" in capsys.readouterr().err


def test_safe_url_hides_credentials(make_settings: Callable[..., Settings]) -> None:
    conf = make_settings(WORKFLOW_API_DB_URL="postgresql://user:pw@db.internal/wf")
    assert daemon_mod._safe_url(conf) == "postgresql://***@db.internal/wf"


def test_wait_readable_returns_on_data_or_after_the_timeout() -> None:
    import socket

    from ddeutil.workflow.app.daemon import wait_readable

    left, right = socket.socketpair()
    try:
        started = time.monotonic()
        assert wait_readable(left, 0.05) is False
        assert time.monotonic() - started >= 0.05
        right.send(b"x")
        started = time.monotonic()
        assert wait_readable(left, 30) is True
        assert time.monotonic() - started < 5
    finally:
        left.close()
        right.close()


def test_reap_orphans_waits_for_zombie_children_it_does_not_manage() -> None:
    from ddeutil.workflow.app import reaper

    child = subprocess.Popen(["true"])
    wait_until(lambda: child.pid in reaper.zombie_children(), 10, "the child to become a zombie")
    assert child.pid in reaper.reap_orphans()
    assert child.pid not in reaper.zombie_children()
    assert not Path(f"/proc/{child.pid}").exists()
    child.wait(5)  # ECHILD is tolerated by subprocess: the status is gone, not the object


def test_reap_orphans_finds_zombies_without_scanning_proc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ddeutil.workflow.app import reaper

    child = subprocess.Popen(["true"])
    wait_until(lambda: child.pid in reaper.zombie_children(), 10, "the child to become a zombie")
    monkeypatch.setattr(reaper, "zombie_children", lambda parent=None: [])
    assert child.pid in reaper.reap_orphans()
    assert not Path(f"/proc/{child.pid}").exists()
    child.wait(5)


def test_become_subreaper_succeeds_on_linux() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ddeutil.workflow.app.reaper import become_subreaper as b; print(b())",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert proc.stdout.strip() == str(sys.platform.startswith("linux"))


def test_serve_stops_with_exit_1_when_the_store_fails_at_start(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ddeutil.workflow.errors import StoreError

    def broken_start(self: Any) -> None:
        raise StoreError("disk I/O error")

    monkeypatch.setattr(daemon_mod.Scheduler, "start", broken_start)  # type: ignore[attr-defined]
    monkeypatch.setattr(daemon_mod, "_build_executor", lambda *a, **k: FakeExecutor())
    monkeypatch.setattr(daemon_mod.Scheduler, "stop", lambda self, timeout=None: None)  # type: ignore[attr-defined]
    assert serve(settings, masker=Masker()) == 1
    assert "run store error" in capsys.readouterr().err


def test_serve_masks_secrets_in_what_it_prints(
    make_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "db-s3cr3t-path"
    blocker.write_text("x")
    conf = make_settings(WORKFLOW_API_DB_URL=f"sqlite:///{blocker}/runs.db")
    assert serve(conf, masker=Masker(frozenset({"db-s3cr3t-path"}))) == 1
    err = capsys.readouterr().err
    assert "cannot open the run store" in err
    assert "s3cr3t" not in err
