"""ThreadExecutor: bounded threads, FIFO queue without drops, cancel and shutdown."""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from _procs import group_alive, wait_group_gone
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.base import EventBuffer
from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
from ddeutil.workflow.dispatch.threads import ThreadExecutor
from ddeutil.workflow.loader import Loader, RawTemplate
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import MemoryRunStore
from ddeutil.workflow.store.base import ReleaseKey, RunFilter, TriggerKind

GATE = "ddw_test_executor_gate"

PIPELINES = f"""
    gate-pipe:
      type: ddeutil.workflow.pipeline.Pipeline
      jobs:
        main:
          stages:
            - name: wait at the gate (ignores cancel)
              run: |
                import {GATE}
                {GATE}.gate.wait(30)

    coop-pipe:
      type: ddeutil.workflow.pipeline.Pipeline
      jobs:
        main:
          stages:
            - name: wait for cancel
              run: |
                if cancel_token.wait(30):
                    raise RuntimeError(cancel_token.reason)

    bash-pipe:
      type: ddeutil.workflow.pipeline.Pipeline
      params:
        fifo: str
      jobs:
        main:
          stages:
            - name: long bash
              bash: |
                echo $$ > '${{{{ params.fifo }}}}'
                sleep 30
"""


# ---------------------------------------------------------------- helpers


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    module = types.ModuleType(GATE)
    event = threading.Event()
    module.gate = event  # type: ignore[attr-defined]
    sys.modules[GATE] = module
    yield event
    event.set()
    sys.modules.pop(GATE, None)


@dataclass
class Harness:
    """A memory store, the test conf folder and a fake clock; builds executors."""

    store: MemoryRunStore
    settings: Settings
    loader: Loader
    clock: FakeClock
    made: list[ThreadExecutor] = field(default_factory=list)

    def executor(self, **kwargs: Any) -> ThreadExecutor:
        executor = ThreadExecutor(
            store=self.store,
            settings=self.settings,
            templates=self.template,
            clock=self.clock,
            loader=self.loader,
            **kwargs,
        )
        executor.start()
        self.made.append(executor)
        return executor

    def template(self, name: str, version: str | None) -> RawTemplate | None:
        """The harness' template source: the conf folder's current template."""
        return self.loader.get(name) if version is None else None

    def submit(
        self,
        executor: ThreadExecutor,
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
            now=self.clock.now(),
        )
        executor.submit(RunRequest(run_id=run_id, pipeline=name, params=params or {}))


@pytest.fixture
def h(
    settings: Settings, write_conf: Callable[[str, str], Path], clock: FakeClock
) -> Iterator[Harness]:
    write_conf("pipes.yml", PIPELINES)
    store = MemoryRunStore()
    harness = Harness(store, settings, Loader.from_settings(settings), clock)
    yield harness
    for executor in harness.made:
        executor.shutdown(0.0)
    store.close()


def collect(
    executor: ThreadExecutor, until: Callable[[list[RunEvent]], bool], timeout: float = 20.0
) -> list[RunEvent]:
    """Drain events until ``until(events)`` holds; fail after ``timeout`` seconds."""
    events: list[RunEvent] = []
    deadline = time.monotonic() + timeout
    while not until(events):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting; events so far: {events}"
        executor.wait_event(left)
        events.extend(executor.drain_events())
    return events


def count(kind: str, n: int) -> Callable[[list[RunEvent]], bool]:
    return lambda events: sum(e.kind == kind for e in events) >= n


def read_fifo_line(fd: int, timeout: float) -> str:
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


# ---------------------------------------------------------------- tests


def test_runs_wait_in_submit_order_and_none_is_dropped(
    h: Harness, gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    executor = h.executor(size=1)
    caplog.set_level(logging.WARNING, logger="ddeutil.workflow.dispatch.threads")
    run_ids = [f"r{i}" for i in range(5)]

    for run_id in run_ids:
        h.submit(executor, "gate-pipe", run_id)
    first = collect(executor, count("started", 1))

    assert [e.run_id for e in first] == ["r0"]
    assert executor.in_flight() == 5
    assert h.store.count_runs(RunFilter(status=Status.PENDING)) == 4
    warnings = [r for r in caplog.records if "wait in submit order" in r.getMessage()]
    assert len(warnings) == 1

    gate.set()
    events = first + collect(executor, count("finished", 5))
    started = [e.run_id for e in events if e.kind == "started"]
    assert started == run_ids
    assert {e.status for e in events if e.kind == "finished"} == {Status.SUCCESS}
    assert h.store.count_runs(RunFilter(status=Status.SUCCESS)) == 5
    assert executor.in_flight() == 0


def test_at_most_size_runs_execute_at_once(h: Harness, gate: threading.Event) -> None:
    executor = h.executor(size=2)

    for i in range(5):
        h.submit(executor, "gate-pipe", f"r{i}")
    events = collect(executor, count("started", 2))

    assert h.store.count_runs(RunFilter(status=Status.RUNNING)) == 2
    assert h.store.count_runs(RunFilter(status=Status.PENDING)) == 3
    assert executor.in_flight() == 5
    assert executor.capacity() == 2
    gate.set()
    events += collect(executor, count("finished", 5))
    assert h.store.count_runs(RunFilter(status=Status.SUCCESS)) == 5
    assert executor.in_flight() == 0


def test_handshake_refusal_ends_with_a_statusless_event(h: Harness) -> None:
    executor = h.executor(size=1)
    h.store.create_run(
        run_id="r1", pipeline="coop-pipe", trigger=TriggerKind.MANUAL, params={}, now=h.clock.now()
    )
    h.store.mark_running("r1", now=h.clock.now())

    executor.submit(RunRequest(run_id="r1", pipeline="coop-pipe"))
    events = collect(executor, count("finished", 1))

    assert events == [RunEvent("finished", "r1", None, "not started (no longer PENDING)")]
    assert executor.in_flight() == 0


def test_shutdown_cancels_running_and_leaves_waiting_pending(h: Harness) -> None:
    executor = h.executor(size=2)
    for i in range(3):
        h.submit(executor, "coop-pipe", f"r{i}")
    collect(executor, count("started", 2))

    began = time.monotonic()
    executor.shutdown(0.2)

    assert time.monotonic() - began < 5.0
    assert h.store.count_runs(RunFilter(status=Status.CANCELLED)) == 2
    assert h.store.count_runs(RunFilter(status=Status.PENDING)) == 1
    finished = [e for e in executor.drain_events() if e.kind == "finished"]
    assert {e.status for e in finished} == {Status.CANCELLED}
    executor.shutdown(0.2)  # idempotent
    assert executor.in_flight() == 0


def test_run_ignoring_cancel_is_recorded_cancelled_after_grace(
    h: Harness, gate: threading.Event
) -> None:
    executor = h.executor(size=1, cancel_grace=0.2)
    h.submit(executor, "gate-pipe", "r1")
    collect(executor, count("started", 1))

    executor.shutdown(0.1)

    record = h.store.get_run("r1")
    assert record is not None
    assert record.status is Status.CANCELLED
    assert record.error is not None
    assert "did not stop within 0.2s" in record.error
    finished = [e for e in executor.drain_events() if e.kind == "finished"]
    assert [(e.run_id, e.status) for e in finished] == [("r1", Status.CANCELLED)]
    assert executor.in_flight() == 0

    gate.set()  # the abandoned thread ends later: first writer wins, no second event
    for thread in executor._threads:
        thread.join(10)
    assert h.store.get_run("r1").status is Status.CANCELLED  # type: ignore[union-attr]
    assert executor.drain_events() == []


def test_cancel_of_a_waiting_run_records_it_cancelled(h: Harness, gate: threading.Event) -> None:
    executor = h.executor(size=1)
    h.submit(executor, "gate-pipe", "r1")
    h.submit(executor, "gate-pipe", "r2")
    collect(executor, count("started", 1))

    assert executor.cancel("r2", "not needed")
    assert not executor.cancel("nope")

    record = h.store.get_run("r2")
    assert record is not None
    assert record.status is Status.CANCELLED
    gate.set()
    events = collect(executor, count("finished", 2))
    assert {(e.run_id, e.status) for e in events if e.kind == "finished"} == {
        ("r1", Status.SUCCESS),
        ("r2", Status.CANCELLED),
    }


def test_cancel_all_stops_running_runs(h: Harness) -> None:
    executor = h.executor(size=2)
    h.submit(executor, "coop-pipe", "r1")
    h.submit(executor, "coop-pipe", "r2")
    collect(executor, count("started", 2))

    executor.cancel_all("operator")
    events = collect(executor, count("finished", 2))

    assert {e.status for e in events if e.kind == "finished"} == {Status.CANCELLED}


def test_shutdown_kills_the_bash_process_group(h: Harness, tmp_path: Path) -> None:
    fifo = tmp_path / "pid.fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        executor = h.executor(size=1)
        h.submit(executor, "bash-pipe", "r1", {"fifo": str(fifo)})
        pgid = int(read_fifo_line(fd, 20))
        assert group_alive(pgid)

        began = time.monotonic()
        executor.shutdown(0.1)

        assert time.monotonic() - began < 5.0
        record = h.store.get_run("r1")
        assert record is not None
        assert record.status is Status.CANCELLED
        wait_group_gone(pgid)
    finally:
        os.close(fd)


def test_submit_after_shutdown_leaves_the_run_pending(h: Harness) -> None:
    executor = h.executor(size=1)
    executor.shutdown(0.0)

    h.submit(executor, "coop-pipe", "r1")

    assert executor.in_flight() == 0
    assert h.store.get_run("r1").status is Status.PENDING  # type: ignore[union-attr]


def test_event_buffer_wait_is_bounded() -> None:
    buffer = EventBuffer()
    assert buffer.wait(0.01) is False
    buffer.put(RunEvent("started", "r1"))
    assert buffer.wait(0.0) is True
    assert buffer.drain() == [RunEvent("started", "r1")]
    assert buffer.drain() == []


def test_shutdown_wakes_a_thread_waiting_for_events_and_later_waits_return_at_once(
    h: Harness,
) -> None:
    """The daemon's event helper waits in wait_event(5 s): a stop must not leave it there."""
    executor = h.executor(size=1)
    executor.start()
    returned = threading.Event()

    def waiter() -> None:
        executor.wait_event(30.0)
        returned.set()

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    executor.shutdown(0.0)
    assert returned.wait(10), "a waiter was left blocked by shutdown"
    started = time.monotonic()
    assert executor.wait_event(30.0) is False
    assert time.monotonic() - started < 10


def test_size_must_be_positive(h: Harness) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ThreadExecutor(
            store=h.store, settings=h.settings, templates=h.template, loader=h.loader, size=0
        )


# ---------------------------------------------------------------- templates and threads


def test_a_version_the_source_does_not_know_ends_the_run_failed_at_once(h: Harness) -> None:
    executor = h.executor(size=1)
    h.store.create_run(
        run_id="r1", pipeline="coop-pipe", trigger=TriggerKind.MANUAL, params={}, now=h.clock.now()
    )

    executor.submit(RunRequest(run_id="r1", pipeline="coop-pipe", version="gone"))
    events = collect(executor, count("finished", 1))

    message = (
        "no template of pipeline 'coop-pipe' version gone: the template source does not know it"
    )
    assert events == [RunEvent("finished", "r1", Status.FAILED, message)]
    record = h.store.get_run("r1")
    assert record is not None
    assert (record.status, record.error) == (Status.FAILED, message)
    assert executor.in_flight() == 0


def test_the_template_is_taken_when_the_request_is_submitted(
    h: Harness, gate: threading.Event
) -> None:
    executor = h.executor(size=1)
    seen: list[tuple[str, str | None]] = []
    original = h.template

    def source(name: str, version: str | None) -> RawTemplate | None:
        seen.append((name, version))
        return original(name, version)

    executor._templates = source
    h.submit(executor, "gate-pipe", "busy")
    h.submit(executor, "coop-pipe", "waiting")  # waits for the only slot

    assert seen == [("gate-pipe", None), ("coop-pipe", None)]
    gate.set()
    executor.cancel_all("done")


def test_an_idle_executor_holds_no_thread_and_grows_as_runs_start(h: Harness) -> None:
    started: set[str] = set()
    cond = threading.Condition()

    def on_event(event: RunEvent) -> None:
        with cond:
            if event.kind == "started":
                started.add(event.run_id)
            cond.notify_all()

    executor = h.executor(size=50, on_event=on_event)
    assert len(executor._threads) == 0  # an idle worker holds no thread, not 50
    for run_id in ("g1", "g2"):
        h.submit(executor, "coop-pipe", run_id)
    with cond:
        assert cond.wait_for(lambda: len(started) == 2, timeout=10)
    assert len(executor._threads) == 2  # one per running run
    executor.cancel_all("done")


# ---------------------------------------------------------------- held until the release


def scheduled(h: Harness, name: str, run_id: str, at: datetime) -> RunRequest:
    h.store.create_run(
        run_id=run_id, pipeline=name, trigger=TriggerKind.SCHEDULE, params={}, now=h.clock.now()
    )
    return RunRequest(
        run_id=run_id,
        pipeline=name,
        release=ReleaseKey(name, "* * * * *@UTC", at),
        trigger=TriggerKind.SCHEDULE,
    )


def test_a_request_sent_ahead_starts_at_its_release_instant_not_before(h: Harness) -> None:
    began: dict[str, float] = {}

    def on_event(event: RunEvent) -> None:
        if event.kind == "started":
            began[event.run_id] = time.time()

    executor = h.executor(size=1, on_event=on_event)
    release = datetime.fromtimestamp(time.time() + 0.3, tz=timezone.utc)
    executor.submit(scheduled(h, "coop-pipe", "ahead", release))
    assert h.store.get_run("ahead").status is Status.PENDING  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while "ahead" not in began:
        assert time.monotonic() < deadline, "the held run never started"
        executor.wait_event(0.05)
    executor.cancel_all("done")

    assert began["ahead"] >= release.timestamp()


def test_a_held_run_stays_pending_at_shutdown_and_a_cancelled_one_is_recorded(
    h: Harness,
) -> None:
    executor = h.executor(size=2)
    later = datetime.fromtimestamp(time.time() + 60, tz=timezone.utc)
    executor.submit(scheduled(h, "coop-pipe", "kept", later))
    executor.submit(scheduled(h, "coop-pipe", "cancelled", later))
    deadline = time.monotonic() + 10
    while len(executor._held) < 2:  # both threads hold their request
        assert time.monotonic() < deadline
        time.sleep(0.01)

    assert executor.cancel("cancelled", "not today")
    events = collect(executor, count("finished", 1))
    began = time.monotonic()
    executor.shutdown(30)
    events += executor.drain_events()

    assert time.monotonic() - began < 5  # a held run does not hold the stop up
    finished = {e.run_id: e for e in events if e.kind == "finished"}
    assert finished["cancelled"].status is Status.CANCELLED
    assert finished["kept"].status is None
    assert h.store.get_run("kept").status is Status.PENDING  # type: ignore[union-attr]
    record = h.store.get_run("cancelled")
    assert record is not None
    assert (record.status, record.error) == (
        Status.CANCELLED,
        "cancelled before it started: not today",
    )
    assert not any(e.kind == "started" for e in events)
