"""ProcessExecutor with real worker processes and a SQLite store.

Every wait is bounded (events, fifos, pidfds); nothing sleeps for time.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import pytest

from _procs import wait_group_gone
from ddeutil.workflow.clock import SystemClock
from ddeutil.workflow.dispatch import processes, wire
from ddeutil.workflow.dispatch.processes import ProcessExecutor, describe_exit
from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
from ddeutil.workflow.dispatch.wire import Run, parent_log_config
from ddeutil.workflow.errors import StoreError
from ddeutil.workflow.loader import Loader, RawTemplate, template_version
from ddeutil.workflow.logs import configure_logging, run_log_path
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import ReleaseKey, RunFilter, RunStore, TriggerKind

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

PIPELINES = """
    quick-pipe:
      type: ddeutil.workflow.pipeline.Pipeline
      jobs:
        main:
          stages:
            - name: who runs me
              id: who
              bash: echo $PPID

    coop-pipe:
      type: ddeutil.workflow.pipeline.Pipeline
      jobs:
        main:
          stages:
            - name: wait for cancel
              run: |
                if cancel_token.wait(30):
                    raise RuntimeError(cancel_token.reason)

    hold-pipe:
      type: ddeutil.workflow.pipeline.Pipeline
      params:
        fifo: str
      jobs:
        main:
          stages:
            - name: long bash
              bash: |
                echo $$ > '${{ params.fifo }}'
                sleep 30

    hold-child-pipe:
      type: ddeutil.workflow.pipeline.Pipeline
      params:
        fifo: str
        marker: str
      jobs:
        main:
          stages:
            - name: bash with a background child
              bash: |
                # ${{ params.marker }}
                sleep 600 >/dev/null 2>&1 &
                echo "$$ $!" > '${{ params.fifo }}'
                wait
"""


# ---------------------------------------------------------------- helpers


@dataclass
class Harness:
    """A SQLite store under the test root and the test conf folder; builds executors.

    Its template source serves the conf folder's templates by version; the pids
    of the worker processes are read from the executor's log lines.
    """

    store: RunStore
    settings: Settings
    loader: Loader
    caplog: pytest.LogCaptureFixture
    made: list[ProcessExecutor] = field(default_factory=list)

    def executor(self, **kwargs: Any) -> ProcessExecutor:
        kwargs.setdefault("templates", self.template)
        executor = ProcessExecutor(settings=self.settings, store=self.store, **kwargs)
        self.made.append(executor)
        executor.start()
        assert executor.wait_ready(30)
        return executor

    def template(self, name: str, version: str | None) -> RawTemplate | None:
        template = self.loader.get(name)
        return template if version in (None, template_version(template)) else None

    def worker_pids(self) -> list[int]:
        """The pid of the worker process started last in each slot, by slot."""
        pids: dict[int, int] = {}
        for record in self.caplog.records:
            found = re.fullmatch(r"worker process (\d+) started \(pid (\d+)\)", record.getMessage())
            if found:
                pids[int(found[1])] = int(found[2])
        return [pids[index] for index in sorted(pids)]

    def submit(
        self,
        executor: ProcessExecutor,
        name: str,
        run_id: str,
        params: dict[str, str] | None = None,
    ) -> None:
        """Record a PENDING run of ``name`` and submit it."""
        self.store.create_run(
            run_id=run_id,
            pipeline=name,
            trigger=TriggerKind.MANUAL,
            params=params or {},
            now=SystemClock().now(),
        )
        version = template_version(self.loader.get(name))
        executor.submit(
            RunRequest(run_id=run_id, pipeline=name, version=version, params=params or {})
        )


@pytest.fixture
def h(
    settings: Settings, write_conf: Callable[[str, str], Path], caplog: pytest.LogCaptureFixture
) -> Iterator[Harness]:
    caplog.set_level(logging.INFO, logger="ddeutil.workflow.dispatch.processes")
    write_conf("pipes.yml", PIPELINES)
    store = open_store(settings.api_db_url)
    harness = Harness(store, settings, Loader.from_settings(settings), caplog)
    yield harness
    for executor in harness.made:
        executor.shutdown(0.0)
    store.close()


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    path = tmp_path / "pid.fifo"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    yield path, fd
    os.close(fd)


def collect(
    executor: ProcessExecutor, until: Callable[[list[RunEvent]], bool], timeout: float = 30.0
) -> list[RunEvent]:
    events: list[RunEvent] = []
    deadline = time.monotonic() + timeout
    while not until(events):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting; events so far: {events}"
        executor.wait_event(left)
        events.extend(executor.drain_events())
    return events


def finished(run_id: str) -> Callable[[list[RunEvent]], bool]:
    return lambda events: any(e.kind == "finished" and e.run_id == run_id for e in events)


def started(run_id: str) -> Callable[[list[RunEvent]], bool]:
    return lambda events: any(e.kind == "started" and e.run_id == run_id for e in events)


def read_fifo_line(fd: int, timeout: float = 30.0) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0, "nothing written to the fifo in time"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 100)
            assert chunk, "the writer closed the fifo without writing"
            data += chunk
    return data.decode().strip()


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait (bounded) until ``pid`` has exited; True when it did."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(pidfd)


def parent_of(pid: int) -> int:
    """The parent pid of ``pid`` (a bash stage's parent is the worker running it)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


# ---------------------------------------------------------------- tests


def test_runs_on_two_workers_of_two_threads(h: Harness) -> None:
    executor = h.executor(workers=2, threads=2)
    pids = h.worker_pids()
    run_ids = [f"r{i}" for i in range(10)]

    for run_id in run_ids:
        h.submit(executor, "quick-pipe", run_id)
    events = collect(executor, lambda ev: sum(e.kind == "finished" for e in ev) >= 10)

    assert len(set(pids)) == 2
    assert {e.status for e in events if e.kind == "finished"} == {Status.SUCCESS}
    assert sum(e.kind == "started" for e in events) == 10
    runners = set()
    for run_id in run_ids:
        record = h.store.get_run(run_id)
        assert record is not None
        assert record.status is Status.SUCCESS
        runners.add(int(json.dumps(record.context).split('"stdout": "')[1].split('"')[0]))
    assert runners == set(pids)  # both workers ran some
    assert executor.in_flight() == 0


def test_saturated_requests_wait_in_order_in_the_daemon(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ddeutil.workflow.dispatch.threads")
    executor = h.executor(workers=1, threads=1)

    for run_id in ("r0", "r1", "r2"):
        h.submit(executor, "coop-pipe", run_id)
    order = [e.run_id for e in collect(executor, started("r0")) if e.kind == "started"]
    assert executor.in_flight() == 3
    assert executor.capacity() == 1
    assert sum("wait in submit order" in r.getMessage() for r in caplog.records) == 1

    for nxt in ("r1", "r2"):
        executor.cancel_all("next")
        events = collect(executor, started(nxt))
        order += [e.run_id for e in events if e.kind == "started"]
    executor.cancel_all("done")
    collect(executor, finished("r2"))

    assert order == ["r0", "r1", "r2"]
    assert h.store.count_runs(RunFilter(status=Status.CANCELLED)) == 3


def test_killed_worker_fails_its_run_and_is_replaced(h: Harness, fifo: tuple[Path, int]) -> None:
    path, fd = fifo
    executor = h.executor(workers=2, threads=2)
    before = h.worker_pids()
    h.submit(executor, "hold-pipe", "held", {"fifo": str(path)})
    pgid = int(read_fifo_line(fd))
    try:
        victim = parent_of(pgid)  # the worker running the bash stage
        assert victim in before

        os.kill(victim, signal.SIGKILL)
        events = collect(executor, finished("held"))

        cause = f"worker process {victim} died: signal 9 (SIGKILL)"
        assert [e for e in events if e.kind == "finished"] == [
            RunEvent("finished", "held", Status.FAILED, cause)
        ]
        record = h.store.get_run("held")
        assert record is not None
        assert record.status is Status.FAILED
        assert record.error == cause
        assert wait_exit(victim, 5)
        assert not Path(f"/proc/{victim}").exists()  # reaped, not a zombie

        assert executor.wait_ready(30)
        after = h.worker_pids()
        assert len(after) == 2
        assert victim not in after
        h.submit(executor, "quick-pipe", "later")
        collect(executor, finished("later"))
        assert h.store.get_run("later").status is Status.SUCCESS  # type: ignore[union-attr]
    finally:
        kill_group(pgid)  # the orphaned `sleep 30` of the killed worker


def test_a_killed_workers_scripts_die_and_leave_no_script_file(
    h: Harness, fifo: tuple[Path, int]
) -> None:
    path, fd = fifo
    marker = f"marker-{os.getpid()}-{time.monotonic_ns()}"
    executor = h.executor(workers=1, threads=2)
    h.submit(executor, "hold-child-pipe", "held", {"fifo": str(path), "marker": marker})
    pids = [int(pid) for pid in read_fifo_line(fd).split()]
    try:
        victim = parent_of(pids[0])  # the worker running the bash stage
        assert victim in h.worker_pids()

        os.kill(victim, signal.SIGKILL)
        collect(executor, finished("held"))

        assert all(wait_exit(pid, 10) for pid in pids)  # bash and its background sleep
        scripts = Path(tempfile.gettempdir()).glob("workflow-*.sh")
        assert not [f for f in scripts if marker in f.read_text(errors="replace")]
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_run_not_started_by_a_dead_worker_runs_elsewhere(h: Harness) -> None:
    executor = h.executor(workers=1, threads=1)
    (victim,) = h.worker_pids()
    os.kill(victim, signal.SIGSTOP)  # it can take the request but never start it
    try:
        h.submit(executor, "quick-pipe", "moved")
        assert executor.in_flight() == 1  # sent to the only worker, the stopped one
    finally:
        os.kill(victim, signal.SIGKILL)

    events = collect(executor, finished("moved"))

    assert [e.kind for e in events] == ["started", "finished"]
    assert events[-1].status is Status.SUCCESS
    assert h.store.get_run("moved").status is Status.SUCCESS  # type: ignore[union-attr]
    assert h.worker_pids() != [victim]


def test_cancel_one_run_waiting_or_running(h: Harness) -> None:
    executor = h.executor(workers=1, threads=1)
    h.submit(executor, "coop-pipe", "running")
    h.submit(executor, "coop-pipe", "waiting")
    collect(executor, started("running"))

    assert executor.cancel("waiting", "not needed")
    assert h.store.get_run("waiting").status is Status.CANCELLED  # type: ignore[union-attr]
    assert executor.cancel("running", "stop it")
    assert not executor.cancel("unknown")
    events = collect(executor, finished("running"))

    assert h.store.get_run("running").status is Status.CANCELLED  # type: ignore[union-attr]
    assert not any(e.kind == "started" and e.run_id == "waiting" for e in events)
    assert executor.in_flight() == 0


def test_shutdown_cancels_long_bash_within_timeout(h: Harness, fifo: tuple[Path, int]) -> None:
    path, fd = fifo
    executor = h.executor(workers=1, threads=2)
    h.submit(executor, "hold-pipe", "long", {"fifo": str(path)})
    pgid = int(read_fifo_line(fd))
    pids = h.worker_pids()
    try:
        began = time.monotonic()
        executor.shutdown(0.5)
        elapsed = time.monotonic() - began

        assert elapsed < 0.5 + 5.0
        record = h.store.get_run("long")
        assert record is not None
        assert record.status is Status.CANCELLED
        wait_group_gone(pgid)
        assert all(wait_exit(pid, 5) for pid in pids)
        assert executor.in_flight() == 0
        executor.shutdown(0.5)  # idempotent
    finally:
        kill_group(pgid)


def test_waiting_requests_stay_pending_at_shutdown(h: Harness) -> None:
    executor = h.executor(workers=1, threads=1)
    h.submit(executor, "coop-pipe", "r0")
    h.submit(executor, "coop-pipe", "r1")
    collect(executor, started("r0"))

    executor.shutdown(0.1)

    assert h.store.get_run("r0").status is Status.CANCELLED  # type: ignore[union-attr]
    assert h.store.get_run("r1").status is Status.PENDING  # type: ignore[union-attr]


def test_workers_exit_when_the_daemon_dies(h: Harness, root: Path) -> None:
    h.store.create_run(
        run_id="orphan",
        pipeline="coop-pipe",
        trigger=TriggerKind.MANUAL,
        params={},
        now=SystemClock().now(),
    )
    script = textwrap.dedent(
        f"""
        import logging
        import re
        import sys
        from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
        from ddeutil.workflow.loader import Loader, RawTemplate
        from ddeutil.workflow.settings import Settings
        from ddeutil.workflow.dispatch.processes import ProcessExecutor

        pids = {{}}

        class Pids(logging.Handler):
            def emit(self, record):
                found = re.fullmatch(r"worker process (\\d+) started \\(pid (\\d+)\\)",
                                     record.getMessage())
                if found:
                    pids[int(found[1])] = int(found[2])

        log = logging.getLogger("ddeutil.workflow.dispatch.processes")
        log.addHandler(Pids())
        log.setLevel(logging.INFO)
        settings = Settings.from_env({{"WORKFLOW_ROOT_PATH": {str(root)!r},
                                       "WORKFLOW_CORE_TIMEZONE": "UTC"}})
        loader = Loader.from_settings(settings)
        executor = ProcessExecutor(
            settings=settings,
            templates=lambda name, version: loader.get(name),
            workers=2,
            threads=1,
        )
        executor.start()
        assert executor.wait_ready(30)
        executor.submit(RunRequest(run_id="orphan", pipeline="coop-pipe"))
        while RunEvent("started", "orphan") not in executor.drain_events():
            executor.wait_event(30)
        print(" ".join(map(str, pids.values())), flush=True)
        sys.stdin.read()
        """
    )
    daemon = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        pids = [int(p) for p in daemon.stdout.readline().split()]
        assert len(pids) == 2

        daemon.kill()
        daemon.wait(10)

        assert all(wait_exit(pid, 15) for pid in pids)
        record = h.store.get_run("orphan")
        assert record is not None
        assert record.status is Status.CANCELLED
        assert record.error is not None
        assert "daemon process exited" in record.error
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        for stream in (daemon.stdin, daemon.stdout):
            if stream is not None:
                stream.close()


def test_hung_worker_is_killed_at_shutdown_and_its_run_cancelled(h: Harness) -> None:
    executor = h.executor(workers=1, threads=1, cancel_grace=0.2)
    h.submit(executor, "coop-pipe", "stuck")
    collect(executor, started("stuck"))
    (victim,) = h.worker_pids()
    os.kill(victim, signal.SIGSTOP)  # deaf to the stop message and to SIGTERM

    began = time.monotonic()
    executor.shutdown(0.1)

    assert time.monotonic() - began < 0.1 + (0.2 + 5.0) + (0.2 + 2.0) + 5.0
    assert wait_exit(victim, 5)
    record = h.store.get_run("stuck")
    assert record is not None
    assert record.status is Status.CANCELLED
    assert (
        record.error == f"cancelled at shutdown: worker process {victim} died: signal 9 (SIGKILL)"
    )


def test_worker_that_cannot_start_is_retried_with_backoff(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ddeutil.workflow.dispatch.processes")
    executor = ProcessExecutor(
        settings=h.settings,
        templates=h.template,
        store=h.store,
        store_url="sqlite:////proc/no/such/runs.db",
        workers=1,
    )
    h.made.append(executor)
    executor.start()

    def failures() -> list[str]:
        return [r.getMessage() for r in caplog.records if "failed to start" in r.getMessage()]

    deadline = time.monotonic() + 20
    while len(failures()) < 2 and time.monotonic() < deadline:
        assert not executor.wait_ready(0.2)
    assert failures()[:2] == [
        "worker process 0 failed to start; retrying in 0.5s",
        "worker process 0 failed to start; retrying in 1.0s",
    ]
    began = time.monotonic()
    executor.shutdown(0.0)
    assert time.monotonic() - began < 10


def test_unpicklable_request_is_failed_not_lost(h: Harness) -> None:
    executor = h.executor(workers=1, threads=1)
    h.store.create_run(
        run_id="odd",
        pipeline="quick-pipe",
        trigger=TriggerKind.MANUAL,
        params={},
        now=SystemClock().now(),
    )
    executor.submit(RunRequest(run_id="odd", pipeline="quick-pipe", params={"f": lambda: 1}))
    events = collect(executor, finished("odd"))

    assert events[-1].status is Status.FAILED
    record = h.store.get_run("odd")
    assert record is not None
    assert record.status is Status.FAILED
    assert record.error is not None
    assert record.error.startswith("request cannot be sent to a worker process")


def test_workers_log_like_the_daemon_and_write_run_files(h: Harness) -> None:
    handler = configure_logging(fmt="json", level="DEBUG", stream=io.StringIO())
    root_logger = logging.getLogger()
    try:
        executor = h.executor(workers=1, threads=1)
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(logging.WARNING)
    h.submit(executor, "quick-pipe", "logged")
    collect(executor, finished("logged"))

    lines = run_log_path(h.settings.log_path, "logged").read_text().splitlines()
    messages = [json.loads(line)["message"] for line in lines]
    assert messages[0] == "run started"
    assert messages[-1] == "run finished: SUCCESS"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_workers_take_the_daemons_log_format(fmt: Literal["json", "text"]) -> None:
    # The JSON formatter is a subclass defined in ddeutil.workflow.logs: the
    # format is recognised by its pythonjsonlogger base, not its module name.
    handler = configure_logging(fmt=fmt, level="WARNING", stream=io.StringIO())
    root_logger = logging.getLogger()
    try:
        assert parent_log_config() == (fmt, "WARNING")
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(logging.WARNING)


def test_workers_configure_no_logging_when_the_daemon_did_not() -> None:
    assert parent_log_config() == (None, None)


def test_a_worker_gets_a_template_once_per_version_and_runs_it_after_the_file_broke(
    h: Harness, write_conf: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    original = wire.dumps

    def spying(message: Any) -> bytes:
        if isinstance(message, Run) and message.template is not None:
            sent.append(message.request.run_id)
        return original(message)

    monkeypatch.setattr(processes, "dumps", spying)
    template = h.loader.get("quick-pipe")
    version = template_version(template)
    kept = {("quick-pipe", version): template}  # the catalog's last good version
    executor = h.executor(workers=1, threads=1, templates=lambda n, v: kept.get((n, v)))

    def run(run_id: str) -> RunEvent:
        h.store.create_run(
            run_id=run_id,
            pipeline="quick-pipe",
            trigger=TriggerKind.SCHEDULE,
            params={},
            now=SystemClock().now(),
        )
        executor.submit(RunRequest(run_id=run_id, pipeline="quick-pipe", version=version))
        return collect(executor, finished(run_id))[-1]

    assert run("v1-a").status is Status.SUCCESS
    write_conf("pipes.yml", "quick-pipe:\n  type: ddeutil.workflow.pipeline.Pipeline\n  jobs: [")
    assert run("v1-b").status is Status.SUCCESS  # the version sent, not the file on disk
    assert run("v1-c").status is Status.SUCCESS

    assert sent == ["v1-a"]  # the template travelled once
    record = h.store.get_run("v1-c")
    assert record is not None
    assert record.status is Status.SUCCESS


def test_memory_store_is_refused(h: Harness) -> None:
    with pytest.raises(StoreError, match="worker processes can open"):
        ProcessExecutor(settings=h.settings, templates=h.template, store_url="memory://")


def test_describe_exit_names_the_signal() -> None:
    assert describe_exit(42, -9) == "worker process 42 died: signal 9 (SIGKILL)"
    assert describe_exit(42, -11) == "worker process 42 died: signal 11 (SIGSEGV)"
    assert describe_exit(42, 3) == "worker process 42 exited with code 3"
    assert describe_exit(42, None) == "worker process 42 died (exit status unknown)"


def test_a_run_held_by_a_worker_for_its_release_stays_pending_at_shutdown(h: Harness) -> None:
    executor = h.executor(workers=1, threads=1)
    later = datetime.fromtimestamp(time.time() + 60, tz=timezone.utc)
    h.store.create_run(
        run_id="held",
        pipeline="quick-pipe",
        trigger=TriggerKind.SCHEDULE,
        params={},
        now=SystemClock().now(),
    )
    version = template_version(h.loader.get("quick-pipe"))
    executor.submit(
        RunRequest(
            run_id="held",
            pipeline="quick-pipe",
            version=version,
            release=ReleaseKey("quick-pipe", "* * * * *@UTC", later),
            trigger=TriggerKind.SCHEDULE,
        )
    )
    assert executor.in_flight() == 1

    began = time.monotonic()
    executor.shutdown(30)

    assert time.monotonic() - began < 10  # the held run does not hold the stop up
    assert h.store.get_run("held").status is Status.PENDING  # type: ignore[union-attr]
    events = executor.drain_events()
    assert not any(e.kind == "started" for e in events)
