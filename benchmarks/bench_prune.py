"""Retention at scale: prune 1,000,000 ended runs while another process writes.

    python benchmarks/bench_prune.py [--runs 1000000] [--batch 500] [--store sqlite|postgres|both]
                                     [--pg-url URL]

For each store it

1. fills the run table with ``--runs`` ended runs 40-100 days old (100
   pipelines; straight into the table in big transactions, each row a copy of
   one run written through the store, so every column is what the store writes),
   plus a newest run per pipeline;
2. prints the query plans of the prune statements (SQLite: the candidate
   SELECT must walk the ``(created, run_id)`` index, not sort);
3. starts a writer process that does what a tick and a start handshake do,
   ``claim`` + ``finish`` of a new run, every 5 ms, and records how long each
   took; first alone (the baseline), then while
4. :func:`ddeutil.workflow.store.retention.prune` deletes every old run in
   batches of ``--batch``;

and reports the prune's total time, batches, longest batch (the longest the
write lock was wanted) and the writer's p50 / p99 / max wait. The target: no
write waits more than 100 ms. The SQLite file lives in a temporary folder and
the PostgreSQL schema is dropped at the end.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ddeutil.workflow.result import Status
from ddeutil.workflow.store import RunStore, _sql, open_store
from ddeutil.workflow.store.base import ReleaseKey, TriggerKind
from ddeutil.workflow.store.retention import cutoff, prune

NOW = datetime.now(timezone.utc).replace(microsecond=0)
PIPELINES = 100
CHUNK = 100_000
PACE = 0.005


def _template(store: RunStore) -> None:
    store.create_run(run_id="template", pipeline="p0", trigger=TriggerKind.API, params={}, now=NOW)
    store.finish("template", status=Status.SUCCESS, now=NOW, context={"jobs": {}})


def _rows(
    columns: list[str], template: tuple[Any, ...], n: int, ts_in: Any
) -> Iterator[tuple[Any, ...]]:
    at = {name: i for i, name in enumerate(columns)}
    oldest = NOW - timedelta(days=100)
    step = timedelta(days=60) / max(n, 1)
    for i in range(n):
        row = list(template)
        when = ts_in(oldest + step * i)
        row[at["run_id"]] = f"r{i:09d}"
        row[at["pipeline"]] = f"p{i % PIPELINES}"
        row[at["created"]] = row[at["ended"]] = when
        if "started" in at:
            row[at["started"]] = when
        yield tuple(row)


def fill_sqlite(url: str, path: Path, n: int) -> float:
    import sqlite3

    store = open_store(url)
    try:
        _template(store)
        dialect = store._dialect  # type: ignore[attr-defined]
        for p in range(PIPELINES):  # each pipeline's newest: never pruned
            store.create_run(
                run_id=f"newest-{p}", pipeline=f"p{p}", trigger=TriggerKind.API, params={}, now=NOW
            )
            store.finish(f"newest-{p}", status=Status.SUCCESS, now=NOW)
    finally:
        store.close()
    began = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    cur = conn.execute("SELECT * FROM workflow_runs WHERE run_id = 'template'")
    columns = [d[0] for d in cur.description]
    template = cur.fetchone()
    conn.execute("DELETE FROM workflow_runs WHERE run_id = 'template'")
    insert = f"INSERT INTO workflow_runs ({', '.join(columns)}) VALUES {_sql.marks(len(columns))}"
    rows = _rows(columns, template, n, dialect.ts_in)
    while True:
        chunk = list(itertools.islice(rows, CHUNK))
        if not chunk:
            break
        conn.execute("BEGIN")
        conn.executemany(insert, chunk)
        conn.execute("COMMIT")
    conn.execute("ANALYZE")
    for name, statement, values in (
        ("candidates", _sql.PRUNE_CANDIDATES, (dialect.ts_in(NOW), 600)),
        ("delete runs", _sql.PRUNE_RUNS + _sql.marks(500), [f"r{i:09d}" for i in range(500)]),
        ("delete logs", _sql.PRUNE_LOGS + _sql.marks(500), [f"r{i:09d}" for i in range(500)]),
        ("newest", _sql.NEWEST, ()),
    ):
        plan = conn.execute("EXPLAIN QUERY PLAN " + statement, values).fetchall()
        print(f"  plan {name}: " + " | ".join(str(row[-1]) for row in plan))
    conn.close()
    return time.perf_counter() - began


def fill_postgres(url: str, schema: str, n: int) -> float:
    import psycopg

    store = open_store(url)
    try:
        _template(store)
        dialect = store._dialect  # type: ignore[attr-defined]
        for p in range(PIPELINES):
            store.create_run(
                run_id=f"newest-{p}", pipeline=f"p{p}", trigger=TriggerKind.API, params={}, now=NOW
            )
            store.finish(f"newest-{p}", status=Status.SUCCESS, now=NOW)
    finally:
        store.close()
    began = time.perf_counter()
    base = url.split("?", 1)[0]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        cur = conn.execute("SELECT * FROM workflow_runs WHERE run_id = 'template'")
        assert cur.description is not None
        columns = [d.name for d in cur.description]
        template = cur.fetchone()
        assert template is not None
        template = tuple(
            psycopg.types.json.Jsonb(v) if isinstance(v, (dict, list)) else v for v in template
        )
        conn.execute("DELETE FROM workflow_runs WHERE run_id = 'template'")
        with conn.cursor().copy(f"COPY workflow_runs ({', '.join(columns)}) FROM STDIN") as copy:
            for row in _rows(columns, template, n, dialect.ts_in):
                copy.write_row(row)
        conn.execute("VACUUM ANALYZE workflow_runs")
        for name, statement, values in (
            ("candidates", _sql.PRUNE_CANDIDATES, (NOW, 600)),
            ("delete runs", _sql.PRUNE_RUNS + _sql.marks(500), [f"r{i:09d}" for i in range(500)]),
        ):
            plan = conn.execute(
                "EXPLAIN " + dialect.sql(statement), values, prepare=False
            ).fetchall()
            print(f"  plan {name}: " + " | ".join(str(row[0]).strip()[:120] for row in plan))
    return time.perf_counter() - began


class TimedStore:
    """The store, with the duration of each ``prune_runs`` call recorded."""

    def __init__(self, inner: RunStore) -> None:
        self.inner = inner
        self.took: list[float] = []

    def prune_runs(self, before: datetime, *, limit: int, keep: Any = ()) -> list[str]:
        began = time.perf_counter()
        try:
            return self.inner.prune_runs(before, limit=limit, keep=keep)
        finally:
            self.took.append(time.perf_counter() - began)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def writer(url: str, stop: Any, started: Any, results: Any) -> None:
    """Another process: claim + finish a new run every PACE seconds until ``stop``."""
    store = open_store(url)
    waits: list[float] = []
    try:
        i = 0
        started.set()
        while not stop.wait(PACE):
            i += 1
            run_id = f"w-{uuid.uuid4().hex[:12]}"
            at = datetime.now(timezone.utc)
            key = ReleaseKey(
                "writer", "* * * * *@UTC", at.replace(microsecond=0) + timedelta(seconds=i * 1e-3)
            )
            began = time.perf_counter()
            store.claim(key, run_id=run_id, params={}, logical_date=at, now=at)
            store.finish(run_id, status=Status.SUCCESS, now=at)
            waits.append(time.perf_counter() - began)
    finally:
        store.close()
        results.put(waits)


def measure(url: str, seconds: float | None, work: Any = None) -> tuple[list[float], Any]:
    """The writer's waits during ``work()`` (or ``seconds`` of nothing)."""
    ctx = mp.get_context("spawn")
    stop, started, results = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=writer, args=(url, stop, started, results))
    proc.start()
    if not started.wait(60):
        raise SystemExit("the writer process did not start")
    time.sleep(0.5)  # a benchmark, not a test: let the writer settle
    outcome = work() if work is not None else time.sleep(seconds or 0)
    stop.set()
    waits: list[float] = results.get(timeout=60)
    proc.join(60)
    return waits, outcome


def summary(waits: list[float]) -> str:
    if not waits:
        return "no writes"
    ordered = sorted(waits)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{len(waits)} writes, p50 {statistics.median(ordered) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )


def bench(name: str, url: str, fill: Any, runs: int, batch: int) -> None:
    print(f"{name}: filling {runs:,} ended runs ...")
    took = fill()
    print(f"  filled in {took:.1f}s")
    base, _ = measure(url, 5.0)
    print(f"  writer alone: {summary(base)}")
    logs = Path(tempfile.mkdtemp(prefix="bench-prune-logs-"))
    store = open_store(url)
    try:
        timed = TimedStore(store)

        def work() -> Any:
            return prune(timed, before=cutoff(NOW, 30), log_dir=logs, batch=batch)  # type: ignore[arg-type]

        waits, report = measure(url, None, work)
        left = store.count_runs()
    finally:
        store.close()
        shutil.rmtree(logs, ignore_errors=True)
    print(
        f"  prune: {report.runs:,} runs in {report.batches:,} batches of {batch}, "
        f"{report.elapsed:.1f}s ({report.runs / report.elapsed:,.0f} runs/s), "
        f"longest batch {report.longest_batch * 1000:.1f} ms; {left:,} runs left"
    )
    print(f"  batches: {summary(timed.took).replace('writes', 'batches')}")
    print(f"  writer during the prune: {summary(waits)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()
    if args.store in ("sqlite", "both"):
        folder = Path(tempfile.mkdtemp(prefix="bench-prune-"))
        try:
            path = folder / "runs.db"
            url = f"sqlite:///{path}"
            bench("SQLite", url, lambda: fill_sqlite(url, path, args.runs), args.runs, args.batch)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if args.store in ("postgres", "both"):
        import psycopg

        from _postgres import pg_base

        base = pg_base(args.pg_url)
        schema = f"bench_prune_{uuid.uuid4().hex[:8]}"
        url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
        try:
            bench(
                "PostgreSQL",
                url,
                lambda: fill_postgres(url, schema, args.runs),
                args.runs,
                args.batch,
            )
        finally:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


if __name__ == "__main__":
    main()
