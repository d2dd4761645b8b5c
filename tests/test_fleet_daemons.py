"""Several scheduler daemons on one PostgreSQL store, under faults.

``test_three_daemons_survive_a_kill_a_pause_and_dropped_sessions`` starts three real
daemons (``python -m ddeutil.workflow.app``) on one fresh schema, with a lease of
3 seconds, and waits for two real minute boundaries (one to two minutes of wall
time, so it is marked ``slow``). Right after the first boundary, one daemon is
killed (``SIGKILL`` to its process group), one is paused (``SIGSTOP``) until its
lease has run out and the third has its PostgreSQL sessions terminated by the
server. Every release of both boundaries must then have run once: nothing claimed
twice, no stage executed twice, the killed daemon's claims that had not started
run elsewhere, its started runs recorded FAILED ("interrupted: owner ... lost"),
and the paused daemon rejoins under ``<owner>/2``.

``test_a_scheduler_whose_sessions_are_terminated_keeps_scheduling`` does the
dropped-sessions part in this process, with two schedulers driven by explicit
instants, so it is fast and exact about which call meets the dead sessions.

Both skip with the reason when no PostgreSQL server answers (see ``conftest.py``).
Sessions are terminated by application name, unique per test, so tests running
in parallel on the same database are not touched.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
from ddeutil.workflow.errors import StoreError
from ddeutil.workflow.loader import Loader, RawTemplate
from ddeutil.workflow.result import Status
from ddeutil.workflow.scheduling.scheduler import Scheduler
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import RunFilter, RunRecord, RunStore
from ddeutil.workflow.store.fleet import OwnerState

UTC = timezone.utc
LEASE = 5.0  # longer than a daemon start on a loaded 2-core CI machine (up to ~3.5 s)
PIPELINES = 6
STAGE_SECONDS = 3
READY_LINE = "scheduler ticks at every minute boundary"


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def _terminate(base: str, names: list[str]) -> int:
    """Terminate this test's server sessions (``pg_terminate_backend``); return how many."""
    import psycopg

    with psycopg.connect(base, autocommit=True, connect_timeout=2) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = ANY(%s) AND datname = current_database() "
            "AND pid <> pg_backend_pid()",
            (names,),
        ).fetchall()
    return len(rows)


def _marks(path: Path) -> Counter[tuple[str, datetime]]:
    """Lines the stages wrote, per (pipeline, release instant)."""
    seen: Counter[tuple[str, datetime]] = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            name, logical, _ = line.split()
            seen[(name, datetime.fromisoformat(logical).astimezone(UTC))] += 1
    return seen


@dataclass
class _Daemon:
    """One real daemon in its own process group, logging JSON lines to a file."""

    name: str
    log: Path
    app_name: str
    popen: subprocess.Popen[bytes]
    owners: list[str] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        lines = self.log.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def messages(self) -> list[str]:
        return [str(r.get("message", "")) for r in self.records()]

    def ready(self) -> bool:
        assert self.popen.poll() is None, f"{self.name} exited early:\n{self.log.read_text()}"
        return any(m.startswith(READY_LINE) for m in self.messages())

    def owner(self) -> str:
        """The owner id it runs as now: a start slower than the lease on a loaded
        machine is taken over, and the daemon joins again under a new id."""
        current = None
        for message in self.messages():
            if message.startswith("scheduler starting (owner "):
                current = message[len("scheduler starting (owner ") : -1]
            elif message.startswith("lease lost: ") and "joining again as owner " in message:
                current = message.rsplit("joining again as owner ", 1)[1]
        if current is None:
            raise AssertionError(f"{self.name} logged no owner id")
        return current

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signum)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[_Daemon]]:
    """Started daemons go in this list; any still alive at teardown are killed."""
    started: list[_Daemon] = []
    yield started
    for daemon in started:
        if daemon.popen.poll() is None:
            os.killpg(daemon.popen.pid, signal.SIGCONT)
            os.killpg(daemon.popen.pid, signal.SIGKILL)
        daemon.popen.wait(30)


def _start(root: Path, url: str, index: int, tag: str) -> _Daemon:
    app_name = f"wf-fleet-{tag}-{index}"
    folder = root / f"daemon-{index}"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(
        WORKFLOW_ROOT_PATH=str(root),
        WORKFLOW_API_DB_URL=f"{url}&application_name={app_name}",
        WORKFLOW_CORE_TIMEZONE="UTC",
        WORKFLOW_APP_PROCESS_WORKER="1",
        WORKFLOW_APP_PIPELINE_PER_PROCESS="1",  # one run at a time: the others wait PENDING
        WORKFLOW_APP_LEASE_SECONDS=f"{LEASE:g}",
        WORKFLOW_APP_STOP_TIMEOUT="10",
        WORKFLOW_APP_END_JOURNAL=str(folder / "run-ends.jsonl"),
        WORKFLOW_LOG_PATH=str(folder / "logs"),
        PYTHONUNBUFFERED="1",
    )
    log = folder / "daemon.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "ddeutil.workflow.app", "--log-format", "json"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return _Daemon(f"daemon-{index}", log, app_name, popen)


def _write_pipelines(write_conf: Callable[..., Path], marks: Path, count: int) -> list[str]:
    names = [f"fleet-{i}" for i in range(count)]
    for name in names:
        write_conf(
            f"{name}.yml",
            f"""
            {name}:
              type: Pipeline
              on:
                - cronjob: "* * * * *"
                  timezone: UTC
              jobs:
                main:
                  stages:
                    - name: mark and wait
                      run: |
                        import os, time
                        logical, run = ${{{{ release.logical_date }}}}, ${{{{ run_id }}}}
                        fd = os.open({str(marks)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                        os.write(fd, f"{name} {{logical.isoformat()}} {{run}}\\n".encode())
                        os.close(fd)
                        time.sleep({STAGE_SECONDS})
            """,
        )
    return names


def _runs_at(store: RunStore, at: datetime) -> list[RunRecord]:
    return [r for r in store.list_runs(RunFilter(), limit=500) if r.release and r.release.at == at]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_three_daemons_survive_a_kill_a_pause_and_dropped_sessions(
    root: Path,
    write_conf: Callable[..., Path],
    postgres_url: str,
    postgres_base: str,
    daemons: list[_Daemon],
) -> None:
    marks = root / "marks.txt"
    names = _write_pipelines(write_conf, marks, PIPELINES)
    tag = uuid.uuid4().hex[:8]
    daemons.extend(_start(root, postgres_url, i, tag) for i in range(3))
    _wait_until(lambda: all(d.ready() for d in daemons), 90, "three daemons ready")
    store = open_store(postgres_url)
    try:
        now = datetime.now(UTC)
        first = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        if first - now < timedelta(seconds=1.5):
            first += timedelta(minutes=1)
        second = first + timedelta(minutes=1)

        # Right after the first boundary: its releases are claimed and the first ones run.
        def first_claimed() -> bool:
            runs = _runs_at(store, first)
            return len(runs) == PIPELINES and any(r.status is Status.RUNNING for r in runs)

        _wait_until(first_claimed, (first - now).total_seconds() + 20, "the first boundary")
        by_owner = {d.owner(): d for d in daemons}  # as they are now (a slow start rejoins)
        claimed = Counter(r.owner for r in _runs_at(store, first))
        ranked = sorted(by_owner, key=lambda o: -claimed[o])
        victim, paused, survivor = (by_owner[o] for o in ranked)
        victim_owner, paused_owner = victim.owner(), paused.owner()
        victim.signal(signal.SIGKILL)
        killed_at = datetime.now(UTC)
        victim.popen.wait(30)
        before = {r.run_id: r for r in _runs_at(store, first)}
        paused.signal(signal.SIGSTOP)
        terminated = _terminate(
            postgres_base,
            [survivor.app_name, f"ddeutil-workflow scheduler: {survivor.owner()}"],
        )
        assert terminated >= 1

        def lost(owner: str) -> Callable[[], bool]:
            return lambda: any(
                o.owner == owner and o.state is OwnerState.LOST for o in store.owners()
            )

        _wait_until(lost(paused_owner), 6 * LEASE, "the paused daemon to be taken over")
        _wait_until(lost(victim_owner), 6 * LEASE, "the killed daemon to be taken over")
        paused.signal(signal.SIGCONT)
        _wait_until(
            lambda: any(m.startswith("lease lost") for m in paused.messages()),
            6 * LEASE,
            "the resumed daemon to find its lease lost",
        )

        def all_ended() -> bool:
            runs = _runs_at(store, first) + _runs_at(store, second)
            return len(runs) == 2 * PIPELINES and all(r.status.is_terminal for r in runs)

        wait = (second - datetime.now(UTC)).total_seconds() + 10 * STAGE_SECONDS
        _wait_until(all_ended, wait, "every run of both boundaries to end")
        assert survivor.popen.poll() is None, "the daemon whose sessions were dropped exited"
        assert paused.popen.poll() is None, "the resumed daemon exited"
        for daemon in (paused, survivor):
            daemon.popen.send_signal(signal.SIGTERM)  # the daemon alone, as systemd does
        assert paused.popen.wait(30) == 0
        assert survivor.popen.wait(30) == 0
        owners = {o.owner: o for o in store.owners()}
        after = {r.run_id: r for r in _runs_at(store, first) + _runs_at(store, second)}
    finally:
        store.close()

    logs = {d.name: d.log.read_text() for d in daemons}
    # Every release of both boundaries: one run, SUCCESS or recorded interrupted.
    interrupted = re.compile(
        rf"^interrupted: owner ({re.escape(victim_owner)}|{re.escape(paused_owner)}) lost "
        r"\(last heartbeat "
    )
    releases = Counter((r.pipeline, r.release.at) for r in after.values() if r.release)
    assert set(releases) == {(n, at) for n in names for at in (first, second)}, logs
    assert set(releases.values()) == {1}
    marked = _marks(marks)
    assert max(marked.values()) == 1, marked  # no stage ran twice
    for run in after.values():
        assert run.release is not None
        if run.status is Status.SUCCESS:
            assert marked[(run.pipeline, run.release.at)] == 1, run
        else:
            assert run.status is Status.FAILED, run
            assert run.error is not None
            assert interrupted.match(run.error), run.error

    # The killed daemon: what had started is FAILED, what had not ran elsewhere.
    mine = [r for r in before.values() if r.owner == victim_owner]
    assert len(mine) >= 2, before  # the busiest daemon of six releases on three daemons
    orphans = [r for r in mine if r.started is None]
    assert orphans, mine  # one run slot: the others were still waiting
    for run in mine:
        end = after[run.run_id]
        if run.started is not None:
            assert end.status is Status.FAILED, end
            assert end.error is not None
            assert end.error.startswith(f"interrupted: owner {victim_owner} lost")
    starts = []
    for run in orphans:
        end = after[run.run_id]
        assert end.status is Status.SUCCESS, end
        assert end.owner not in (victim_owner, None), end
        assert end.started is not None
        assert end.started > killed_at
        starts.append(end.started)
    # Taken over within about a lease and a few beats (the taker then runs them one by one).
    assert min(starts) - killed_at < timedelta(seconds=4 * LEASE + 2), (killed_at, starts)

    # The daemon whose sessions were dropped logged it once, went on, and logged the end.
    said = survivor.messages()
    down = [i for i, m in enumerate(said) if "the run store does not answer" in m]
    assert down, logs[survivor.name]
    # Whichever part met the dropped session first (the scheduler, or the cancel watch
    # polling its cancel requests) says so, and says when it reads the store again.
    back = (
        "cancel requests are read again"
        if said[down[0]].startswith("cannot read cancel requests")
        else "the run store answers again"
    )
    assert any(back in m for m in said[down[0] :]), logs[survivor.name]

    # The paused daemon found its lease lost and joined again; the store lists them all.
    rejoined = f"{paused_owner}/2"
    assert any(f"joining again as owner {rejoined}" in m for m in paused.messages())
    assert owners[victim_owner].state is OwnerState.LOST
    assert owners[victim_owner].taken_by in (rejoined, survivor.owner())
    assert owners[paused_owner].state is OwnerState.LOST
    assert owners[paused_owner].taken_by == survivor.owner()
    assert owners[rejoined].state is OwnerState.STOPPED
    assert owners[survivor.owner()].state is OwnerState.STOPPED
    assert {r.owner for r in after.values() if r.release and r.release.at == second} <= {
        rejoined,
        survivor.owner(),
    }


# -- in process: dropped sessions --------------------------------------------------


class _Executor:
    """An Executor double: records submissions; the test starts and ends runs."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.templates: Callable[[str, str | None], RawTemplate | None] = lambda n, v: None
        self.submitted: list[RunRequest] = []
        self.events: list[RunEvent] = []

    def start(self) -> None:
        pass

    def submit(self, request: RunRequest) -> None:
        assert self.templates(request.pipeline, request.version) is not None
        self.submitted.append(request)

    def run(self, run_id: str, now: datetime) -> None:
        assert self.store.mark_running(run_id, now=now)
        assert self.store.finish(run_id, status=Status.SUCCESS, now=now)
        self.events.append(RunEvent("finished", run_id, Status.SUCCESS))

    def drain_events(self) -> list[RunEvent]:
        out, self.events = self.events, []
        return out

    def wait_event(self, timeout: float) -> bool:
        return bool(self.events)

    def in_flight(self) -> int:
        return 0

    def capacity(self) -> int:
        return 1_000

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        return False

    def shutdown(self, timeout: float, *, reason: str | None = None) -> None:
        pass


def _retried(call: Callable[[], Any], errors: list[StoreError]) -> Any:
    """What the daemon does: a StoreError is logged and the call is made again later."""
    try:
        return call()
    except StoreError as exc:
        errors.append(exc)
        return call()


def test_a_scheduler_whose_sessions_are_terminated_keeps_scheduling(
    write_conf: Callable[..., Path],
    make_settings: Callable[..., Settings],
    postgres_url: str,
    postgres_base: str,
) -> None:
    for i in range(4):
        write_conf(
            f"p{i}.yml",
            f"""
            p{i}:
              type: Pipeline
              on:
                - cronjob: "* * * * *"
              jobs:
                main:
                  stages:
                    - name: s
                      echo: hi
            """,
        )
    settings = make_settings(WORKFLOW_APP_LEASE_SECONDS=f"{LEASE:g}")
    t0 = datetime(2024, 1, 1, 10, 0, 30, tzinfo=UTC)
    tag = uuid.uuid4().hex[:8]
    names = [f"wf-fleet-{tag}-a", f"wf-fleet-{tag}-b"]
    stores = [open_store(f"{postgres_url}&application_name={n}") for n in names]
    clock = FakeClock(t0)
    executors = [_Executor(s) for s in stores]
    schedulers = []
    for owner, store, executor in zip(("a", "b"), stores, executors, strict=True):
        scheduler = Scheduler(
            settings=settings,
            store=store,
            executor=executor,
            clock=clock,
            loader=Loader.from_settings(settings),
            owner=owner,
        )
        executor.templates = scheduler.template
        schedulers.append(scheduler)
    errors: list[StoreError] = []
    try:
        for scheduler in schedulers:
            scheduler.start()
        a, b = schedulers
        minute = t0.replace(second=0) + timedelta(minutes=1)
        a.tick(minute)
        b.tick(minute)
        first = list(executors[0].submitted) + list(executors[1].submitted)
        assert len(first) == 4

        # The server drops every session of "a" while its runs are in flight.
        assert _terminate(postgres_base, [names[0]]) >= 1
        for executor in executors:
            for request in executor.submitted:
                _retried(functools.partial(executor.run, request.run_id, minute), errors)
            executor.submitted.clear()
        clock.set(minute + timedelta(seconds=1))
        for scheduler in schedulers:
            _retried(scheduler.process_events, errors)
            _retried(scheduler.beat, errors)
        _terminate(postgres_base, [names[0]])  # and again, just before the next boundary
        nxt = minute + timedelta(minutes=1)
        clock.set(nxt)
        _retried(lambda: a.tick(nxt), errors)
        b.tick(nxt)
        for executor in executors:
            for request in executor.submitted:
                executor.run(request.run_id, nxt)
        _retried(a.beat, errors)
        b.beat()

        runs = stores[1].list_runs(RunFilter(), limit=100)
        per_release = Counter((r.pipeline, r.release.at) for r in runs if r.release)
        assert set(per_release) == {(f"p{i}", at) for i in range(4) for at in (minute, nxt)}
        assert set(per_release.values()) == {1}
        assert {r.status for r in runs} == {Status.SUCCESS}
        live = {o.owner: o.state for o in stores[1].owners()}
        assert live == {"a": OwnerState.LIVE, "b": OwnerState.LIVE}  # "a" never lost its lease
    finally:
        for scheduler in schedulers:
            scheduler.stop(1.0)
        for store in stores:
            store.close()
    assert errors  # the dead sessions were met, each failed one call, and were replaced
    assert all("PostgreSQL run store" in str(e) for e in errors), errors
