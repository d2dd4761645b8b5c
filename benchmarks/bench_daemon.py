"""Benchmark: the real daemon on real minute boundaries, vs APScheduler 3.

Unlike ``bench_scheduler.py`` (a fake clock in this process), this measures the
product as users run it: a ``python -m ddeutil.workflow.app`` process with the
default settings (SQLite run store under ``WORKFLOW_ROOT_PATH``, 2 worker
processes, default logging to a file), waiting for real wall-clock minute
boundaries.

Run (both parts take real minutes: about 1 + ``--boundaries`` and
1 + ``--burst-boundaries`` minutes)::

    python benchmarks/bench_daemon.py [--boundaries 6] [--burst 1000]
        [--burst-boundaries 3] [--python PY] [--aps-python /tmp/venv-aps/bin/python]
        [--skip-latency] [--skip-burst] [--skip-memory] [--skip-aps] [--keep]
        [--executor local|celery] [--broker-url URL] [--celery-workers 2]
        [--celery-concurrency 100] [--background-h 10000]

The report is readable text on stdout, then one JSON line with every number;
both say which executor ran the pipeline runs.

* **Executor** (``--executor``): ``local`` (the default) runs the pipeline runs in
  the daemon's own worker processes, as above. ``celery`` sets
  ``WORKFLOW_APP_EXECUTOR=celery``, ``WORKFLOW_CELERY_BROKER_URL=--broker-url``
  (default ``amqp://guest:guest@127.0.0.1:5672//``, RabbitMQ; ``redis://...`` for
  Redis) and ``WORKFLOW_CELERY_QUEUE`` (a queue name unique to this run of the
  script) for each daemon, and next to each daemon (latency part and burst part)
  starts ``--celery-workers`` ``python -m ddeutil.workflow --log-format json worker
  --concurrency --celery-concurrency`` processes with the same environment, root
  folder and run store, each logging to ``worker-<n>.log`` beside ``daemon.log``.
  The workers start together, as a service manager would start them; the daemon
  starts once every worker has logged ``worker ready`` (bounded by
  ``--ready-timeout``). The same numbers are then measured through
  the broker: the daemon claims a run and sends it, a worker takes it and runs
  it, so latency = stamp - boundary includes the publish, the broker and the
  worker's start of the run (the store's ``started`` is written by the worker).
  The workers are stopped after the daemon (SIGTERM, then SIGKILL of their
  process group) and the queue is deleted from the broker afterwards. The memory
  part is skipped with ``celery`` (the daemon no longer holds the runs' processes).

* **Background** (``--background-h N``): the latency part's conf also holds N
  pipelines on ``H`` schedules (``H H * * *``, ``H/15 * * * *``, ...; about N/60
  releases due a minute, each a one-stage run), so the 1-due latency shows what a
  boundary costs a daemon with that many pipelines.

* **Latency, 1 due**: one pipeline on ``* * * * *`` whose first stage is a python
  stage whose first statement is ``stamp = __import__("time").time()`` (kept in the
  stage outputs). After ``--boundaries`` boundaries the daemon is stopped
  (SIGTERM) and every run is read back from ``.workflow/runs.db`` (sqlite3);
  latency = stamp - release time (the minute boundary). A boundary closer than
  ``--warmup-s`` seconds to the daemon being ready is not counted (warm-up); the
  statistics are also given without the first counted boundary (the first run
  of a worker thread pays one-off imports). The store's ``created`` (claim) and
  ``started`` times split the latency into wake-up + claim, dispatch + start
  handshake, and engine up to the stage's first line.
* **APScheduler 3.x**, on the same boundaries: a child process in the separate venv
  ``--aps-python`` runs a ``BackgroundScheduler`` with one ``CronTrigger(second=0)``
  job whose first statement reads ``time.time()``; one JSON line per firing;
  latency = stamp - the minute boundary. Set the venv up once with::

      python3 -m venv /tmp/venv-aps && /tmp/venv-aps/bin/pip install 'apscheduler<4'

  (never install APScheduler in the project's venv).
* **1,000 due**: ``--burst`` pipelines on ``* * * * *`` with the same first stage,
  for ``--burst-boundaries`` boundaries: latency of every first stage (p50, p99,
  max = when the last one starts), per boundary the max; every run must end
  SUCCESS and each pipeline must have exactly one run per boundary.
* **Memory, 1,000 pipelines loaded**: while the daemon of the burst part is ready
  and before its first boundary: parent ``VmRSS`` and the PSS
  (``/proc/<pid>/smaps_rollup``) of the parent plus all descendants; APScheduler:
  RSS of a process holding a started ``BackgroundScheduler`` with 1,000 cron jobs.

Every wait is bounded; the daemon, the Celery workers and the APScheduler child
are stopped in a ``finally`` (SIGTERM, then SIGKILL of their process group).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

READY_LINE = "scheduler ticks at every minute boundary"
WORKER_READY_LINE = "worker ready"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"

PIPELINE = """\
bench-{i:04d}:
  type: Pipeline
  on:
    - cronjob: "* * * * *"
      timezone: UTC
  jobs:
    main:
      stages:
        - name: stamp
          id: stamp
          run: |
            stamp = __import__("time").time()
"""

APS_SCRIPT = r"""
import json, sys, time
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

mode, n = sys.argv[1], int(sys.argv[2])

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

if mode == "memory":
    sched = BackgroundScheduler()
    sched.start()
    for i in range(n):
        sched.add_job(lambda: None, CronTrigger.from_crontab("* * * * *"), id=f"job-{i}")
    time.sleep(1.0)
    print(json.dumps({"rss_kb": rss_kb(), "jobs": len(sched.get_jobs())}), flush=True)
    sched.shutdown(wait=False)
else:
    def job():
        stamp = time.time()
        print(json.dumps({"stamp": stamp}), flush=True)
    sched = BackgroundScheduler()
    sched.add_job(job, CronTrigger(second=0), misfire_grace_time=30)
    sched.start()
    print(json.dumps({"ready": time.time()}), flush=True)
    while True:
        time.sleep(3600)
"""


def say(text: str = "") -> None:
    print(text, flush=True)


def write_conf(conf: Path, count: int) -> None:
    conf.mkdir(parents=True, exist_ok=True)
    per_file = 100
    for start in range(0, count, per_file):
        text = "\n".join(PIPELINE.format(i=i) for i in range(start, min(start + per_file, count)))
        (conf / f"bench-{start:04d}.yml").write_text(text, encoding="utf-8")


HASHED = """\
hashed-{i:05d}:
  type: Pipeline
  on:
    - cronjob: "{cron}"
      timezone: UTC
  jobs:
    main:
      stages:
        - name: nothing
"""
HASHED_SHAPES = ("H H * * *", "H/15 * * * *", "H H(1-4) * * *", "H * * * *", "H H * * 1-5")


def write_hashed(conf: Path, count: int) -> None:
    """``count`` more pipelines on ``H`` schedules (seeded by their names), 500 per file."""
    conf.mkdir(parents=True, exist_ok=True)
    for start in range(0, count, 500):
        text = "\n".join(
            HASHED.format(i=i, cron=HASHED_SHAPES[i % len(HASHED_SHAPES)])
            for i in range(start, min(start + 500, count))
        )
        (conf / f"hashed-{start:05d}.yml").write_text(text, encoding="utf-8")


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (with fewer than 100 values, p99 is the max)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 3),
        "p99_ms": round(pct(values, 99) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3),
        "min_ms": round(min(values) * 1000, 3),
    }


def fmt(stats: dict[str, Any]) -> str:
    if not stats.get("n"):
        return "n 0"
    p99 = "p99 (= max, n < 100)" if stats["n"] < 100 else "p99"
    return (
        f"n {stats['n']}  p50 {stats['p50_ms']:.2f} ms  {p99} {stats['p99_ms']:.2f} ms  "
        f"max {stats['max_ms']:.2f} ms  (min {stats['min_ms']:.2f} ms)"
    )


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
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def stop(proc: subprocess.Popen[bytes] | None, name: str, timeout: float) -> None:
    """SIGTERM ``proc``, wait at most ``timeout`` s, then SIGKILL its process group."""
    if proc is None or proc.poll() is not None:
        return
    tree = proc_tree(proc.pid)
    with contextlib.suppress(OSError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        say(f"  ! {name} did not stop within {timeout:g} s after SIGTERM: SIGKILL")
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in tree:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(10)


def daemon_env(root: Path, celery: dict[str, str]) -> dict[str, str]:
    """The environment of the daemon and its Celery workers (``celery``: extra variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(WORKFLOW_ROOT_PATH=str(root), PYTHONUNBUFFERED="1", **celery)
    return env


def celery_env(args: argparse.Namespace) -> dict[str, str]:
    """The three variables of the Celery executor ({} with the local executor)."""
    if args.executor != "celery":
        return {}
    return {
        "WORKFLOW_APP_EXECUTOR": "celery",
        "WORKFLOW_CELERY_BROKER_URL": args.broker_url,
        "WORKFLOW_CELERY_QUEUE": args.queue,
    }


def start_daemon(
    python: str, root: Path, log: Path, celery: dict[str, str]
) -> subprocess.Popen[bytes]:
    env = daemon_env(root, celery)
    with log.open("wb") as out:
        return subprocess.Popen(
            [python, "-m", "ddeutil.workflow.app"],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def start_workers(
    args: argparse.Namespace,
    root: Path,
    celery: dict[str, str],
    workers: list[tuple[subprocess.Popen[bytes], Path]],
) -> float:
    """Start ``--celery-workers`` ``workflow worker`` processes together.

    Each is appended to ``workers`` (for the caller's ``finally``); returns the
    seconds until every one logged ``worker ready`` (bounded by ``--ready-timeout``).
    """
    started = time.monotonic()
    deadline = started + args.ready_timeout
    env = daemon_env(root, celery)
    for n in range(args.celery_workers):
        log = root / f"worker-{n}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    args.python,
                    "-m",
                    "ddeutil.workflow",
                    "--log-format",
                    "json",
                    "worker",
                    "--concurrency",
                    str(args.celery_concurrency),
                ],
                env=env,
                cwd=root,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        workers.append((proc, log))
    for n, (proc, log) in enumerate(workers):
        while WORKER_READY_LINE not in log.read_text(errors="replace"):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"worker {n} exited ({proc.returncode}) before ready:\n{tail(log)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"worker {n} not ready after {args.ready_timeout:g} s:\n{tail(log)}"
                )
            time.sleep(0.05)
    return time.monotonic() - started


def stop_workers(workers: list[tuple[subprocess.Popen[bytes], Path]], timeout: float) -> None:
    """SIGTERM every worker at once, then wait for each as :func:`stop` does."""
    for proc, _ in workers:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for n, (proc, _) in enumerate(workers):
        stop(proc, f"worker {n}", max(1.0, deadline - time.monotonic()))


def delete_queue(url: str, name: str) -> None:
    """Delete the run's queue (and what is left in it) from the broker.

    On Redis, kombu's ``queue_delete`` only unbinds the bindings this connection
    declared (none), so the binding sets of the queue's exchange (named like the
    queue) are deleted too.
    """
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=5) as conn:
            channel = conn.default_channel
            channel.queue_delete(name)
            if conn.transport.driver_type == "redis":
                prefixes = ("keyprefix_queue", "keyprefix_binding_permanent")
                keys = [getattr(channel, p) % name for p in prefixes if hasattr(channel, p)]
                channel.client.delete(*keys)
    except Exception as exc:  # reported; the numbers are still good
        say(f"  ! could not delete queue {name} from the broker: {exc!r}")


def report_worker_logs(
    workers: list[tuple[subprocess.Popen[bytes], Path]],
) -> list[dict[str, Any]]:
    out = []
    for n, (_, log) in enumerate(workers):
        info = log_problems(log)
        say(f"  worker {n} log lines by level: {info['levels']}")
        for message, count in info["problems"]:
            say(f"    {count} x {message}")
        out.append(info)
    return out


def wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while READY_LINE not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited ({proc.returncode}) before ready:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"daemon not ready after {timeout:g} s:\n{tail(log)}")
        time.sleep(0.05)
    return time.time()


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start_aps(python: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [python, "-c", APS_SCRIPT, "latency", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def aps_lines(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def wait_aps_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any("ready" in item for item in aps_lines(log)):
        if proc.poll() is not None:
            raise RuntimeError(f"APScheduler child exited ({proc.returncode}):\n{tail(log)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"APScheduler child not ready after {timeout:g} s:\n{tail(log)}")
        time.sleep(0.05)


def aps_memory(python: str, jobs: int) -> int:
    out = subprocess.run(
        [python, "-c", APS_SCRIPT, "memory", str(jobs)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rss: int = json.loads(out.stdout.strip().splitlines()[-1])["rss_kb"]
    return rss


def avoid_close_boundary(lead: float) -> None:
    """Sleep past the next boundary when it is less than ``lead`` seconds away."""
    left = 60 - time.time() % 60
    if left < lead:
        say(f"  (next boundary in {left:.1f} s: starting after it)")
        time.sleep(left + 0.5)


def boundaries_after(ready: float, count: int, warmup_s: float) -> tuple[list[float], bool]:
    first = math.floor(ready / 60) * 60 + 60
    skipped = first - ready < warmup_s
    if skipped:
        first += 60
    return [first + 60 * i for i in range(count)], skipped


def sleep_until(target: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    while (left := target - time.time()) > 0:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited ({proc.returncode}):\n{tail(log)}")
        time.sleep(min(left, 1.0))


def read_runs(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT run_id, pipeline, status, release_at, created, started, ended, context "
            "FROM workflow_runs"
        ).fetchall()
    finally:
        conn.close()

    def ts(text: str | None) -> float | None:
        return None if text is None else datetime.fromisoformat(text).timestamp()

    runs = []
    for run_id, pipeline, status, release_at, created, started, ended, context in rows:
        stamp = None
        if context:
            try:
                stages = json.loads(context)["jobs"]["main"]["stages"]
                stamp = stages["stamp"]["outputs"]["stamp"]
            except (KeyError, TypeError, ValueError):
                stamp = None
        runs.append(
            {
                "run_id": run_id,
                "pipeline": pipeline,
                "status": status,
                "release": ts(release_at),
                "created": ts(created),
                "started": ts(started),
                "ended": ts(ended),
                "stamp": stamp,
            }
        )
    return runs


def wait_runs_done(
    db: Path, boundaries: list[float], expected: int, timeout: float
) -> list[dict[str, Any]]:
    """Poll the store until ``expected`` runs of ``boundaries`` have ended."""
    deadline = time.monotonic() + timeout
    wanted = set(boundaries)
    while True:
        runs = [
            r
            for r in read_runs(db)
            if r["release"] in wanted and r["pipeline"].startswith("bench-")
        ]
        done = [r for r in runs if r["status"] not in ("PENDING", "RUNNING")]
        if len(done) >= expected:
            return runs
        if time.monotonic() > deadline:
            say(f"  ! only {len(done)} of {expected} runs ended after {timeout:g} s")
            return runs
        time.sleep(0.5)


def log_problems(log: Path) -> dict[str, Any]:
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            levels["NON-JSON"] += 1
            messages[line[:160]] += 1
            continue
        level = item.get("level", "?")
        levels[level] += 1
        if level in ("WARNING", "ERROR", "CRITICAL"):
            messages[f"{level} {str(item.get('message'))[:160]}"] += 1
    return {"levels": dict(levels), "problems": messages.most_common(8)}


def report_log(log: Path) -> dict[str, Any]:
    info = log_problems(log)
    say(f"  daemon log lines by level: {info['levels']}")
    for message, count in info["problems"]:
        say(f"    {count} x {message}")
    return info


def analyse(runs: list[dict[str, Any]], boundaries: list[float], pipelines: int) -> dict[str, Any]:
    """Latencies, and the exactly-once check per pipeline per boundary."""
    counts = Counter((r["pipeline"], r["release"]) for r in runs)
    names = [f"bench-{i:04d}" for i in range(pipelines)]
    missing = [(n, b) for n in names for b in boundaries if counts[(n, b)] == 0]
    doubled = [(key, c) for key, c in counts.items() if c > 1]
    not_success = Counter(r["status"] for r in runs if r["status"] != "SUCCESS")
    every: list[float] = []
    per_boundary = []
    parts: dict[str, list[float]] = {"created": [], "started": []}
    for b in boundaries:
        here = [r["stamp"] - b for r in runs if r["release"] == b and r["stamp"] is not None]
        every.extend(here)
        per_boundary.append(
            {
                "boundary": datetime.fromtimestamp(b, timezone.utc).strftime("%H:%M"),
                **summary(here),
            }
        )
    for r in runs:
        for key, values in parts.items():
            if r[key] is not None and r["release"] is not None:
                values.append(r[key] - r["release"])
    engine = [r["stamp"] - r["started"] for r in runs if r["stamp"] and r["started"]]
    return {
        "all": summary(every),
        "stamp_minus_started": summary(engine),
        "per_boundary": per_boundary,
        "created_minus_release": summary(parts["created"]),
        "started_minus_release": summary(parts["started"]),
        "runs": len(runs),
        "missing": len(missing),
        "missing_examples": missing[:5],
        "doubled": len(doubled),
        "not_success": dict(not_success),
        "no_stamp": sum(1 for r in runs if r["stamp"] is None),
    }


def report_checks(result: dict[str, Any], expected: int) -> None:
    say(
        f"  runs {result['runs']} (expected {expected}); missing {result['missing']}; "
        f"doubled {result['doubled']}; not SUCCESS {result['not_success'] or 0}; "
        f"without stamp {result['no_stamp']}"
    )
    if result["missing"]:
        say(f"    missing e.g. {result['missing_examples']}")
    say(f"  store: claimed (created) - release {fmt(result['created_minus_release'])}")
    say(f"  store: started - release  {fmt(result['started_minus_release'])}")
    say(f"  stamp - store started     {fmt(result['stamp_minus_started'])}")


def load() -> str:
    """The 1, 5 and 15 min load averages (a shared machine skews every number)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def compare(
    runs: list[dict[str, Any]], boundaries: list[float], aps_log: Path | None
) -> dict[str, Any]:
    """Latency of ours and APScheduler's on the same boundaries, and their ratio."""
    result: dict[str, Any] = {}
    ours = {r["release"]: r["stamp"] - r["release"] for r in runs if r["stamp"] is not None}
    theirs: dict[float, float] = {}
    if aps_log is not None:
        for item in aps_lines(aps_log):
            if "stamp" in item and (b := math.floor(item["stamp"] / 60) * 60) in boundaries:
                theirs.setdefault(b, item["stamp"] - b)
    # The first run of each worker thread pays one-off imports and caches: also
    # report without the first counted boundary.
    for label, kept in (("all", boundaries), ("but_first", boundaries[1:])):
        if not kept:
            continue
        mine = summary([ours[b] for b in kept if b in ours])
        name = "every boundary" if label == "all" else "without the first boundary"
        say(f"  {name}:")
        say(f"    ddeutil-workflow  {fmt(mine)}")
        result[f"ours_{label}"] = mine
        if aps_log is None:
            continue
        aps_stats = summary([theirs[b] for b in kept if b in theirs])
        result[f"apscheduler_{label}"] = aps_stats
        say(f"    APScheduler 3.x   {fmt(aps_stats)}")
        if aps_stats["n"] and mine["n"]:
            ratio = {
                "p50": round(mine["p50_ms"] / aps_stats["p50_ms"], 2),
                "p99": round(mine["p99_ms"] / aps_stats["p99_ms"], 2),
            }
            result[f"ratio_ours_over_aps_{label}"] = ratio
            say(f"    ratio ours / APScheduler: p50 {ratio['p50']:.2f}x, p99 {ratio['p99']:.2f}x")
    return result


def latency_part(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    root = tmp / "one"
    write_conf(root / "conf", 1)
    if args.background_h:
        write_hashed(root / "conf", args.background_h)
    log, aps_log = root / "daemon.log", root / "aps.log"
    use_aps = not args.skip_aps and Path(args.aps_python).exists()
    if not args.skip_aps and not use_aps:
        say(f"  APScheduler: {args.aps_python} not found (see the module docstring)")
    daemon = aps = None
    workers: list[tuple[subprocess.Popen[bytes], Path]] = []
    celery = celery_env(args)
    say(
        f"== latency, 1 due, {args.boundaries} boundaries, executor {args.executor}"
        + (" (daemon + APScheduler together)" if use_aps else "")
    )
    avoid_close_boundary(args.warmup_s + 5)
    try:
        if use_aps:
            aps = start_aps(args.aps_python, aps_log)
        if celery:
            took = start_workers(args, root, celery, workers)
            say(f"  {len(workers)} celery workers ready after {took:.2f} s")
            avoid_close_boundary(args.warmup_s + 5)
        daemon = start_daemon(args.python, root, log, celery)
        ready = wait_ready(daemon, log, args.ready_timeout)
        if aps is not None:
            wait_aps_ready(aps, aps_log, 60)
        boundaries, skipped = boundaries_after(ready, args.boundaries, args.warmup_s)
        if skipped:
            say(f"  first boundary was < {args.warmup_s:g} s after ready: not counted")
        say(
            "  measuring boundaries "
            + ", ".join(
                datetime.fromtimestamp(b, timezone.utc).strftime("%H:%M") for b in boundaries
            )
        )
        sleep_until(boundaries[-1] + 1.0, daemon, log)
        load_after = load()
        runs = wait_runs_done(root / ".workflow" / "runs.db", boundaries, len(boundaries), 60)
    finally:
        stop(daemon, "daemon", args.stop_timeout)
        stop_workers(workers, args.stop_timeout)
        stop(aps, "APScheduler child", 5)
        if celery:
            delete_queue(args.broker_url, args.queue)
    result = analyse(runs, boundaries, 1)
    result["warmup_skipped"] = skipped
    result["load_after"] = load_after
    say(f"  load average (1, 5, 15 min) after the last boundary: {load_after}")
    say("  ddeutil-workflow per boundary:")
    for item in result["per_boundary"]:
        say(f"    {item['boundary']}  {fmt(item)}")
    report_checks(result, len(boundaries))
    result["daemon_log"] = report_log(log)
    if workers:
        result["worker_logs"] = report_worker_logs(workers)
    result.update(compare(runs, boundaries, aps_log if aps is not None else None))
    if args.keep:
        say(f"  kept: {root}")
    return result


def burst_part(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    root = tmp / "burst"
    write_conf(root / "conf", args.burst)
    log = root / "daemon.log"
    result: dict[str, Any] = {}
    memory = not args.skip_memory and args.executor == "local"
    if memory and not args.skip_aps and Path(args.aps_python).exists():
        result["aps_rss_kb"] = aps_memory(args.aps_python, args.burst)
    say(f"== {args.burst} due, {args.burst_boundaries} boundaries, executor {args.executor}")
    if not args.skip_memory and not memory:
        say("  memory part skipped with the celery executor")
    avoid_close_boundary(args.warmup_s + 15)
    daemon = None
    workers: list[tuple[subprocess.Popen[bytes], Path]] = []
    celery = celery_env(args)
    boundaries: list[float] = []
    try:
        if celery:
            took = start_workers(args, root, celery, workers)
            say(f"  {len(workers)} celery workers ready after {took:.2f} s")
            result["workers_ready_s"] = round(took, 3)
            avoid_close_boundary(args.warmup_s + 15)
        daemon = start_daemon(args.python, root, log, celery)
        started = time.time()
        ready = wait_ready(daemon, log, args.ready_timeout)
        say(f"  daemon ready {ready - started:.2f} s after start")
        result["ready_s"] = round(ready - started, 3)
        boundaries, skipped = boundaries_after(ready, args.burst_boundaries, args.warmup_s)
        result["warmup_skipped"] = skipped
        if skipped:
            say(f"  first boundary was < {args.warmup_s:g} s after ready: not counted")
        if memory:
            settle = min(2.0, max(0.0, boundaries[0] - time.time() - 1.0))
            time.sleep(settle)
            tree = proc_tree(daemon.pid)
            result["memory"] = {
                "parent_rss_kb": kb(daemon.pid, "status", "VmRSS:"),
                "parent_pss_kb": kb(daemon.pid, "smaps_rollup", "Pss:"),
                "tree_pss_kb": sum(kb(p, "smaps_rollup", "Pss:") for p in tree),
                "processes": len(tree),
                "seconds_before_boundary": round(boundaries[0] - time.time(), 1),
            }
        if args.burst_boundaries > 0:
            say(
                "  measuring boundaries "
                + ", ".join(
                    datetime.fromtimestamp(b, timezone.utc).strftime("%H:%M") for b in boundaries
                )
            )
            sleep_until(boundaries[-1] + 1.0, daemon, log)
            result["load_after"] = load()
            say(f"  load average (1, 5, 15 min) after the last boundary: {result['load_after']}")
            runs = wait_runs_done(
                root / ".workflow" / "runs.db", boundaries, args.burst * len(boundaries), 120
            )
    finally:
        stop(daemon, "daemon", args.stop_timeout)
        stop_workers(workers, args.stop_timeout)
        if celery:
            delete_queue(args.broker_url, args.queue)
    if "memory" in result:
        mem = result["memory"]
        say(f"  memory, {args.burst} pipelines loaded ({mem['processes']} processes):")
        say(
            f"    parent RSS {mem['parent_rss_kb'] / 1024:.1f} MB, parent PSS "
            f"{mem['parent_pss_kb'] / 1024:.1f} MB, parent + descendants PSS "
            f"{mem['tree_pss_kb'] / 1024:.1f} MB"
        )
        if "aps_rss_kb" in result:
            result["rss_ratio_ours_over_aps"] = round(
                mem["parent_rss_kb"] / result["aps_rss_kb"], 2
            )
            say(
                f"    APScheduler 3.x, {args.burst} cron jobs: RSS "
                f"{result['aps_rss_kb'] / 1024:.1f} MB -> ratio parent RSS ours / APScheduler "
                f"{result['rss_ratio_ours_over_aps']:.2f}x"
            )
    if args.burst_boundaries > 0:
        lat = analyse(runs, boundaries, args.burst)
        result.update(lat)
        say(f"  every first stage  {fmt(lat['all'])}")
        for item in lat["per_boundary"]:
            say(
                f"    {item['boundary']}  max {item.get('max_ms', float('nan')):.1f} ms  "
                f"(p50 {item.get('p50_ms', float('nan')):.1f} ms, n {item['n']})"
            )
        report_checks(lat, args.burst * len(boundaries))
    result["daemon_log"] = report_log(log)
    if workers:
        result["worker_logs"] = report_worker_logs(workers)
    if args.keep:
        say(f"  kept: {root}")
    return result


def broker_label(url: str) -> str:
    """The broker URL without its password."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter of the daemon")
    parser.add_argument("--aps-python", default="/tmp/venv-aps/bin/python")
    parser.add_argument("--boundaries", type=int, default=6, help="1-due boundaries (0: skip)")
    parser.add_argument("--burst", type=int, default=1000, help="pipelines of the burst part")
    parser.add_argument(
        "--burst-boundaries", type=int, default=3, help="burst boundaries (0: latency skipped)"
    )
    parser.add_argument(
        "--background-h",
        type=int,
        default=0,
        help="latency part: this many more pipelines on H schedules in the same conf",
    )
    parser.add_argument("--skip-latency", action="store_true", help="skip the 1-due part")
    parser.add_argument("--skip-burst", action="store_true", help="skip the burst part")
    parser.add_argument("--skip-memory", action="store_true", help="skip the memory part")
    parser.add_argument("--skip-aps", action="store_true", help="skip APScheduler")
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=5.0,
        help="a first boundary closer than this to the daemon being ready is not counted",
    )
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--stop-timeout", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary root folders")
    parser.add_argument(
        "--executor",
        choices=("local", "celery"),
        default="local",
        help="where the runs execute: the daemon's processes, or workflow worker processes",
    )
    parser.add_argument(
        "--broker-url", default=DEFAULT_BROKER, help="Celery broker (amqp://... or redis://...)"
    )
    parser.add_argument(
        "--celery-workers", type=int, default=2, help="workflow worker processes per daemon"
    )
    parser.add_argument(
        "--celery-concurrency", type=int, default=100, help="--concurrency of each worker"
    )
    args = parser.parse_args()
    if args.celery_workers < 1 or args.celery_concurrency < 1:
        parser.error("--celery-workers and --celery-concurrency must be at least 1")
    args.queue = f"bench-daemon-{uuid.uuid4().hex[:10]}"

    report: dict[str, Any] = {"python": args.python, "executor": args.executor}
    if args.executor == "celery":
        report["celery"] = {
            "broker": broker_label(args.broker_url),
            "queue": args.queue,
            "workers": args.celery_workers,
            "concurrency": args.celery_concurrency,
        }
        say(
            f"executor celery: broker {broker_label(args.broker_url)}, queue {args.queue}, "
            f"{args.celery_workers} workers x concurrency {args.celery_concurrency}"
        )
    else:
        say("executor local (the daemon's worker processes)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    try:
        if not args.skip_latency and args.boundaries > 0:
            report["latency"] = latency_part(args, tmp)
        if (
            not args.skip_burst
            and args.burst > 0
            and (args.burst_boundaries > 0 or not args.skip_memory)
        ):
            report["burst"] = burst_part(args, tmp)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, default=str), flush=True)


if __name__ == "__main__":
    main()
