"""Benchmark: 10,000 one-empty-stage runs dispatched at once to the process executor.

Run: ``python benchmarks/bench_dispatch.py [--runs 10000] [--workers 2] [--threads 100]
[--synchronous full|normal] [--log none|json] [--log-files]``.

In a temporary root with a SQLite run store, it starts a
:class:`~ddeutil.workflow.dispatch.processes.ProcessExecutor` (``--workers`` processes x
``--threads`` threads) and reports:

* **idle memory**: PSS (``/proc/<pid>/smaps_rollup``) of this process and of every
  descendant (forkserver, resource tracker, workers) once the workers are ready,
  and the parent's RSS;
* **claim**: ``--runs`` releases claimed with ``claim_many`` (one transaction), as a
  daemon tick does before dispatch;
* **dispatch**: all requests submitted at once; time until every run reported
  ``started`` (the start handshake committed) and until every run ``finished``
  (outcome committed by the worker), measured from the first submit;
* the store is then checked: every run must be SUCCESS.

``--log json`` configures JSON logging at INFO like the daemon (the workers then
log to stdout: redirect it; the report goes to stderr). ``--log-files`` also
writes one log file per run (``WORKFLOW_LOG_ENABLE_WRITE``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO

from ddeutil.workflow.clock import SystemClock
from ddeutil.workflow.dispatch.processes import ProcessExecutor
from ddeutil.workflow.dispatch.records import RunRequest
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.logs import configure_logging
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import Claim, ReleaseKey, RunFilter, TriggerKind

CONF = """\
bench-empty:
  type: ddeutil.workflow.pipeline.Pipeline
  jobs:
    main:
      stages:
        - name: empty
"""


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rollup(pid: int, field: str) -> int:
    """One ``kB`` field of /proc/<pid>/smaps_rollup (0 when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def role(pid: int, me: int) -> str:
    """Name a process of the tree: parent, forkserver, resource tracker or worker."""
    if pid == me:
        return "parent"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return "gone"
    if "resource_tracker" in cmdline:
        return "resource-tracker"
    if "forkserver" in cmdline and ppid == me:
        return "forkserver"
    return "worker" if "forkserver" in cmdline else "other"


def cpu_report(label: str, out: TextIO) -> None:
    """CPU seconds (user + system, and the system part) used so far by each process."""
    me = os.getpid()
    tick = os.sysconf("SC_CLK_TCK")
    parts = []
    for pid in descendants(me):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user, system = int(fields[11]) / tick, int(fields[12]) / tick
        parts.append(f"{role(pid, me)} {user + system:.2f}s ({system:.2f}s sys)")
    print(f"{label}: {', '.join(parts)}", file=out)


def memory_report(label: str, out: TextIO) -> None:
    me = os.getpid()
    pids = descendants(me)
    total = sum(rollup(p, "Pss") for p in pids)
    parts = ", ".join(f"{role(p, me)} {rollup(p, 'Pss') / 1024:.1f}" for p in pids)
    print(
        f"{label}: parent RSS {rollup(me, 'Rss') / 1024:.1f} MB; PSS of {len(pids)} processes "
        f"{total / 1024:.1f} MB ({parts})",
        file=out,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--synchronous", default=None, choices=["full", "normal"])
    parser.add_argument("--log", default="none", choices=["none", "json"])
    parser.add_argument("--log-files", action="store_true")
    args = parser.parse_args()
    out = sys.stderr if args.log == "json" else sys.stdout

    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        root = Path(tmp)
        (root / "conf").mkdir()
        (root / "conf" / "bench.yml").write_text(CONF)
        url = f"sqlite:///{root / 'runs.db'}"
        if args.synchronous:  # default: the store's default (NORMAL)
            url += f"?synchronous={args.synchronous}"
        settings = Settings.from_env(
            {
                "WORKFLOW_ROOT_PATH": str(root),
                "WORKFLOW_CORE_TIMEZONE": "UTC",
                "WORKFLOW_API_DB_URL": url,
                "WORKFLOW_LOG_ENABLE_WRITE": "true" if args.log_files else "false",
            }
        )
        if args.log == "json":
            configure_logging(fmt="json", level="INFO", stream=sys.stdout)
        store = open_store(url)
        template = Loader.from_settings(settings).get("bench-empty")
        executor = ProcessExecutor(
            settings=settings,
            templates=lambda name, version: template,
            store=store,
            workers=args.workers,
            threads=args.threads,
        )
        began = time.perf_counter()
        executor.start()
        assert executor.wait_ready(60), "workers did not start"
        print(
            f"workers: {args.workers} x {args.threads} threads ready in "
            f"{time.perf_counter() - began:.2f}s",
            file=out,
        )
        memory_report("idle memory", out)

        base = datetime(2024, 1, 1, tzinfo=timezone.utc)
        claims = [
            Claim(
                release=ReleaseKey("bench-empty", "bench@UTC", base + timedelta(seconds=i)),
                run_id=f"run-{i:05d}",
                logical_date=base + timedelta(seconds=i),
            )
            for i in range(args.runs)
        ]
        began = time.perf_counter()
        assert all(store.claim_many(claims, now=SystemClock().now()))
        print(f"claim: {args.runs} releases in {time.perf_counter() - began:.2f}s", file=out)

        requests = [
            RunRequest(
                run_id=c.run_id,
                pipeline="bench-empty",
                version="v1",
                logical_date=c.logical_date,
                release=c.release,
                trigger=TriggerKind.SCHEDULE,
            )
            for c in claims
        ]
        started = finished = 0
        t_started = t_finished = 0.0
        began = time.perf_counter()
        for request in requests:
            executor.submit(request)
        t_submit = time.perf_counter() - began
        deadline = began + 600
        statuses: dict[str, int] = {}
        while finished < args.runs and time.perf_counter() < deadline:
            executor.wait_event(1.0)
            for event in executor.drain_events():
                if event.kind == "started":
                    started += 1
                    if started == args.runs:
                        t_started = time.perf_counter() - began
                else:
                    finished += 1
                    key = event.status.value if event.status else "not started"
                    statuses[key] = statuses.get(key, 0) + 1
                    if finished == args.runs:
                        t_finished = time.perf_counter() - began
        print(f"dispatch: submit() of {args.runs} requests took {t_submit:.2f}s", file=out)
        print(f"dispatch: all {started} started after {t_started:.2f}s", file=out)
        print(f"dispatch: all {finished} finished after {t_finished:.2f}s {statuses}", file=out)
        memory_report("memory after the burst", out)
        cpu_report("cpu used (user+system)", out)
        executor.shutdown(10)
        success = store.count_runs(RunFilter(status=Status.SUCCESS))
        print(f"store: {success} SUCCESS of {args.runs}", file=out)
        store.close()
        return 0 if success == args.runs and finished == args.runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
