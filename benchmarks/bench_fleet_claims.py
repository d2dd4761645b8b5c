"""Benchmark: claims per second at one boundary, 1 scheduler vs 3 on one PostgreSQL store.

How fast a boundary with many due releases is claimed when several daemons share
the store (they split it pipeline by pipeline, each locking watermark rows with
``FOR UPDATE SKIP LOCKED``), against one daemon alone.

Run::

    python benchmarks/bench_fleet_claims.py [--releases 10000] [--schedules 1]
        [--schedulers 1,3] [--repeat 3] [--pg-url postgresql://user@host:5432/db]

PostgreSQL: ``--pg-url``, else ``WORKFLOW_TEST_POSTGRES_URL``, else
``postgresql://{$PGUSER|root|postgres}@127.0.0.1:5432/test``. Each measurement
uses a fresh schema, dropped afterwards.

Method: ``--releases / --schedules`` pipelines, each with ``--schedules``
schedules ``* * * * *`` in different time zones (so each is its own release
key), all due at the same minute boundary. For each count of schedulers, that
many child processes (one per "daemon": separate interpreters, as real daemons)
each build the daemon's ``Scheduler`` on the store with a fake clock, an executor
that only records what it is handed, and the conf folder loaded; they start
(join the store) at 10:00:30, report ready, and on a common "go" each call
``Scheduler.tick(10:01:00)``: plan, claim in the store (one transaction per batch
of 64 pipelines) and hand the admitted runs to the executor. Throughput =
releases claimed (all of them, checked: every release exactly once in the store)
/ wall time from the "go" to the end of the last tick. The per-scheduler split
shows how the boundary was shared.

The machine's load average is printed: on a 2-core machine, three schedulers
and the PostgreSQL server share the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _postgres import pg_base  # benchmarks/_postgres.py

UTC = timezone.utc
T0 = datetime(2024, 1, 1, 10, 0, 30, tzinfo=UTC)
BOUNDARY = datetime(2024, 1, 1, 10, 1, tzinfo=UTC)
ZONES = (
    "UTC",
    "Asia/Bangkok",
    "Europe/London",
    "America/New_York",
    "Asia/Tokyo",
    "Europe/Paris",
    "Australia/Sydney",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Africa/Cairo",
)


def write_conf(conf: Path, pipelines: int, schedules: int) -> None:
    conf.mkdir(parents=True, exist_ok=True)
    on = "".join(
        f'    - cronjob: "* * * * *"\n      timezone: {zone}\n' for zone in ZONES[:schedules]
    )
    per_file = 500
    for start in range(0, pipelines, per_file):
        docs = [
            f"claims-{i:05d}:\n  type: Pipeline\n  on:\n{on}  jobs:\n    main:\n"
            "      stages:\n        - name: s\n          echo: hi\n"
            for i in range(start, min(start + per_file, pipelines))
        ]
        (conf / f"claims-{start:05d}.yml").write_text("\n".join(docs), encoding="utf-8")


# -- a child process: one scheduler ---------------------------------------------------


class RecordingExecutor:
    """Takes what the scheduler hands it; runs nothing (the runs stay PENDING)."""

    def __init__(self) -> None:
        self.submitted = 0

    def start(self) -> None:
        pass

    def submit(self, request: Any) -> None:
        self.submitted += 1

    def drain_events(self) -> list[Any]:
        return []

    def wait_event(self, timeout: float) -> bool:
        return False

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        return False

    def capacity(self) -> int:
        return 1_000_000

    def in_flight(self) -> int:
        return self.submitted

    def shutdown(self, timeout: float, *, reason: str | None = None) -> None:
        pass


def child(root: str, url: str, index: int) -> None:
    from ddeutil.workflow.clock import FakeClock
    from ddeutil.workflow.loader import Loader
    from ddeutil.workflow.scheduling.scheduler import Scheduler
    from ddeutil.workflow.settings import Settings
    from ddeutil.workflow.store import open_store

    settings = Settings.from_env(
        {
            "WORKFLOW_ROOT_PATH": root,
            "WORKFLOW_CORE_TIMEZONE": "UTC",
            "WORKFLOW_API_DB_URL": url,
            "WORKFLOW_LOG_ENABLE_WRITE": "false",
            "WORKFLOW_APP_LEASE_SECONDS": "3600",
        }
    )
    store = open_store(url)
    executor = RecordingExecutor()
    scheduler = Scheduler(
        settings=settings,
        store=store,
        executor=executor,
        clock=FakeClock(T0),
        loader=Loader.from_settings(settings),
        owner=f"claims-bench-{index}",
    )
    started = time.perf_counter()
    scheduler.start()
    print(json.dumps({"ready": time.perf_counter() - started}), flush=True)
    assert sys.stdin.readline().strip() == "go"
    t_start = time.time()
    report = scheduler.tick(BOUNDARY)
    t_end = time.time()
    print(
        json.dumps(
            {
                "start": t_start,
                "end": t_end,
                "due": len(report.due),
                "claimed": len(report.dispatched) + len(report.held) + len(report.skipped),
                "already": len(report.already_claimed),
                "submitted": executor.submitted,
            }
        ),
        flush=True,
    )
    scheduler.stop(1.0)
    store.close()


# -- the parent -------------------------------------------------------------------------


def measure(base: str, root: Path, count: int, releases: int) -> dict[str, Any]:
    import psycopg

    schema = f"wf_claims_{secrets.token_hex(6)}"
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}&connect_timeout=5"
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", str(root), url, str(i)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    try:
        pipes = [(p.stdin, p.stdout) for p in procs if p.stdin and p.stdout]
        loads = [json.loads(out.readline())["ready"] for _, out in pipes]
        for inp, _ in pipes:
            inp.write("go\n")
        for inp, _ in pipes:
            inp.flush()
        results = [json.loads(out.readline()) for _, out in pipes]
        for p in procs:
            p.wait(120)
        with psycopg.connect(base, connect_timeout=5) as conn:
            conn.execute(f"SET search_path TO {schema}")
            rows, keys = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT (pipeline, release_schedule, release_at)) "
                "FROM workflow_runs WHERE release_at = %s",
                (BOUNDARY,),
            ).fetchone()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(30)
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    claimed = sum(r["claimed"] for r in results)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    ok = claimed == rows == keys == releases
    return {
        "schedulers": count,
        "wall_s": wall,
        "claims_per_s": claimed / wall,
        "claimed": claimed,
        "rows": rows,
        "distinct": keys,
        "ok": ok,
        "split": [r["claimed"] for r in results],
        "tick_s": [r["end"] - r["start"] for r in results],
        "load_s": loads,
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--schedules", type=int, default=1, help=f"per pipeline, 1..{len(ZONES)}")
    parser.add_argument("--schedulers", default="1,3", help="comma-separated counts to compare")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()
    if not 1 <= args.schedules <= len(ZONES) or args.releases % args.schedules:
        parser.error(f"--schedules must be 1..{len(ZONES)} and divide --releases")
    pipelines = args.releases // args.schedules
    base = pg_base(args.pg_url)
    root = Path(tempfile.mkdtemp(prefix="wf-claims-"))
    write_conf(root / "conf", pipelines, args.schedules)
    counts = [int(c) for c in args.schedulers.split(",")]
    print(
        f"{args.releases} releases due at one boundary: {pipelines} pipelines x "
        f"{args.schedules} schedule(s); schedulers {counts}; {args.repeat} repeat(s)",
        flush=True,
    )
    print(f"load average at start: {os.getloadavg()}", flush=True)
    out: dict[int, list[dict[str, Any]]] = {c: [] for c in counts}
    try:
        for _ in range(args.repeat):
            for count in counts:
                result = measure(base, root, count, args.releases)
                out[count].append(result)
                print(
                    f"  {count} scheduler(s): {result['wall_s']:.2f}s, "
                    f"{result['claims_per_s']:.0f} claims/s, split {result['split']}, "
                    f"ticks {[round(t, 2) for t in result['tick_s']]}, "
                    f"start-up {[round(t, 1) for t in result['load_s']]}s, "
                    f"{'every release once' if result['ok'] else 'MISMATCH ' + str(result)}",
                    flush=True,
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()}", flush=True)
    print()
    print(f"{'schedulers':>10}  {'median wall (s)':>15}  {'median claims/s':>15}  {'best':>8}")
    summary = {}
    for count, results in out.items():
        walls = [r["wall_s"] for r in results]
        rates = [r["claims_per_s"] for r in results]
        summary[count] = {"wall_s": statistics.median(walls), "claims_per_s": rates}
        print(
            f"{count:>10}  {statistics.median(walls):>15.2f}  "
            f"{statistics.median(rates):>15.0f}  {max(rates):>8.0f}"
        )
    ok = all(r["ok"] for results in out.values() for r in results)
    print(
        json.dumps(
            {
                "releases": args.releases,
                "schedules": args.schedules,
                "ok": ok,
                "runs": {str(c): r for c, r in out.items()},
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
