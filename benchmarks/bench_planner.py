"""Benchmark: plan one scheduler tick for 10,000 schedules.

Run: ``python benchmarks/bench_planner.py [--count 10000] [--repeat 15] [--schedule auto]``.

Scenarios (each a fresh set of schedule objects, each schedule its own pipeline):

* ``mixed``: ``*/5 * * * *``, ``0 * * * *`` and ``0 9 * * 1-5`` in seven zones - the
  realistic case where many pipelines share a few cron lines (the planner computes fire
  times once per schedule key).
* ``distinct``: 10,000 different ``M H * * *`` lines in seven zones - the worst case, every
  schedule computed on its own.
* ``restart``: ``mixed`` after one day down with ``catchup: latest`` (one-off start-up cost).

The tick is Monday 2024-01-08 09:00:00.4 UTC with the watermark one minute earlier. Schedules
are first an O(1) arithmetic fake (the planner's own cost), then the real ``On`` when
``ddeutil.workflow.on`` exists, else a croniter stand-in with the same protocol.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from ddeutil.workflow.schedules.planner import Catchup, PlannedSchedule, plan

ZONES = (
    "UTC",
    "Asia/Bangkok",
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "America/Sao_Paulo",
)
MIXED = ("*/5 * * * *", "0 * * * *", "0 9 * * 1-5")
NOW = datetime(2024, 1, 8, 9, 0, 0, 400_000, tzinfo=timezone.utc)


class FakeSchedule:
    """O(1) arithmetic stand-in: isolates the planner's own cost from cron matching.

    Maps each cron line to a fixed period (5 min, 1 h, 1 day) and each ``M H`` line to
    a daily offset; the zone only sets ``logical_date``.
    """

    def __init__(self, cron: str, zone: str) -> None:
        self.timezone = ZoneInfo(zone)
        self.key = f"{cron}@{zone}"
        minute, hour = cron.split()[:2]
        if minute.startswith("*/"):
            self.period, self.offset = int(minute[2:]) * 60, 0
        elif hour == "*":
            self.period, self.offset = 3600, int(minute) * 60
        else:
            start = int(minute) * 60 + int(hour) * 3600
            self.period, self.offset = 86400, start

    def fire_times(
        self, after: datetime, until: datetime, *, newest_first: bool = False
    ) -> Iterator[datetime]:
        if newest_first:
            seconds = int(until.timestamp()) - self.offset
            slot = (seconds // self.period) * self.period + self.offset
            start = after.timestamp()
            while slot > start:
                yield datetime.fromtimestamp(slot, timezone.utc)
                slot -= self.period
            return
        seconds = int(after.timestamp()) - self.offset
        slot = (seconds // self.period + 1) * self.period + self.offset
        end = until.timestamp()
        while slot <= end:
            yield datetime.fromtimestamp(slot, timezone.utc)
            slot += self.period


class CroniterSchedule:
    """Stand-in for ``On`` until on.py exists: same protocol, croniter underneath."""

    def __init__(self, cron: str, zone: str) -> None:
        self.cron = cron
        self.timezone = ZoneInfo(zone)
        self.key = f"{cron}@{zone}"

    def fire_times(
        self, after: datetime, until: datetime, *, newest_first: bool = False
    ) -> Iterator[datetime]:
        if newest_first:
            back = croniter(self.cron, until.astimezone(self.timezone) + timedelta(seconds=1))
            while (fire := back.get_prev(datetime).astimezone(timezone.utc)) > after:
                yield fire
            return
        it = croniter(self.cron, after.astimezone(self.timezone))
        while (fire := it.get_next(datetime).astimezone(timezone.utc)) <= until:
            yield fire


def _on_factory() -> Callable[[str, str], Any] | None:
    try:
        from ddeutil.workflow.schedules.on import On
    except ImportError:
        return None

    def build(cron: str, zone: str) -> Any:
        return On.parse({"cron": cron, "timezone": zone})

    return build


def _expressions(scenario: str, count: int) -> list[tuple[str, str]]:
    if scenario == "distinct":
        lines = [f"{m} {h} * * *" for h in range(24) for m in range(60)]
        pairs = [(line, zone) for zone in ZONES for line in lines]
        return pairs[:count]
    return [(MIXED[i % len(MIXED)], ZONES[i % len(ZONES)]) for i in range(count)]


def _run(
    build: Callable[[str, str], Any], scenario: str, count: int, repeat: int
) -> tuple[float, float, int]:
    down = timedelta(days=1) if scenario == "restart" else timedelta(minutes=1)
    samples = []
    due = 0
    for _ in range(repeat):
        schedules = [
            PlannedSchedule(f"pipeline-{i}", build(cron, zone), Catchup.LATEST)
            for i, (cron, zone) in enumerate(_expressions(scenario, count))
        ]
        start = time.perf_counter()
        result = plan(schedules, watermark=NOW - down, now=NOW)
        samples.append((time.perf_counter() - start) * 1000)
        due = len(result.due)
    return statistics.median(samples), min(samples), due


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--schedule",
        choices=("auto", "on", "croniter", "fake"),
        default="auto",
        help="auto: the O(1) fake, then On if on.py exists else the croniter stand-in",
    )
    args = parser.parse_args(argv)

    on = _on_factory()
    if args.schedule == "on" and on is None:
        print("ddeutil.workflow.on is not available", file=sys.stderr)
        return 2
    kinds: list[tuple[str, Callable[[str, str], Any]]] = []
    if args.schedule in ("auto", "fake"):
        kinds.append(("O(1) fake schedule (planner cost only)", FakeSchedule))
    if args.schedule in ("auto", "on") and on is not None:
        kinds.append(("On (ddeutil.workflow.on)", on))
    if args.schedule == "croniter" or (args.schedule == "auto" and on is None):
        kinds.append(("croniter stand-in for On (on.py absent)", CroniterSchedule))
    for label, build in kinds:
        print(f"planner tick, {args.count} schedules, schedule objects: {label}")
        for scenario in ("mixed", "distinct", "restart"):
            median, best, due = _run(build, scenario, args.count, args.repeat)
            print(f"  {scenario:<9} median {median:7.1f} ms   best {best:7.1f} ms   due {due}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
