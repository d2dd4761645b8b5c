"""Benchmark: 10,000 one-stage runs due at once, through Celery and through the local executor.

Run: ``python benchmarks/bench_celery.py [--runs 10000] [--executor local|celery|all]
[--workers 2] [--concurrency 100] [--amqp-url URL] [--redis-url URL] [--store-url URL]
[--log json|none]``.

``--executor all`` (the default) runs the same burst three times, each in a fresh
temporary root with a fresh run store and, for Celery, a fresh queue of its own
(deleted from the broker afterwards):

* **local**: a :class:`~ddeutil.workflow.dispatch.processes.ProcessExecutor` of
  ``--workers`` processes x ``--concurrency`` threads, as ``bench_dispatch.py``;
* **celery / rabbitmq**: a :class:`~ddeutil.workflow.dispatch.celery_executor.CeleryExecutor`
  on ``--amqp-url`` (default ``amqp://guest:guest@127.0.0.1:5672//``) and
  ``--workers`` ``workflow worker --concurrency N`` processes on this machine,
  started (and ready: they logged "worker ready") before the first submit;
* **celery / redis**: the same on ``--redis-url``; by default a private
  ``redis-server`` on a free port (``--save "" --appendonly no``), stopped after.

The pipeline has one python stage that sets an output to ``time.time()``: the
moment its first (only) stage began, read from each run's stored context once the
burst is over. ``--runs`` releases are claimed at once (``claim_many``, release
instants in the past, trigger SCHEDULE), then every request is submitted in a loop
(the submit time of each run is taken just before its ``submit()``), then the
benchmark drains the executor's ``finished`` events until every run ended (at
most 10 minutes). Reported per executor:

* **submit**: the time the ``submit()`` loop took;
* **all started** / **all finished**: the latest ``started`` (start handshake) /
  ``ended`` of the run records, minus the first submit;
* **runs/s**: runs / all finished;
* **overhead**: per run, the first stage's begin minus that run's submit time:
  p50, p99 and max;
* **ratio**: all finished / the local executor's (target for Celery: at most 2x).

Logging: ``workflow worker`` always logs JSON lines at INFO (a few lines per run;
here to a file per worker in the temporary root). With ``--log json`` (the
default) the local executor's workers log the same way, as under the daemon (to
a temporary file: this process's stdout is redirected there while the report
goes to the original stdout), so both sides pay for their logs; ``--log none``
turns the local executor's logging off (as ``bench_dispatch.py`` by default).

Every run must end SUCCESS (the counts by status are printed otherwise). The run
store is a SQLite file in the temporary root unless ``--store-url`` gives a
``postgresql://`` URL (each executor then uses a fresh schema, dropped after).
Numbers are wall-clock on a shared machine: brokers, workers and this process
compete for the same cores.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol, TextIO

from ddeutil.workflow.clock import SystemClock
from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
from ddeutil.workflow.loader import Loader, RawTemplate, template_version
from ddeutil.workflow.logs import configure_logging
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import Claim, ReleaseKey, RunFilter, RunStore, TriggerKind

PIPELINE = "bench-celery"
STAGE = "mark"
CONF = f"""\
{PIPELINE}:
  type: ddeutil.workflow.pipeline.Pipeline
  jobs:
    main:
      stages:
        - name: mark
          id: {STAGE}
          run: |
            import time
            began = time.time()
"""
WAIT_RUNS = 600.0
"""Longest wait for a burst to finish (seconds)."""
WAIT_WORKER = 60.0
"""Longest wait for a worker to be ready, or to stop."""


class Executor(Protocol):
    def submit(self, request: RunRequest) -> None: ...
    def wait_event(self, timeout: float) -> bool: ...
    def drain_events(self) -> list[RunEvent]: ...
    def shutdown(self, timeout: float) -> None: ...


@dataclass
class Result:
    executor: str
    broker: str
    runs: int
    submit: float = 0.0
    started: float = float("nan")
    finished: float = float("nan")
    overheads: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.statuses.get("SUCCESS", 0) == self.runs and not self.notes

    def overhead_ms(self, q: float) -> float:
        if not self.overheads:
            return float("nan")
        ordered = sorted(self.overheads)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- the world of one executor run ------------------------------------------------------


class World:
    """A temporary root: conf folder, run store, settings."""

    def __init__(self, root: Path, store_url: str | None, env: dict[str, str]) -> None:
        self.root = root
        (root / "conf").mkdir()
        (root / "conf" / "bench.yml").write_text(CONF)
        self._schema: str | None = None
        self._pg_base = store_url
        if store_url and store_url.startswith("postgresql"):
            self._schema = f"wf_bench_celery_{secrets.token_hex(6)}"
            sep = "&" if "?" in store_url else "?"
            self.store_url = f"{store_url}{sep}schema={self._schema}"
        elif store_url:
            self.store_url = store_url
        else:
            self.store_url = f"sqlite:///{root / 'runs.db'}"
        self.env = {
            "WORKFLOW_ROOT_PATH": str(root),
            "WORKFLOW_CORE_TIMEZONE": "UTC",
            "WORKFLOW_API_DB_URL": self.store_url,
            "WORKFLOW_LOG_ENABLE_WRITE": "false",
            **env,
        }
        self.settings = Settings.from_env(self.env)
        self.store: RunStore = open_store(self.store_url)
        self.template: RawTemplate = Loader.from_settings(self.settings).get(PIPELINE)
        self.version = template_version(self.template)

    def templates(self, name: str, version: str | None) -> RawTemplate | None:
        return self.template if version in (None, self.version) else None

    def close(self) -> None:
        self.store.close()
        if self._schema and self._pg_base:
            import psycopg

            with psycopg.connect(self._pg_base, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {self._schema} CASCADE")


def claim(world: World, runs: int) -> list[RunRequest]:
    """Claim ``runs`` releases due in the past (one transaction); their requests."""
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)
    claims = [
        Claim(
            release=ReleaseKey(PIPELINE, "bench@UTC", base + timedelta(seconds=i)),
            run_id=f"run-{i:05d}",
            logical_date=base + timedelta(seconds=i),
        )
        for i in range(runs)
    ]
    assert all(world.store.claim_many(claims, now=SystemClock().now())), "claims refused"
    return [
        RunRequest(
            run_id=c.run_id,
            pipeline=PIPELINE,
            version=world.version,
            logical_date=c.logical_date,
            release=c.release,
            trigger=TriggerKind.SCHEDULE,
        )
        for c in claims
    ]


def burst(world: World, executor: Executor, result: Result, out: TextIO) -> None:
    """Claim, submit every request, wait for every finished event; fill ``result``."""
    began = time.perf_counter()
    requests = claim(world, result.runs)
    print(f"  claim: {result.runs} releases in {time.perf_counter() - began:.2f}s", file=out)
    submitted: dict[str, float] = {}
    t0 = time.perf_counter()
    for request in requests:
        submitted[request.run_id] = time.time()
        executor.submit(request)
    result.submit = time.perf_counter() - t0
    first = min(submitted.values())
    print(f"  submit: {result.runs} requests in {result.submit:.2f}s", file=out)

    finished: set[str] = set()
    deadline = time.monotonic() + WAIT_RUNS
    next_report = time.monotonic() + 10
    while len(finished) < result.runs and time.monotonic() < deadline:
        executor.wait_event(1.0)
        finished.update(e.run_id for e in executor.drain_events() if e.kind == "finished")
        if time.monotonic() >= next_report:
            print(f"  ... {len(finished)} finished", file=out)
            next_report += 10
    waited = time.perf_counter() - t0
    if len(finished) < result.runs:
        result.notes.append(
            f"only {len(finished)} of {result.runs} finished events after {WAIT_RUNS:g}s"
        )
    print(f"  events: {len(finished)} finished after {waited:.2f}s", file=out)

    began = time.perf_counter()
    records = world.store.list_runs(RunFilter(pipeline=PIPELINE), limit=result.runs + 1)
    result.statuses = dict(Counter(r.status.value for r in records))
    starts = [r.started.timestamp() for r in records if r.started is not None]
    ends = [r.ended.timestamp() for r in records if r.ended is not None]
    if len(starts) == result.runs:
        result.started = max(starts) - first
    if len(ends) == result.runs:
        result.finished = max(ends) - first
    for record in records:
        mark = stage_began(record.context)
        if mark is not None and record.run_id in submitted:
            result.overheads.append(mark - submitted[record.run_id])
    if len(result.overheads) != result.runs:
        result.notes.append(f"first-stage time found in {len(result.overheads)} run(s) only")
    print(
        f"  read back {len(records)} runs in {time.perf_counter() - began:.2f}s: {result.statuses}",
        file=out,
    )


def stage_began(context: Any) -> float | None:
    """The stage's ``began`` output in a run's stored context."""
    try:
        value = context["jobs"]["main"]["stages"][STAGE]["outputs"]["began"]
    except (KeyError, TypeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


# -- local ------------------------------------------------------------------------------


def run_local(args: argparse.Namespace, out: TextIO) -> Result:
    from ddeutil.workflow.dispatch.processes import ProcessExecutor

    result = Result("local", "-", args.runs)
    with tempfile.TemporaryDirectory(prefix="bench-celery-local-") as tmp:
        world = World(Path(tmp), args.store_url, {})
        try:
            executor = ProcessExecutor(
                settings=world.settings,
                templates=world.templates,
                store=world.store,
                workers=args.workers,
                threads=args.concurrency,
            )
            began = time.perf_counter()
            executor.start()
            assert executor.wait_ready(WAIT_WORKER), "workers did not start"
            print(
                f"  workers: {args.workers} x {args.concurrency} threads ready in "
                f"{time.perf_counter() - began:.2f}s",
                file=out,
            )
            try:
                burst(world, executor, result, out)
            finally:
                executor.shutdown(10)
        finally:
            world.close()
    return result


# -- celery -----------------------------------------------------------------------------


class Worker:
    """A ``workflow worker`` process logging JSON lines to a file."""

    def __init__(self, env: dict[str, str], log: Path, concurrency: int, queue: str) -> None:
        self.log = log
        self._out = log.open("wb")
        argv = [sys.executable, "-m", "ddeutil.workflow", "--log-format", "json", "worker"]
        argv += ["--concurrency", str(concurrency), "--queues", queue]
        self.proc = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=self._out, stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WAIT_WORKER
        while "worker ready" not in self.text():
            if self.proc.poll() is not None:
                raise SystemExit(f"worker exited with {self.proc.returncode}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"worker {self.proc.pid} not ready:\n{self.text()}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        """SIGTERM, a bounded wait, then SIGKILL; the exit code (``None``: killed)."""
        code: int | None = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=WAIT_WORKER)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._out.close()
        return code


@contextmanager
def private_redis() -> Iterator[str]:
    """A ``redis-server`` of our own on a free port, keeping nothing on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (or give --redis-url)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    folder = tempfile.mkdtemp(prefix="bench-celery-redis-")
    argv += ["no", "--dir", folder]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the private redis-server did not answer") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def delete_queue(url: str, queue: str) -> None:
    """Delete the benchmark's queue (and what is left in it) from the broker."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.default_channel.queue_delete(queue)
    except Exception as exc:
        print(f"  could not delete queue {queue}: {exc}", file=sys.stderr)


def run_celery(args: argparse.Namespace, broker: str, url: str, out: TextIO) -> Result:
    from ddeutil.workflow.dispatch.celery_executor import CeleryExecutor

    result = Result("celery", broker, args.runs)
    queue = f"wf-bench-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix=f"bench-celery-{broker}-") as tmp:
        world = World(
            Path(tmp),
            args.store_url,
            {
                "WORKFLOW_APP_EXECUTOR": "celery",
                "WORKFLOW_CELERY_BROKER_URL": url,
                "WORKFLOW_CELERY_QUEUE": queue,
            },
        )
        workers: list[Worker] = []
        try:
            began = time.perf_counter()
            workers = [
                Worker(world.env, world.root / f"worker-{i}.log", args.concurrency, queue)
                for i in range(args.workers)
            ]
            for worker in workers:
                worker.wait_ready()
            print(
                f"  workers: {args.workers} x {args.concurrency} threads ready in "
                f"{time.perf_counter() - began:.2f}s (queue {queue})",
                file=out,
            )
            executor = CeleryExecutor(
                settings=world.settings, templates=world.templates, store=world.store
            )
            executor.start()
            try:
                burst(world, executor, result, out)
            finally:
                executor.shutdown(10)
        finally:
            codes = [worker.stop() for worker in workers]
            if any(code != 0 for code in codes):
                result.notes.append(f"worker exit codes {codes}")
            problems = [
                line
                for worker in workers
                for line in worker.text().splitlines()
                if '"ERROR"' in line or '"WARNING"' in line or "Traceback" in line
            ]
            if problems:
                print(f"  {len(problems)} warning/error line(s) in worker logs, first:", file=out)
                for line in problems[:5]:
                    print(f"    {line[:400]}", file=out)
            world.close()
            delete_queue(url, queue)
    return result


# -- report -----------------------------------------------------------------------------


def table(results: list[Result], out: TextIO) -> None:
    local = next((r.finished for r in results if r.executor == "local"), None)
    head = (
        f"{'executor':<8} {'broker':<9} {'runs':>6} {'submit s':>9} {'started s':>10} "
        f"{'finished s':>11} {'runs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'vs local':>9}  status"
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in results:
        rate = r.runs / r.finished if r.finished == r.finished and r.finished > 0 else 0.0
        ratio = f"{r.finished / local:.2f}x" if local else "-"
        status = "ok" if r.ok else f"{r.statuses} {'; '.join(r.notes)}"
        print(
            f"{r.executor:<8} {r.broker:<9} {r.runs:>6} {r.submit:>9.2f} {r.started:>10.2f} "
            f"{r.finished:>11.2f} {rate:>8.0f} {r.overhead_ms(0.5):>8.1f} "
            f"{r.overhead_ms(0.99):>8.1f} {r.overhead_ms(1.0):>8.1f} {ratio:>9}  {status}",
            file=out,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--executor", default="all", choices=["local", "celery", "all"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--concurrency", type=int, default=100, help="threads per worker (local and celery)"
    )
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument(
        "--redis-url", default=None, help="default: a private redis-server, stopped after"
    )
    parser.add_argument(
        "--store-url", default=None, help="default: a SQLite file in the temporary root"
    )
    parser.add_argument(
        "--log",
        default="json",
        choices=["json", "none"],
        help="json: log like the daemon (JSON lines at INFO) in the local executor too",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-celery-logs-") as logs:
        if args.log == "none":
            return run_all(args, sys.stdout)
        # The local executor's workers log to this process's stdout (fd 1): send it
        # to a file, and the report to a copy of the original stdout.
        sys.stdout.flush()
        with (
            os.fdopen(os.dup(1), "w", buffering=1) as out,
            (Path(logs) / "parent.log").open("wb") as log,
        ):
            os.dup2(log.fileno(), 1)
            configure_logging(fmt="json", level="INFO", stream=sys.stdout)
            return run_all(args, out)


def run_all(args: argparse.Namespace, out: TextIO) -> int:

    plan: list[tuple[str, Callable[[], Result]]] = []
    if args.executor in ("local", "all"):
        plan.append(("local", lambda: run_local(args, out)))
    if args.executor in ("celery", "all"):
        plan.append(("celery / rabbitmq", lambda: run_celery(args, "rabbitmq", args.amqp_url, out)))

        def on_redis() -> Result:
            if args.redis_url:
                return run_celery(args, "redis", args.redis_url, out)
            with private_redis() as url:
                return run_celery(args, "redis", url, out)

        plan.append(("celery / redis", on_redis))

    results = []
    for label, run in plan:
        print(f"{label}: {args.runs} runs", file=out, flush=True)
        results.append(run())
    print(file=out)
    table(results, out)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
