"""Several schedulers on one shared store: exactly once, takeover, fencing, slots.

Each test builds two or three :class:`Scheduler` objects on one store (a
shared in-memory store, and a real PostgreSQL schema when a server answers),
each with its own executor double and an injected clock, and drives ticks,
beats, starts and ends by hand: races at one boundary, a daemon that goes
silent past its lease, a paused one that comes back, catch-up after an
outage, and ``concurrency`` / poking limits that hold across daemons.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NoReturn

import pytest

from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
from ddeutil.workflow.errors import StoreError
from ddeutil.workflow.loader import Loader, RawTemplate
from ddeutil.workflow.result import Status
from ddeutil.workflow.scheduling.scheduler import Scheduler
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import MemoryRunStore, open_store
from ddeutil.workflow.store.base import RunFilter, RunRecord, RunStore, TriggerKind
from ddeutil.workflow.store.fleet import OwnerState

UTC = timezone.utc
LEASE = timedelta(seconds=30)
START = datetime(2024, 1, 1, 10, 0, 30, tzinfo=UTC)


def at(hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(2024, 1, 1, hh, mm, ss, tzinfo=UTC)


class FleetExecutor:
    """An executor double that fences like a real worker: handshake and end name the owner."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.templates: Callable[[str, str | None], RawTemplate | None] = lambda n, v: None
        self.submitted: list[RunRequest] = []
        self.cancelled: list[str] = []
        self.events: list[RunEvent] = []
        self.during_shutdown: Callable[[], None] = lambda: None
        self._cond = threading.Condition()

    def start(self) -> None:
        pass

    def submit(self, request: RunRequest) -> None:
        assert self.templates(request.pipeline, request.version) is not None
        self.submitted.append(request)

    def request(self, run_id: str) -> RunRequest:
        return next(r for r in self.submitted if r.run_id == run_id)

    def begin(self, run_id: str, now: datetime) -> bool:
        """The worker's start handshake for ``run_id``."""
        started = self.store.mark_running(run_id, now=now, owner=self.request(run_id).owner)
        if started:
            self._emit(RunEvent("started", run_id))
        return started

    def end(self, run_id: str, now: datetime, status: Status = Status.SUCCESS) -> bool:
        """The worker records the run's end (fenced by the request's owner)."""
        owner = self.request(run_id).owner
        written = self.store.finish(run_id, status=status, now=now, owner=owner)
        self._emit(RunEvent("finished", run_id, status if written else None))
        return written

    def _emit(self, event: RunEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def drain_events(self) -> list[RunEvent]:
        with self._cond:
            out, self.events = self.events, []
            return out

    def wait_event(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: bool(self.events), timeout=timeout)

    def in_flight(self) -> int:
        return 0

    def capacity(self) -> int:
        return 1_000

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        self.cancelled.append(run_id)
        return True

    def shutdown(self, timeout: float, *, reason: str | None = None) -> None:
        self.during_shutdown()  # the runs finishing while the daemon stops


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[RunStore]:
    if request.param == "memory":
        opened: RunStore = MemoryRunStore(shared=True)
    else:
        opened = open_store(str(request.getfixturevalue("postgres_url")))
    yield opened
    opened.close()


Daemon = tuple[Scheduler, FleetExecutor, FakeClock]
MakeDaemon = Callable[..., Daemon]


@pytest.fixture
def make_daemon(store: RunStore, settings: Settings) -> MakeDaemon:
    def _make(name: str, *, now: datetime = START, start: bool = True) -> Daemon:
        clock = FakeClock(now)
        executor = FleetExecutor(store)
        scheduler = Scheduler(
            settings=settings,
            store=store,
            executor=executor,
            clock=clock,
            loader=Loader.from_settings(settings),
            owner=name,
        )
        executor.templates = scheduler.template
        if start:
            scheduler.start()
        return scheduler, executor, clock

    return _make


def pipeline(name: str, cron: str = "* * * * *", extra: str = "") -> str:
    return f"""
{name}:
  type: Pipeline
  on:
    - cronjob: "{cron}"
      timezone: UTC
{extra}  jobs:
    only:
      stages:
        - name: nothing
"""


def scheduled(store: RunStore, pipeline: str | None = None) -> list[RunRecord]:
    where = RunFilter(pipeline=pipeline, trigger=TriggerKind.SCHEDULE)
    return sorted(store.list_runs(where, limit=10_000), key=lambda r: (r.release.at, r.pipeline))  # type: ignore[union-attr]


def release_keys(runs: list[RunRecord]) -> list[tuple[str, datetime]]:
    return [(r.pipeline, r.release.at) for r in runs if r.release is not None]


# -- exactly once at one boundary -------------------------------------------------


def test_daemons_racing_at_one_boundary_claim_each_release_once(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    for n in range(30):
        write_conf(f"p{n:02}.yml", pipeline(f"p{n:02}"))
    daemons = [make_daemon(name) for name in ("a", "b", "c")]
    barrier = threading.Barrier(len(daemons))
    errors: list[BaseException] = []

    def tick(scheduler: Scheduler) -> None:
        try:
            barrier.wait(timeout=10)
            scheduler.tick(at(10, 1))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(d[0],)) for d in daemons]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors

    runs = scheduled(store)
    assert sorted(release_keys(runs)) == [(f"p{n:02}", at(10, 1)) for n in range(30)]
    submitted = [r.run_id for _, executor, _ in daemons for r in executor.submitted]
    assert sorted(submitted) == sorted(r.run_id for r in runs)  # each dispatched once
    for scheduler, executor, _ in daemons:  # every run is owned by whoever dispatched it
        for request in executor.submitted:
            assert request.owner == scheduler.owner
            assert store.get_run(request.run_id).owner == scheduler.owner  # type: ignore[union-attr]
    # Any daemon ticking the same boundary later plans nothing more.
    for scheduler, _, _ in daemons:
        assert scheduler.tick(at(10, 1, 5)).due == ()


def test_a_claim_round_skips_pipelines_another_daemon_is_claiming(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    if isinstance(store, MemoryRunStore):
        pytest.skip("the memory store runs one claim round at a time (one mutex)")
    for n in range(3):
        write_conf(f"p{n}.yml", pipeline(f"p{n}"))
    a, a_exec, _ = make_daemon("a")
    b, b_exec, _ = make_daemon("b")
    entered, release = threading.Event(), threading.Event()
    real_decide_holder: list[object] = []

    def slow_round() -> None:
        def held(view: object) -> object:
            entered.set()
            assert release.wait(timeout=10)
            return real_decide_holder[0](view)  # type: ignore[operator]

        # Daemon a locks p0 (a batch of one) and stays in its transaction.
        store.claim_round(
            ["p0"],
            owner=a.owner,
            at=at(10, 1),
            init=at(10, 0, 30),
            now=at(10, 1),
            decide=held,  # type: ignore[arg-type]
            batch=1,
        )

    from ddeutil.workflow.store.fleet import Decision

    real_decide_holder.append(lambda view: Decision())
    holder = threading.Thread(target=slow_round)
    holder.start()
    assert entered.wait(timeout=10)
    try:
        report = b.tick(at(10, 1))  # does not wait for daemon a
        assert sorted(r.pipeline for r in report.due) == ["p1", "p2"]
    finally:
        release.set()
        holder.join(timeout=30)
    assert sorted(release_keys(scheduled(store))) == [("p1", at(10, 1)), ("p2", at(10, 1))]
    del a_exec, b_exec


# -- takeover and fencing ----------------------------------------------------------


def test_a_silent_daemon_is_taken_over_once_after_its_lease(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    write_conf("q.yml", pipeline("queued", extra="  concurrency: queue\n"))
    write_conf("s.yml", pipeline("started"))
    a, a_exec, _ = make_daemon("a")
    b, b_exec, _ = make_daemon("b")
    c, c_exec, _ = make_daemon("c")
    a.tick(at(10, 1))
    a.tick(at(10, 2))  # queued: 10:01 admitted, 10:02 waiting; started: both admitted
    started = [r.run_id for r in a_exec.submitted if r.pipeline == "started"]
    for run_id in started:
        assert a_exec.begin(run_id, at(10, 2, 1))
    waiting = [r for r in scheduled(store, "queued") if r.status is Status.PENDING]
    assert len(waiting) == 2

    # b and c keep beating; a went silent after its 10:02 tick.
    b.beat(at(10, 2, 20))
    c.beat(at(10, 2, 20))
    assert b_exec.submitted == []  # a's lease has not run out yet
    b.beat(at(10, 2) + LEASE + timedelta(seconds=1))
    c.beat(at(10, 2) + LEASE + timedelta(seconds=1))

    runs = {r.run_id: r for r in scheduled(store)}
    for run_id in started:  # started under a: recorded FAILED once, not run again
        assert runs[run_id].status is Status.FAILED
        assert "owner a lost" in (runs[run_id].error or "")
    adopted = [r for r in runs.values() if r.pipeline == "queued"]
    assert {r.owner for r in adopted} == {b.owner}  # one taker only
    queued_submitted = [r.release.at for r in b_exec.submitted]  # type: ignore[union-attr]
    assert queued_submitted == [at(10, 1)]  # oldest first; 10:02 waits for its slot
    assert c_exec.submitted == []
    owners = {o.owner: o for o in store.owners()}
    assert owners["a"].state is OwnerState.LOST
    assert owners["a"].taken_by == b.owner


def test_a_paused_daemon_that_comes_back_cannot_start_finish_or_claim_taken_work(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline("p"))
    a, a_exec, _ = make_daemon("a")
    b, b_exec, _ = make_daemon("b")
    a.prepare(at(10, 1))  # dispatched ahead: a's worker holds it, not started
    a.tick(at(10, 1))
    held = a_exec.submitted[0].run_id
    a.tick(at(10, 2))
    running = a_exec.submitted[1].run_id
    assert a_exec.begin(running, at(10, 2, 1))
    # a is paused (SIGSTOP) past its lease; b takes its work over.
    b.beat(at(10, 2) + LEASE + timedelta(seconds=5))
    assert [r.run_id for r in b_exec.submitted] == [held]

    # a resumes: its worker's handshake and end are refused (fenced)...
    assert not a_exec.begin(held, at(10, 3))
    assert not a_exec.end(running, at(10, 3))
    assert store.get_run(running).status is Status.FAILED  # type: ignore[union-attr]
    # ... while b runs the release it adopted.
    assert b_exec.begin(held, at(10, 3))
    assert b_exec.end(held, at(10, 3, 5))
    # a's next tick finds its lease lost: it cancels what it had in flight
    # (``running`` already reported its end) and joins again under a new owner
    # id; nothing is claimed under the old one.
    report = a.tick(at(10, 4))
    assert a.owner == "a/2"
    assert a_exec.cancelled == [held]
    assert {r.owner for r in scheduled(store) if r.release.at >= at(10, 3)} == {"a/2"}  # type: ignore[union-attr]
    assert [r.at for r in report.due] == [at(10, 3), at(10, 4)]  # b did not tick meanwhile
    statuses = {r.run_id: r.status for r in scheduled(store)}
    assert statuses[held] is Status.SUCCESS  # ran once, by b


def test_runs_on_workers_outlive_their_daemon_and_end_failed_once_when_the_worker_dies(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline("p"))
    a, a_exec, _ = make_daemon("a")
    b, _, _ = make_daemon("b")
    a.tick(at(10, 1))
    a.tick(at(10, 2))
    on_worker, local = (r.run_id for r in a_exec.submitted)
    assert store.join("w", now=at(10, 2), host="wh", pid=7, kind="worker")
    # A Celery worker starts the first run: it becomes the worker's (the handshake's runner).
    assert store.mark_running(on_worker, now=at(10, 2, 1), owner=a.owner, runner="w")
    assert a_exec.begin(local, at(10, 2, 1))
    # a is paused past its lease; b takes a over: only a's own run ends FAILED.
    store.heartbeat(now=at(10, 2) + LEASE, owner="w")
    b.beat(at(10, 2) + LEASE + timedelta(seconds=5))
    assert store.get_run(local).status is Status.FAILED  # type: ignore[union-attr]
    assert store.get_run(on_worker).status is Status.RUNNING  # type: ignore[union-attr]
    # a comes back: it cancels its own run, not the one its worker runs.
    a.tick(at(10, 3))
    assert a.owner == "a/2"
    assert a_exec.cancelled == [local]
    # The worker dies: the next takeover records its run FAILED (worker lost), once.
    b.beat(at(10, 2) + 2 * LEASE + timedelta(seconds=5))
    record = store.get_run(on_worker)
    assert record is not None
    assert record.status is Status.FAILED
    assert (record.error or "").startswith("worker lost: worker w on wh")
    b.beat(at(10, 2) + 3 * LEASE)
    assert store.get_run(on_worker) == record
    assert not store.finish(on_worker, status=Status.SUCCESS, now=at(10, 5), owner="w")


def test_a_daemon_never_closes_a_live_daemons_runs_at_start(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline("p"))
    a, a_exec, _ = make_daemon("a")
    a.tick(at(10, 1))
    run_id = a_exec.submitted[0].run_id
    assert a_exec.begin(run_id, at(10, 1, 1))
    a.beat(at(10, 1, 20))
    _, b_exec, _ = make_daemon("b", now=at(10, 1, 30))
    assert store.get_run(run_id).status is Status.RUNNING  # type: ignore[union-attr]
    assert b_exec.submitted == []
    assert a_exec.end(run_id, at(10, 1, 40))


def test_a_clean_stop_hands_waiting_releases_over_without_waiting_for_the_lease(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    write_conf("q.yml", pipeline("queued", extra="  concurrency: queue\n"))
    a, a_exec, _ = make_daemon("a")
    b, b_exec, _ = make_daemon("b")
    a.tick(at(10, 1))
    a.tick(at(10, 2))
    first = a_exec.submitted[0].run_id
    assert a_exec.begin(first, at(10, 2, 1))
    assert a_exec.end(first, at(10, 2, 2))
    a.process_events()  # 10:02 starts on a
    second = a_exec.submitted[1].run_id
    a.tick(at(10, 3))  # 10:03 waits behind 10:02
    a.stop(timeout=0)  # 10:02 never started: it stays PENDING, and so does 10:03
    b.beat(at(10, 3, 5))  # well inside a's lease: a left, so b adopts at once
    assert [r.release.at for r in b_exec.submitted] == [at(10, 2)]  # type: ignore[union-attr]
    assert b_exec.submitted[0].run_id == second
    owners = {o.owner: o for o in store.owners()}
    assert owners["a"].state is OwnerState.STOPPED
    assert owners["a"].taken_by == b.owner


def test_a_stopping_daemon_keeps_its_lease_while_its_runs_finish(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline("p"))
    a, a_exec, _ = make_daemon("a")
    b, _, _ = make_daemon("b")
    a.tick(at(10, 1))
    run_id = a_exec.submitted[0].run_id
    assert a_exec.begin(run_id, at(10, 1, 1))

    def finishing() -> None:  # a long run: the stop waits for it past the lease
        a.beat(at(10, 1, 25))
        b.beat(at(10, 1, 40))
        a.beat(at(10, 1, 50))
        b.beat(at(10, 2, 10))
        assert a_exec.end(run_id, at(10, 2, 15))

    a_exec.during_shutdown = finishing
    a.stop(timeout=60)
    record = store.get_run(run_id)
    assert record is not None
    assert record.status is Status.SUCCESS


# -- watermarks and catch-up -------------------------------------------------------


def test_catch_up_after_an_outage_runs_by_policy_once_whoever_comes_back(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    write_conf("l.yml", pipeline("latest", "*/10 * * * *"))
    write_conf("n.yml", pipeline("none", "*/10 * * * *", extra="  catchup: none\n"))
    write_conf("a.yml", pipeline("all", "*/10 * * * *", extra="  catchup: all\n"))
    a, _, _ = make_daemon("a")
    a.tick(at(10, 1))
    a.stop(timeout=0)
    # Everyone was down until 11:05; b comes back first, c a moment later.
    b, b_exec, _ = make_daemon("b", now=at(11, 5))
    c, c_exec, _ = make_daemon("c", now=at(11, 5))
    b.tick(at(11, 5))
    c.tick(at(11, 5, 1))
    expected = [("all", at(10, m)) for m in (10, 20, 30, 40, 50)] + [("all", at(11, 0))]
    expected += [("latest", at(11, 0))]
    after = [key for key in release_keys(scheduled(store)) if key[1] > at(10, 1)]
    assert sorted(after) == sorted(expected)
    assert c_exec.submitted == []  # c found every pipeline planned already
    assert len(b_exec.submitted) == 5  # 4 poking slots of "all" + "latest"


def test_a_lagging_daemon_neither_skips_nor_replays_a_release(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline("p", extra="  catchup: none\n"))
    a, a_exec, _ = make_daemon("a")
    b, b_exec, _ = make_daemon("b")
    a.tick(at(10, 1))
    for minute in (2, 3, 4):  # a stalls (a long pause); b ticks on
        b.tick(at(10, minute))
    report = a.tick(at(10, 5))  # a's own last boundary was 10:01
    assert [r.at for r in report.due] == [at(10, 5)]
    assert report.missed == ()  # nothing is "missed": b ran 10:02 to 10:04
    assert sorted(release_keys(scheduled(store))) == [("p", at(10, m)) for m in range(1, 6)]
    del a_exec, b_exec


# -- slots across daemons ----------------------------------------------------------


def test_concurrency_queue_holds_across_daemons(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    write_conf("q.yml", pipeline("queued", extra="  concurrency: queue\n"))
    a, a_exec, _ = make_daemon("a")
    b, b_exec, _ = make_daemon("b")
    a.tick(at(10, 1))
    first = a_exec.submitted[0].run_id
    assert a_exec.begin(first, at(10, 1, 1))
    report = b.tick(at(10, 2))
    assert b_exec.submitted == []
    assert len(report.held) == 1
    assert b.admit_waiting() == []
    assert a_exec.end(first, at(10, 2, 30))
    a.process_events()
    started = b.admit_waiting()  # the slot freed up on another daemon
    assert started == list(report.held)
    assert [r.run_id for r in b_exec.submitted] == started


def test_concurrency_skip_sees_runs_of_other_daemons(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    write_conf("s.yml", pipeline("skipper", extra="  concurrency: skip\n"))
    a, a_exec, _ = make_daemon("a")
    b, b_exec, _ = make_daemon("b")
    a.tick(at(10, 1))
    assert a_exec.begin(a_exec.submitted[0].run_id, at(10, 1, 1))
    report = b.tick(at(10, 2))
    assert b_exec.submitted == []
    skipped = store.get_run(report.skipped[0])
    assert skipped is not None
    assert skipped.status is Status.SKIPPED
    assert "concurrency: skip" in (skipped.error or "")


def test_max_pipeline_poking_holds_across_daemons(
    store: RunStore,
    make_settings: Callable[..., Settings],
    write_conf: Callable[..., Path],
) -> None:
    settings = make_settings(WORKFLOW_CORE_MAX_PIPELINE_POKING="2")
    write_conf("p.yml", pipeline("p", extra="  catchup: all\n"))
    daemons: list[tuple[Scheduler, FleetExecutor]] = []
    for name in ("a", "b", "c"):
        executor = FleetExecutor(store)
        scheduler = Scheduler(
            settings=settings,
            store=store,
            executor=executor,
            clock=FakeClock(at(10, 0, 30)),
            loader=Loader.from_settings(settings),
            owner=name,
        )
        executor.templates = scheduler.template
        scheduler.start()
        daemons.append((scheduler, executor))
    for minute, (scheduler, _) in zip((1, 2, 3), daemons, strict=True):
        scheduler.tick(at(10, minute))  # nothing ends: the runs pile up
    submitted = [r for _, executor in daemons for r in executor.submitted]
    assert len(submitted) == 2  # two slots fleet-wide, the third release waits
    waiting = [r for r in scheduled(store, "p") if r.status is Status.PENDING]
    assert len(waiting) == 3
    for scheduler, _ in daemons:
        scheduler.admit_waiting()
    assert sum(len(executor.submitted) for _, executor in daemons) == 2


# -- store outages -----------------------------------------------------------------


def test_after_a_store_outage_the_boundary_is_claimed_once_and_nobody_is_taken_over(
    store: RunStore,
    make_daemon: MakeDaemon,
    write_conf: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_conf("p.yml", pipeline("p", extra="  catchup: none\n"))
    a, a_exec, _ = make_daemon("a")
    b, b_exec, _ = make_daemon("b")
    a.tick(at(10, 1))
    b.beat(at(10, 1, 1))

    def down(*args: object, **kwargs: object) -> NoReturn:
        raise StoreError("connection refused")

    with monkeypatch.context() as outage:  # the store is unreachable for a minute
        for name in ("heartbeat", "claim_round", "take_over", "admit"):
            outage.setattr(store, name, down)
        for scheduler in (a, b):
            with pytest.raises(StoreError):
                scheduler.tick(at(10, 2))
            with pytest.raises(StoreError):
                scheduler.beat(at(10, 2, 20))
    # It answers again at 10:02:40: every heartbeat is older than the lease.
    a.beat(at(10, 2, 40))  # the failed boundary is claimed now, still on time
    b.beat(at(10, 2, 41))
    assert [r.logical_date for r in a_exec.submitted] == [at(10, 1), at(10, 2)]
    assert b_exec.submitted == []
    a.beat(at(10, 3, 0))  # less than a lease since a could reach the store again
    assert {o.owner: o.state for o in store.owners()} == {
        a.owner: OwnerState.LIVE,
        b.owner: OwnerState.LIVE,
    }
    a.tick(at(10, 3))
    assert sorted(release_keys(scheduled(store))) == [("p", at(10, m)) for m in (1, 2, 3)]


def test_the_lease_is_renewed_while_the_scheduler_is_busy_elsewhere(
    store: RunStore, make_daemon: MakeDaemon, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline("p"))
    a, _, _ = make_daemon("a")
    held, release = threading.Event(), threading.Event()

    def busy() -> None:  # a tick or takeover waiting on the database
        with a._lock:
            held.set()
            release.wait(timeout=10)

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        assert held.wait(timeout=10)
        assert a.keep_alive(at(10, 1, 10))
        beats = {o.owner: o.heartbeat for o in store.owners()}
        assert beats[a.owner] == at(10, 1, 10)
    finally:
        release.set()
        worker.join(timeout=10)
