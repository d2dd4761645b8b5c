"""Benchmark: ``workflow backfill`` of 10,000 releases next to a real daemon (SQLite store).

Run by hand (takes about ``--idle + --during + 2`` real minutes)::

    python benchmarks/bench_backfill.py [--releases 10000] [--parallel 50]
        [--idle 2] [--during 2] [--python PY] [--keep]

What it does, in a temporary root folder (removed at the end unless ``--keep``):

* A real daemon (``python -m ddeutil.workflow.app``, default settings, SQLite
  store under the root) schedules one pipeline on ``* * * * *`` whose first
  stage stamps ``time.time()``, exactly as ``bench_daemon.py``'s latency part:
  **tick latency** = stamp - minute boundary, per boundary.
* ``--idle`` boundaries are measured with nothing else running.
* Then ``workflow backfill bf-N --start 2024-01-01T00:00 --end ... --parallel 50``
  runs ``--releases`` releases of a trivial pipeline (one ``echo`` stage, on
  ``* * 1-7 1 *`` so the daemon never fires it) on the same store; backfills of
  fresh pipelines follow one another until ``--during`` boundaries fell while one
  ran. The first backfill's total time and its JSON summary are reported.
* Checks: every backfill exits 0 with every release run once; the daemon's run
  of each boundary ran once. Ratio: p50 and max tick latency during / idle (the
  goal is at most 2x).

Every wait is bounded; the daemon and the backfills are stopped in a ``finally``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_daemon as bd  # the daemon helpers of the sibling benchmark

BACKFILLED = """\
bf-{n}:
  type: Pipeline
  on:
    - cronjob: "* * 1-7 1 *"
      timezone: UTC
  jobs:
    main:
      stages:
        - name: noop
          echo: done
"""
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
MAX_BACKFILLS = 60


def write_conf(conf: Path) -> None:
    bd.write_conf(conf, 1)  # bench-0000: the daemon's stamped pipeline on * * * * *
    text = "\n".join(BACKFILLED.format(n=n) for n in range(MAX_BACKFILLS))
    (conf / "backfilled.yml").write_text(text, encoding="utf-8")


def start_backfill(
    python: str, root: Path, n: int, releases: int, parallel: int
) -> tuple[subprocess.Popen[bytes], Path]:
    end = START + timedelta(minutes=releases)  # one release a minute
    out = root / f"backfill-{n}.jsonl"
    with out.open("wb") as fh, (root / f"backfill-{n}.err").open("wb") as err:
        proc = subprocess.Popen(
            [
                python,
                "-m",
                "ddeutil.workflow",
                "--log-level",
                "WARNING",
                "backfill",
                f"bf-{n}",
                "--start",
                START.isoformat(),
                "--end",
                end.isoformat(),
                "--parallel",
                str(parallel),
            ],
            env=bd.daemon_env(root, {}),
            cwd=root,
            stdout=fh,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return proc, out


def latencies(root: Path, boundaries: list[float]) -> dict[float, float]:
    runs = bd.wait_runs_done(root / ".workflow" / "runs.db", boundaries, len(boundaries), 60)
    stamps: dict[float, float] = {}
    for run in runs:
        if run["pipeline"] == "bench-0000" and run["stamp"] is not None:
            if run["release"] in stamps:
                raise AssertionError(f"release {run['release']} ran twice")
            stamps[run["release"]] = run["stamp"] - run["release"]
    return stamps


def stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--parallel", type=int, default=50)
    parser.add_argument("--idle", type=int, default=2, help="boundaries measured idle")
    parser.add_argument("--during", type=int, default=2, help="boundaries measured during")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--keep", action="store_true", help="keep the temporary root")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    write_conf(root / "conf")
    log = root / "daemon.log"
    daemon = None
    backfills: list[subprocess.Popen[bytes]] = []
    report: dict[str, Any] = {"releases": args.releases, "parallel": args.parallel}
    try:
        bd.avoid_close_boundary(20)
        daemon = bd.start_daemon(args.python, root, log, {})
        ready = bd.wait_ready(daemon, log, 120)
        idle, _ = bd.boundaries_after(ready, args.idle, 10)
        bd.say(f"== idle: {args.idle} boundaries")
        bd.sleep_until(idle[-1] + 1.0, daemon, log)
        idle_lat = latencies(root, idle)

        bd.say(f"== during: backfills of {args.releases} releases, --parallel {args.parallel}")
        during: list[float] = []
        first: dict[str, Any] = {}
        n = 0
        while len(during) < args.during and n < MAX_BACKFILLS:
            began = time.time()
            proc, out = start_backfill(args.python, root, n, args.releases, args.parallel)
            backfills.append(proc)
            code = proc.wait(timeout=3600)
            ended = time.time()
            lines = out.read_text().splitlines()
            summary = json.loads(lines[-1]) if lines else {}
            if code != 0 or summary.get("ran") != args.releases:
                raise AssertionError(f"backfill {n} exited {code}: {summary}")
            during += [b for b in range(int(began // 60 + 1) * 60, int(ended), 60) if b + 1 < ended]
            if n == 0:
                first = {"seconds": round(ended - began, 2), "summary": summary}
                rate = args.releases / (ended - began)
                bd.say(f"  first backfill: {ended - began:.1f} s ({rate:.0f} releases/s)")
            n += 1
        during = [float(b) for b in during[: args.during]]
        if not during:
            raise AssertionError(f"no boundary fell during {n} backfills")
        bd.sleep_until(max(during) + 1.0, daemon, log)
        during_lat = latencies(root, during)
    finally:
        for proc in backfills:
            bd.stop(proc, "backfill", 30)
        bd.stop(daemon, "daemon", 60)
        if args.keep:
            bd.say(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    idle_stats = stats(list(idle_lat.values()))
    during_stats = stats(list(during_lat.values()))
    ratio = {
        key: round(during_stats[key] / idle_stats[key], 2)
        for key in ("p50_ms", "max_ms")
        if idle_stats.get(key) and during_stats.get(key)
    }
    report |= {
        "first_backfill": first,
        "backfills": n,
        "tick_latency_idle": idle_stats,
        "tick_latency_during": during_stats,
        "ratio_during_over_idle": ratio,
        "load": bd.load(),
    }
    bd.say(f"  tick latency idle   {idle_stats}")
    bd.say(f"  tick latency during {during_stats}")
    bd.say(f"  ratio during / idle {ratio} (goal: at most 2x)")
    bd.say(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
