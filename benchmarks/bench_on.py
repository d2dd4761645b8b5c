"""Benchmark schedules: fire-time computations per second, and one scheduler tick.

Usage::

    python benchmarks/bench_on.py [--years 1] [--repeat 3] [--schedules 10000] [--ticks 60]
        [--token-years 20] [--hash] [--jitter 300] [--jitter-ticks 5]

Reports, for ``*/5 * * * *`` and ``0 9 * * 1-5`` in America/New_York, how many fire
times per second ``On.fire_times`` produces over a year, oldest first (``next``) and
newest first (``prev``), next to croniter's ``get_next`` on the same expression; then
the same rates for one expression per month-dependent day token (``L``, ``L-n``,
``nW``, ``LW``, ``nL``, ``n#k``) over ``--token-years``, as a ratio to the plain
``0 9 * * 1-5`` over the same years; then the time one scheduler tick takes: ``list(schedule.fire_times(previous, now))`` for a
one-minute window across N distinct schedules (cold = first tick after loading, warm =
steady state). With ``--hash`` the tick's schedules are those of N pipelines on
``H`` expressions (``H H * * *``, ``H/15 * * * *``, ...), each seeded by its pipeline's
name, and the time to build them (resolving ``H``) is reported too, as is the
planner's tick over them as the daemon runs it (the schedules rebuilt from their
resolved text, fire times computed once per ``cron@zone`` key).

With ``--jitter SECONDS``: the cost of a schedule's jitter in a real
``Scheduler.tick`` (in-memory run store, an executor that ends each run as it is
submitted, validation stubbed) with N pipelines on ``0 * * * *``, every one due at
each hourly tick: the tick without jitter, and with jitter the tick (claim, offset,
hold) plus the :meth:`Scheduler.start_held` call that hands the held releases over
at their starts. Reported as medians over ``--jitter-ticks`` ticks and as a ratio.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from croniter import croniter

from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
from ddeutil.workflow.loader import Loader, RawTemplate
from ddeutil.workflow.result import Status
from ddeutil.workflow.schedules.cron_schedule import CronSchedule
from ddeutil.workflow.schedules.hashed import resolve_hashes
from ddeutil.workflow.schedules.on import On
from ddeutil.workflow.schedules.planner import Catchup, PlannedSchedule, plan
from ddeutil.workflow.scheduling.scheduler import Scheduler
from ddeutil.workflow.scheduling.validation import Concurrency, Outcome, PipelineFacts
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import MemoryRunStore, RunStore, open_store

UTC = timezone.utc
ZONE = "America/New_York"
ZONES = ("America/New_York", "Europe/London", "Asia/Bangkok", "UTC", "Australia/Sydney")


def _best(repeat: int, run: Callable[[], int]) -> tuple[int, float]:
    """Run ``run`` ``repeat`` times; return (items, best seconds)."""
    best, items = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        items = run()
        best = min(best, time.perf_counter() - started)
    return items, best


def bench_runner(cron: str, years: int, repeat: int, croniter_too: bool = True) -> dict[str, float]:
    schedule = On.parse({"cron": cron, "timezone": ZONE})
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = start.replace(year=start.year + years)

    def forward() -> int:
        count = 0
        for at in schedule.fire_times(start):
            if at >= end:
                break
            count += 1
        return count

    def backward() -> int:
        return sum(1 for _ in schedule.fire_times(start, end, newest_first=True))

    def window() -> int:
        return len(list(schedule.fire_times(start, end)))

    def reference() -> int:
        it, count = croniter(cron, start.astimezone(schedule.timezone)), 0
        while it.get_next(datetime) < end:
            count += 1
        return count

    rates = {}
    runs = [("next", forward), ("prev", backward), ("fire_times", window)]
    if croniter_too:  # croniter does not read every day token (`L-3`)
        runs.append(("croniter", reference))
    for label, run in runs:
        items, seconds = _best(repeat, run)
        rates[label] = items / seconds
        rates["count"] = items
    return rates


TOKENS = ("0 9 L * *", "0 9 L-3 * *", "0 9 15W * *", "0 9 LW * *", "0 9 * * 5L", "0 9 * * MON#2")
PLAIN = "0 9 * * 1-5"


def bench_tokens(years: int, repeat: int) -> list[tuple[str, dict[str, float]]]:
    """``next``/``prev`` rates of the plain expression and of each day token, same years."""
    return [(cron, bench_runner(cron, years, repeat, False)) for cron in (PLAIN, *TOKENS)]


def _schedules(count: int, seed: int) -> list[On]:
    rng = random.Random(seed)
    shapes = (
        lambda: f"*/{rng.choice([1, 2, 5, 10, 15, 30])} * * * *",
        lambda: f"{rng.randrange(60)} * * * *",
        lambda: f"{rng.randrange(60)} {rng.randrange(24)} * * *",
        lambda: f"{rng.randrange(60)} {rng.randrange(24)} * * 1-5",
        lambda: f"{rng.randrange(60)} {rng.randrange(24)} {rng.randrange(1, 29)} * *",
        lambda: f"{rng.randrange(60)} */{rng.choice([2, 3, 4, 6])} * * *",
    )
    out: list[On] = []
    seen: set[str] = set()
    while len(out) < count:
        schedule = On.parse({"cron": rng.choice(shapes)(), "timezone": rng.choice(ZONES)})
        if schedule.key not in seen:  # distinct schedules: no shared memo
            seen.add(schedule.key)
            out.append(schedule)
        elif len(seen) > count // 2:
            out.append(schedule)  # popular expressions repeat, as in real deployments
    return out


def _hashed_schedules(count: int, seed: int) -> list[On]:
    """The schedules of ``count`` pipelines on H expressions, seeded by their names."""
    rng = random.Random(seed)
    shapes = (
        "H * * * *",
        "H H * * *",
        "H H * * 1-5",
        "H H(0-5) * * *",
        "H/15 * * * *",
        "H(0-29)/10 H * * *",
        "H H H * *",
    )
    return [
        On.parse({"cron": rng.choice(shapes), "timezone": rng.choice(ZONES)}, seed=f"pipe-{i}")
        for i in range(count)
    ]


def bench_tick(count: int, ticks: int, seed: int, *, hashed: bool = False) -> dict[str, float]:
    started = time.perf_counter()
    schedules = _hashed_schedules(count, seed) if hashed else _schedules(count, seed)
    built = time.perf_counter() - started
    now = datetime(2025, 3, 9, 6, 0, 30, tzinfo=UTC)  # New York's spring-forward morning
    minute = timedelta(minutes=1)

    def tick(previous: datetime, current: datetime) -> tuple[int, float]:
        started = time.perf_counter()
        due = sum(len(list(s.fire_times(previous, current))) for s in schedules)
        return due, time.perf_counter() - started

    due_cold, cold = tick(now - minute, now)
    warm, dues = [], [due_cold]
    for _ in range(ticks):
        due, seconds = tick(now, now + minute)
        warm.append(seconds)
        dues.append(due)
        now += minute
    _, gap = tick(now, now + timedelta(hours=10))  # after ten hours of downtime
    planned = [
        PlannedSchedule(f"pipe-{i}", CronSchedule.parse(str(s.cronjob), s.timezone.key))
        for i, s in enumerate(schedules)
    ]
    plans = []
    for _ in range(ticks):
        started = time.perf_counter()
        plan(planned, watermark=now - minute, now=now)
        plans.append(time.perf_counter() - started)
        now += minute
    return {
        "build_ms": built * 1000,
        "keys": len({s.key for s in schedules}),
        "cold_ms": cold * 1000,
        "warm_median_ms": statistics.median(warm) * 1000,
        "warm_max_ms": max(warm) * 1000,
        "due_per_tick": statistics.mean(dues),
        "gap_10h_ms": gap * 1000,
        "plan_cold_ms": plans[0] * 1000,
        "plan_median_ms": statistics.median(plans) * 1000,
        "plan_max_ms": max(plans) * 1000,
    }


class _EndAtOnce:
    """An executor that records each submitted run as started and SUCCESS at once."""

    def __init__(self, store: RunStore, clock: FakeClock, *, record: bool = True) -> None:
        self._store, self._clock, self._events = store, clock, list[RunEvent]()
        self._record = record  # False: hand-over only, as a real executor's queue put
        self.submitted = 0

    def start(self) -> None:
        pass

    def submit(self, request: RunRequest) -> None:
        if not self._record:
            self.submitted += 1
            return
        now = self._clock.now()
        self._store.mark_running(request.run_id, now=now)
        self._store.finish(request.run_id, status=Status.SUCCESS, now=now)
        self._events.append(RunEvent("finished", request.run_id, Status.SUCCESS))
        self.submitted += 1

    def drain_events(self) -> list[RunEvent]:
        out, self._events = self._events, []
        return out

    def wait_event(self, timeout: float) -> bool:
        return bool(self._events)

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        return False

    def capacity(self) -> int:
        return 1_000_000

    def in_flight(self) -> int:
        return 0

    def shutdown(self, timeout: float, *, reason: str | None = None) -> None:
        pass


class _Facts:
    """A validator stub: every pipeline is hourly in UTC with the given jitter."""

    def __init__(self, jitter: int) -> None:
        self._schedule = CronSchedule.parse("0 * * * *", "UTC", None, jitter)

    def validate(
        self, templates: Sequence[RawTemplate], loader: Loader, settings: Settings
    ) -> list[Outcome]:
        facts = PipelineFacts((self._schedule,), Concurrency.ALLOW, Catchup.LATEST, {})
        return [facts for _ in templates]

    def close(self) -> None:
        pass


def _scheduler_ticks(count: int, ticks: int, jitter: int) -> tuple[list[float], list[float]]:
    """(tick seconds, start_held seconds) of ``ticks`` hourly ticks, ``count`` due each."""
    start = datetime(2025, 3, 10, 0, 0, 30, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as root:
        conf = Path(root, "conf")
        conf.mkdir()
        body = "  type: Pipeline\n  jobs: {only: {stages: [{name: nothing}]}}\n"
        (conf / "p.yml").write_text("".join(f"p{i}:\n{body}" for i in range(count)))
        settings = Settings.from_env({"WORKFLOW_ROOT_PATH": root, "WORKFLOW_CORE_TIMEZONE": "UTC"})
        store, clock = MemoryRunStore(), FakeClock(start)
        executor = _EndAtOnce(store, clock)
        scheduler = Scheduler(
            settings=settings,
            store=store,
            executor=executor,
            clock=clock,
            loader=Loader.from_settings(settings),
            validator=_Facts(jitter),
            owner="bench",
        )
        scheduler.start()
        tick_s: list[float] = []
        held_s: list[float] = []
        for hour in range(1, ticks + 1):
            at = start.replace(minute=0, second=0) + timedelta(hours=hour)
            clock.set(at)
            began = time.perf_counter()
            scheduler.tick(at)
            tick_s.append(time.perf_counter() - began)
            clock.set(at + timedelta(seconds=jitter))
            began = time.perf_counter()
            scheduler.start_held()
            held_s.append(time.perf_counter() - began)
        assert executor.submitted == count * ticks, (executor.submitted, count * ticks)
        scheduler.stop(timeout=0)
        store.close()
    return tick_s, held_s


class _HashFacts:
    """A validator stub: each pipeline's schedule is an ``H`` shape seeded by its name."""

    SHAPES = ("H H * * *", "H/15 * * * *", "H H(1-4) * * *", "H * * * *", "H H * * 1-5")

    def validate(
        self, templates: Sequence[RawTemplate], loader: Loader, settings: Settings
    ) -> list[Outcome]:
        out: list[Outcome] = []
        for i, template in enumerate(templates):
            cron = resolve_hashes(self.SHAPES[i % len(self.SHAPES)], template.name)
            schedule = CronSchedule.parse(cron, "UTC")
            out.append(PipelineFacts((schedule,), Concurrency.ALLOW, Catchup.LATEST, {}))
        return out

    def close(self) -> None:
        pass


def bench_hash_scheduler(count: int, minutes: int) -> dict[str, float]:
    """``Scheduler.tick`` each minute for ``minutes`` with ``count`` pipelines on ``H``
    schedules, on the daemon's default store (a SQLite file)."""
    start = datetime(2025, 3, 10, 0, 0, 30, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as root:
        conf = Path(root, "conf")
        conf.mkdir()
        body = "  type: Pipeline\n  jobs: {only: {stages: [{name: nothing}]}}\n"
        (conf / "p.yml").write_text("".join(f"p{i}:\n{body}" for i in range(count)))
        settings = Settings.from_env({"WORKFLOW_ROOT_PATH": root, "WORKFLOW_CORE_TIMEZONE": "UTC"})
        store, clock = open_store(f"sqlite:///{root}/runs.db"), FakeClock(start)
        executor = _EndAtOnce(store, clock, record=False)  # the tick's own cost
        scheduler = Scheduler(
            settings=settings,
            store=store,
            executor=executor,
            clock=clock,
            loader=Loader.from_settings(settings),
            validator=_HashFacts(),
            owner="bench",
        )
        scheduler.start()
        gc.collect()  # as the daemon does once started (its catalog lives as long as it)
        gc.freeze()
        times: list[float] = []
        for minute in range(1, minutes + 1):
            at = start.replace(second=0) + timedelta(minutes=minute)
            clock.set(at)
            began = time.perf_counter()
            scheduler.tick(at)
            times.append(time.perf_counter() - began)
        submitted = executor.submitted
        scheduler.stop(timeout=0)
        store.close()
        gc.unfreeze()
    later = times[1:] or times
    return {
        "first_ms": times[0] * 1000,
        "median_ms": statistics.median(later) * 1000,
        "max_ms": max(later) * 1000,
        "runs": submitted,
    }


def bench_jitter(count: int, ticks: int, jitter: int) -> dict[str, Any]:
    plain, _ = _scheduler_ticks(count, ticks, 0)
    tick, held = _scheduler_ticks(count, ticks, jitter)
    none_ms = statistics.median(plain) * 1000
    tick_ms = statistics.median(tick) * 1000
    held_ms = statistics.median(held) * 1000
    return {
        "none_ms": none_ms,
        "tick_ms": tick_ms,
        "held_ms": held_ms,
        "ratio": (tick_ms + held_ms) / none_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--years", type=int, default=1, help="years walked per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument("--schedules", type=int, default=10_000, help="schedules in the tick")
    parser.add_argument("--ticks", type=int, default=60, help="warm one-minute ticks measured")
    parser.add_argument(
        "--token-years", type=int, default=20, help="years walked for the day tokens"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--hash", action="store_true", help="tick over pipelines whose schedules use H"
    )
    parser.add_argument(
        "--jitter", type=int, default=0, help="seconds of jitter for the scheduler tick (0: skip)"
    )
    parser.add_argument("--jitter-ticks", type=int, default=5, help="hourly ticks measured")
    args = parser.parse_args()
    if args.hash:
        h = bench_hash_scheduler(args.schedules, args.ticks)
        print(f"Scheduler.tick each minute, {args.schedules:,} pipelines on H, SQLite store")
        print(f"{'first tick (learns all)':<28}{h['first_ms']:>10.1f} ms")
        print(f"{'later ticks, median':<28}{h['median_ms']:>10.1f} ms")
        print(f"{'later ticks, max':<28}{h['max_ms']:>10.1f} ms")
        print(f"{'runs started':<28}{h['runs']:>10,}")
        print()
    if args.jitter:
        j = bench_jitter(args.schedules, args.jitter_ticks, args.jitter)
        print(f"Scheduler.tick, {args.schedules:,} pipelines due, median of {args.jitter_ticks}")
        print(f"{'no jitter: tick':<36}{j['none_ms']:>10.1f} ms")
        print(f"{f'jitter {args.jitter}s: tick':<36}{j['tick_ms']:>10.1f} ms")
        print(f"{f'jitter {args.jitter}s: start_held':<36}{j['held_ms']:>10.1f} ms")
        print(f"{'ratio (tick + start_held) / tick':<36}{j['ratio']:>10.2f}")
        return

    print(f"fire times per second, {ZONE}, successive steps over {args.years} year(s)")
    print(
        f"{'expression':<16}{'fires':>8}{'.next/s':>12}{'.prev/s':>12}{'fire_times/s':>14}{'croniter/s':>12}"
    )
    for cron in ("*/5 * * * *", "0 9 * * 1-5"):
        r = bench_runner(cron, args.years, args.repeat)
        print(
            f"{cron:<16}{int(r['count']):>8}{r['next']:>12,.0f}{r['prev']:>12,.0f}"
            f"{r['fire_times']:>14,.0f}{r['croniter']:>12,.0f}"
        )

    print()
    print(f"day tokens, {ZONE}, over {args.token_years} years; ratio = plain rate / token rate")
    print(f"{'expression':<16}{'fires':>8}{'.next/s':>12}{'.prev/s':>12}{'next x':>9}{'prev x':>9}")
    rows = bench_tokens(args.token_years, args.repeat)
    plain = rows[0][1]
    for cron, r in rows:
        print(
            f"{cron:<16}{int(r['count']):>8}{r['next']:>12,.0f}{r['prev']:>12,.0f}"
            f"{plain['next'] / r['next']:>9.2f}{plain['prev'] / r['prev']:>9.2f}"
        )

    t = bench_tick(args.schedules, args.ticks, args.seed, hashed=args.hash)
    print()
    what = "pipelines' H schedules" if args.hash else "schedules"
    print(f"one tick: schedule.fire_times(previous, now) over {args.schedules:,} {what}")
    print(f"{'built (parse, resolve H)':<28}{t['build_ms']:>10.1f} ms")
    print(f"{'distinct cron@zone keys':<28}{t['keys']:>10,}")
    print(f"{'cold (first tick)':<28}{t['cold_ms']:>10.1f} ms")
    print(f"{'warm tick, median':<28}{t['warm_median_ms']:>10.1f} ms")
    print(f"{'warm tick, max':<28}{t['warm_max_ms']:>10.1f} ms")
    print(f"{'fire times due per tick':<28}{t['due_per_tick']:>10.0f}")
    print(f"{'10-hour gap, one call each':<28}{t['gap_10h_ms']:>10.1f} ms")
    print(f"{'planner tick, first':<28}{t['plan_cold_ms']:>10.1f} ms")
    print(f"{'planner tick, median':<28}{t['plan_median_ms']:>10.1f} ms")
    print(f"{'planner tick, max':<28}{t['plan_max_ms']:>10.1f} ms")


if __name__ == "__main__":
    main()
