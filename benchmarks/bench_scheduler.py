"""Benchmark: scheduler latency (boundary -> first stage) and idle memory, vs APScheduler 3.

Run: ``python benchmarks/bench_scheduler.py [--samples 30] [--rounds 1] [--burst 1000]
[--burst-samples 10] [--pipelines 1000] [--aps-python /tmp/venv-aps/bin/python]
[--log none|json]`` (a count of 0 skips that part). The report goes to stderr (with
``--log json`` the daemon's JSON lines go to stdout: redirect it).

Method (nothing waits for a real minute boundary):

* **Latency, 1 due** and **1,000 due**: the real scheduler stack of the daemon
  (``Scheduler`` + ``ProcessExecutor`` with 2 workers x 100 threads + SQLite store
  with its default ``synchronous=NORMAL``) in this process. For each sample the benchmark sleeps
  until the next *whole wall-clock second* with the daemon's own primitive (a
  ``select`` on its wake-up socket, for the remaining time), then calls
  ``Scheduler.tick(now=B)`` with ``B`` the next *minute* boundary of a fake clock
  (after ``Scheduler.prepare()``, the conf check, 50 ms before the second), so
  exactly one release per pipeline is due. The daemon also dispatches ahead
  (``prepare(B)``, workers start runs at the release instant); a fake boundary
  cannot show that: ``bench_daemon.py`` measures the daemon on real boundaries. The first stage of each pipeline is
  a python stage whose first statement reads ``time.time()``; latency = that
  stamp (taken in the worker process, read back from the run's stored outputs)
  minus the whole second. It therefore includes the wake-up error, reload check,
  planning, claim (one SQLite transaction), dispatch to a worker, the start
  handshake (a second transaction) and the engine up to the stage's first line.
  It excludes only ``schedule.run_pending()`` (microseconds).
* **APScheduler 3.x**: a ``BackgroundScheduler`` with a ``CronTrigger(second="*")``
  job (the minute cron fires at second 0, this fires at every second: the same
  code path, N samples in N seconds) calling a plain function that reads
  ``time.time()``; latency = stamp minus the whole second. Run in the separate
  venv ``--aps-python`` (``python -m venv /tmp/venv-aps && /tmp/venv-aps/bin/pip
  install 'apscheduler<4'``), never installed in the project.
* **Idle memory, 1,000 pipelines**: a real ``python -m ddeutil.workflow.app`` with
  1,000 pipeline templates (one schedule each) once it logged "scheduler
  running" and its workers are up: parent RSS (``VmRSS``) and the PSS
  (``/proc/<pid>/smaps_rollup``) of the parent plus every descendant (fork
  server, resource tracker, workers). APScheduler: RSS of a process holding a
  started ``BackgroundScheduler`` with 1,000 cron jobs.

The first ``--warmup`` ticks (and APScheduler firings) are not counted: the first
run on each worker thread pays one-off imports and caches.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ddeutil.workflow.app.daemon import PREPARE_LEAD, wait_readable
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.processes import ProcessExecutor
from ddeutil.workflow.loader import Loader, RawTemplate
from ddeutil.workflow.logs import configure_logging
from ddeutil.workflow.scheduling.scheduler import Scheduler
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store

PIPELINE = """\
bench-{i:04d}:
  type: Pipeline
  on:
    - cronjob: "{cron}"
      timezone: UTC
  jobs:
    main:
      stages:
        - name: stamp
          id: stamp
          run: |
            import time
            t = time.time()
"""

APS_SCRIPT = r"""
import json, os, sys, threading, time
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

mode, n, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

if mode == "memory":
    sched = BackgroundScheduler()
    for i in range(n):
        sched.add_job(lambda: None, CronTrigger.from_crontab("* * * * *"), id=f"job-{i}")
    sched.start()
    time.sleep(1.0)
    print(json.dumps({"rss_kb": rss_kb()}))
    sched.shutdown(wait=False)
else:
    stamps, done = [], threading.Event()
    def job():
        stamps.append(time.time())
        if len(stamps) >= n + warmup:
            done.set()
    sched = BackgroundScheduler()
    sched.add_job(job, CronTrigger(second="*"), misfire_grace_time=5)
    sched.start()
    done.wait(n + warmup + 30)
    sched.shutdown(wait=False)
    print(json.dumps({"latency_s": [t - int(t) for t in stamps[warmup : warmup + n]]}))
"""


def write_conf(conf: Path, count: int, cron: str) -> None:
    conf.mkdir(parents=True, exist_ok=True)
    per_file = 100
    for start in range(0, count, per_file):
        text = "\n".join(
            PIPELINE.format(i=i, cron=cron) for i in range(start, min(start + per_file, count))
        )
        (conf / f"bench-{start:04d}.yml").write_text(text, encoding="utf-8")


_WAKER = socket.socketpair()


def sleep_until_next_second(
    scheduler: Scheduler | None = None, boundary: datetime | None = None
) -> float:
    """Sleep like the daemon until the next whole second; return it.

    As the daemon does, it wakes :data:`PREPARE_LEAD` early to call
    ``scheduler.prepare()`` (the conf check; not the dispatch ahead, which needs
    wall-clock boundaries), then sleeps to the whole second.
    """
    target = math.floor(time.time()) + 1.0
    if scheduler is not None:
        while (left := target - PREPARE_LEAD - time.time()) > 0:
            wait_readable(_WAKER[0], left)
        scheduler.prepare()  # the conf check only: these boundaries are not wall-clock ones
    while (left := target - time.time()) > 0:
        wait_readable(_WAKER[0], left)
    return target


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def ms(value: float) -> str:
    return f"{value * 1000:.2f} ms"


def latency_run(root: Path, pipelines: int, samples: int, warmup: int) -> dict[str, Any]:
    """Tick ``warmup + samples`` times with ``pipelines`` releases due; keep the last ``samples``."""
    write_conf(root / "conf", pipelines, "* * * * *")
    settings = Settings.from_env(
        {
            "WORKFLOW_ROOT_PATH": str(root),
            "WORKFLOW_CORE_TIMEZONE": "UTC",
            "WORKFLOW_LOG_ENABLE_WRITE": "false",
            "WORKFLOW_APP_PROCESS_WORKER": "2",
            "WORKFLOW_APP_PIPELINE_PER_PROCESS": "100",
        }
    )
    store = open_store(settings.api_db_url)
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    clock = FakeClock(base)

    def templates(name: str, version: str | None) -> RawTemplate | None:
        return scheduler.template(name, version)

    executor = ProcessExecutor(settings=settings, templates=templates, store=store)
    scheduler = Scheduler(
        settings=settings,
        store=store,
        executor=executor,
        clock=clock,
        loader=Loader.from_settings(settings),
        owner="bench",
    )
    scheduler.start()
    first: list[float] = []
    every: list[float] = []
    tick_s: list[float] = []
    all_done: list[float] = []
    try:
        for n in range(1, warmup + samples + 1):
            boundary = base + timedelta(minutes=n)
            clock.set(boundary)
            wall = sleep_until_next_second(scheduler, boundary)
            t0 = time.perf_counter()
            report = scheduler.tick(boundary)
            tick_s.append(time.perf_counter() - t0)
            pending = set(report.dispatched)
            assert len(pending) == pipelines, (len(pending), report)
            while pending:
                executor.wait_event(10.0)
                for event in scheduler.process_events():
                    if event.kind == "finished":
                        pending.discard(event.run_id)
            all_done.append(time.time() - wall)
            stamps = []
            for run_id in report.dispatched:
                record = store.get_run(run_id)
                assert record is not None, run_id
                assert record.context is not None, run_id
                stamps.append(record.context["jobs"]["main"]["stages"]["stamp"]["outputs"]["t"])
            if n <= warmup:  # first runs of each worker thread import and build caches
                tick_s.pop()
                all_done.pop()
                continue
            first.append(min(stamps) - wall)
            every.extend(s - wall for s in stamps)
    finally:
        scheduler.stop(30)
        store.close()
    return {"first": first, "every": every, "tick": tick_s, "done": all_done}


def aps(python: str | None, mode: str, n: int, warmup: int = 0) -> dict[str, Any] | None:
    if not python or not Path(python).exists():
        return None
    out = subprocess.run(
        [python, "-c", APS_SCRIPT, mode, str(n), str(warmup)],
        capture_output=True,
        text=True,
        timeout=n + 120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def proc_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def kb(pid: int, path: str, key: str) -> int:
    for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def memory_run(root: Path, pipelines: int) -> dict[str, Any]:
    write_conf(root / "conf", pipelines, "0 0 1 1 *")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(
        WORKFLOW_ROOT_PATH=str(root),
        WORKFLOW_CORE_TIMEZONE="UTC",
        WORKFLOW_APP_PROCESS_WORKER="2",
        WORKFLOW_APP_PIPELINE_PER_PROCESS="100",
        PYTHONUNBUFFERED="1",
    )
    log = root / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ddeutil.workflow.app"], env=env, stdout=out, stderr=out
        )
        try:
            deadline = time.monotonic() + 120
            while log.read_text().count("worker process") < 2 or "scheduler running" not in (
                log.read_text()
            ):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"daemon did not get ready:\n{log.read_text()}")
                time.sleep(0.1)
            time.sleep(2.0)  # let the workers finish importing before measuring
            tree = proc_tree(proc.pid)
            return {
                "parent_rss_kb": kb(proc.pid, "status", "VmRSS:"),
                "parent_pss_kb": kb(proc.pid, "smaps_rollup", "Pss:"),
                "tree_pss_kb": sum(kb(p, "smaps_rollup", "Pss:") for p in tree),
                "processes": len(tree),
            }
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--samples", type=int, default=30, help="ticks with 1 release due (0: skip)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate the 1-due measurement of both schedulers this many times "
        "and report the median of the per-round p50s (a shared machine is noisy)",
    )
    parser.add_argument("--burst", type=int, default=1000, help="releases due in the burst ticks")
    parser.add_argument("--burst-samples", type=int, default=10, help="burst ticks (0: skip)")
    parser.add_argument("--warmup", type=int, default=2, help="first ticks not counted")
    parser.add_argument(
        "--pipelines", type=int, default=1000, help="pipelines for idle memory (0: skip)"
    )
    parser.add_argument("--aps-python", default="/tmp/venv-aps/bin/python")
    parser.add_argument("--log", choices=("none", "json"), default="none")
    args = parser.parse_args()
    if args.log == "json":
        configure_logging(fmt="json", level="INFO")

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.samples > 0:
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                one = latency_run(Path(tmp) / "one", 1, args.samples, args.warmup)
            ours.append(statistics.median(one["first"]))
            say(f"1 due, {args.samples} ticks: boundary -> first stage start")
            say(
                f"  ddeutil-workflow  p50 {ms(ours[-1])}  p99 {ms(pct(one['first'], 99))}  "
                f"(tick() returns after p50 {ms(statistics.median(one['tick']))})"
            )
            aps_lat = aps(args.aps_python, "latency", args.samples, args.warmup)
            if aps_lat is None:
                say(f"  APScheduler: {args.aps_python} not found (see the module docstring)")
                continue
            values = aps_lat["latency_s"]
            theirs.append(statistics.median(values))
            say(f"  APScheduler 3.x   p50 {ms(theirs[-1])}  p99 {ms(pct(values, 99))}")
            say(f"  ratio p50 ours / APScheduler: {ours[-1] / theirs[-1]:.2f}x")
        if args.rounds > 1 and theirs:
            mine, aps_p50 = statistics.median(ours), statistics.median(theirs)
            say(
                f"{args.rounds} rounds: median p50 ddeutil-workflow {ms(mine)}, "
                f"APScheduler {ms(aps_p50)}, ratio {mine / aps_p50:.2f}x"
            )

    if args.burst_samples > 0:
        with tempfile.TemporaryDirectory() as tmp:
            burst = latency_run(Path(tmp) / "burst", args.burst, args.burst_samples, args.warmup)
        say(f"{args.burst} due, {args.burst_samples} ticks (2 workers x 100 threads):")
        say(
            f"  boundary -> first stage start  p50 {ms(statistics.median(burst['first']))}  "
            f"p99 {ms(pct(burst['first'], 99))}"
        )
        say(
            f"  boundary -> every stage start  p50 {ms(statistics.median(burst['every']))}  "
            f"p99 {ms(pct(burst['every'], 99))}  max {ms(max(burst['every']))}"
        )
        say(
            f"  tick() duration p50 {ms(statistics.median(burst['tick']))}; "
            f"all {args.burst} finished p50 {statistics.median(burst['done']):.2f} s"
        )

    if args.pipelines > 0:
        with tempfile.TemporaryDirectory() as tmp:
            mem = memory_run(Path(tmp), args.pipelines)
        say(f"idle memory, {args.pipelines} pipelines loaded:")
        say(
            f"  ddeutil-workflow parent RSS {mem['parent_rss_kb'] / 1024:.1f} MB, "
            f"parent PSS {mem['parent_pss_kb'] / 1024:.1f} MB, parent + workers PSS "
            f"{mem['tree_pss_kb'] / 1024:.1f} MB ({mem['processes']} processes)"
        )
        aps_mem = aps(args.aps_python, "memory", args.pipelines)
        if aps_mem is not None:
            say(
                f"  APScheduler 3.x with {args.pipelines} cron jobs RSS "
                f"{aps_mem['rss_kb'] / 1024:.1f} MB"
                f" -> ratio {mem['parent_rss_kb'] / aps_mem['rss_kb']:.2f}x"
            )


if __name__ == "__main__":
    main()
