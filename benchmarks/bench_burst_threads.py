"""Benchmark: one worker's side of a boundary burst, in this process, in seconds.

    python benchmarks/bench_burst_threads.py [--runs 500] [--threads 100]
        [--log info|warning|none] [--log-files] [--repeat 3]

One :class:`~ddeutil.workflow.dispatch.threads.ThreadExecutor` (``--threads``
threads, as in a daemon worker) over a SQLite run store gets ``--runs`` claimed
requests held for one release instant 2 s ahead, as a worker gets half of a
1,000-due boundary. It reports, per repeat, when the last run passed its start
handshake (``started`` event) after the release instant, the median, and the
CPU time and context switches of this process from just before the release
until every run finished. Console logging is JSON to a file at ``--log`` level
(the daemon's default is INFO); ``--log-files`` also writes one file per run
(the daemon's default). Much faster feedback than ``bench_daemon.py``, which
waits for real minute boundaries.
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ddeutil.workflow.clock import SystemClock
from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
from ddeutil.workflow.dispatch.threads import ThreadExecutor
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.logs import configure_logging
from ddeutil.workflow.runs import ReleaseKey
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import Claim, TriggerKind

CONF = """\
bench-empty:
  type: Pipeline
  jobs:
    main:
      stages:
        - name: nothing
"""


def burst(root: Path, runs: int, threads: int, log_files: bool) -> dict[str, float]:
    url = f"sqlite:///{root / 'runs.db'}"
    settings = Settings.from_env(
        {
            "WORKFLOW_ROOT_PATH": str(root),
            "WORKFLOW_CORE_TIMEZONE": "UTC",
            "WORKFLOW_API_DB_URL": url,
            "WORKFLOW_LOG_ENABLE_WRITE": "true" if log_files else "false",
        }
    )
    store = open_store(url)
    template = Loader.from_settings(settings).get("bench-empty")
    started: list[float] = []
    finished = threading.Event()
    lock = threading.Lock()
    ended = [0]

    def on_event(event: RunEvent) -> None:
        with lock:
            if event.kind == "started":
                started.append(time.time())
                return
            ended[0] += 1
            if ended[0] == runs:
                finished.set()

    executor = ThreadExecutor(
        store=store,
        settings=settings,
        templates=lambda name, version: template,
        size=threads,
        on_event=on_event,
    )
    at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=3)
    claims = [
        Claim(
            release=ReleaseKey("bench-empty", f"s{i}@UTC", at),
            run_id=f"run-{i:05d}",
            logical_date=at,
        )
        for i in range(runs)
    ]
    store.claim_many(claims, now=SystemClock().now())
    for claim in claims:
        executor.submit(
            RunRequest(
                run_id=claim.run_id,
                pipeline="bench-empty",
                version="v1",
                logical_date=claim.logical_date,
                release=claim.release,
                trigger=TriggerKind.SCHEDULE,
            )
        )
    time.sleep(max(at.timestamp() - 0.2 - time.time(), 0.0))
    before = resource.getrusage(resource.RUSAGE_SELF)
    done = finished.wait(120)
    after = resource.getrusage(resource.RUSAGE_SELF)
    executor.shutdown(10)
    store.close()
    if not done or len(started) != runs:
        raise SystemExit(f"only {len(started)} of {runs} runs started")
    release = at.timestamp()
    late = sorted(stamp - release for stamp in started)
    return {
        "last_ms": late[-1] * 1000,
        "p50_ms": statistics.median(late) * 1000,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "switches": float(
            (after.ru_nvcsw - before.ru_nvcsw) + (after.ru_nivcsw - before.ru_nivcsw)
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--log", default="info", choices=["info", "warning", "none"])
    parser.add_argument("--log-files", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        console = None
        if args.log != "none":
            console = (Path(tmp) / "console.log").open("w", encoding="utf-8")
            configure_logging(fmt="json", level=args.log.upper(), stream=console)
        results = []
        for n in range(args.repeat):
            root = Path(tmp) / f"r{n}"
            (root / "conf").mkdir(parents=True)
            (root / "conf" / "bench.yml").write_text(CONF, encoding="utf-8")
            result = burst(root, args.runs, args.threads, args.log_files)
            results.append(result)
            print(
                f"{args.runs} runs on {args.threads} threads: last start "
                f"{result['last_ms']:.0f} ms, p50 {result['p50_ms']:.0f} ms after the release; "
                f"cpu {result['cpu_s']:.2f} s; context switches {result['switches']:.0f}"
            )
        last = statistics.median(r["last_ms"] for r in results)
        print(f"median of {args.repeat}: last start {last:.0f} ms")
        if console is not None:
            logging.shutdown()
            console.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
