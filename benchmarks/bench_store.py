"""Run store throughput: claims/s and finishes/s, single thread and 8 threads.

    python benchmarks/bench_store.py [--n 10000] [--threads 8] [--postgres URL]

Measures, for each store:

* ``claim x1``: ``claim()`` one release at a time, one thread;
* ``claim xT``: the same releases split over T threads;
* ``claim_many``: one call (one transaction) for all releases, then batches of 500;
* ``start+finish x1`` / ``xT``: ``mark_running`` then ``finish`` for every run;
* ``list page``: one page of 50 filtered runs out of N.

The daemon's target is 10,000 releases claimed in a one-minute burst (167/s)
and 10,000 runs started and finished within 60 s. SQLite is measured with the
default ``synchronous=normal`` and with ``synchronous=full`` (fsync per commit),
plus a variant with one connection per thread instead of the shared connection,
to back the store's concurrency choice.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta, timezone
from typing import Any

from ddeutil.workflow.result import Status
from ddeutil.workflow.store import (
    Claim,
    ReleaseKey,
    RunFilter,
    RunStore,
    SqliteRunStore,
    open_store,
)

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


class PerThreadSqlite(SqliteRunStore):
    """Variant for comparison only: a connection per thread, no Python mutex."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        self._local = threading.local()
        self._timeout = kwargs.get("busy_timeout", 30.0)
        self._level = kwargs.get("synchronous", "NORMAL")
        super().__init__(path, **kwargs)
        self._mutex = nullcontext()  # type: ignore[assignment]

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            conn.execute(f"PRAGMA synchronous = {self._level}")
            self._local.conn = conn
        return conn


def releases(n: int, tag: str) -> list[Claim]:
    return [
        Claim(
            ReleaseKey(f"pipe-{i % 100}", "* * * * *@UTC", T0 + timedelta(minutes=i)), f"{tag}-{i}"
        )
        for i in range(n)
    ]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def threaded(threads: int, items: list[Any], work: Callable[[Any], object]) -> float:
    chunks = [items[i::threads] for i in range(threads)]
    barrier = threading.Barrier(threads + 1, timeout=60)

    def run(chunk: list[Any]) -> None:
        barrier.wait()
        for item in chunk:
            work(item)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(run, chunk) for chunk in chunks]
        barrier.wait()
        start = time.perf_counter()
        for f in futures:
            f.result(timeout=600)
        return time.perf_counter() - start


def claim_one(store: RunStore) -> Callable[[Claim], object]:
    return lambda c: store.claim(c.release, run_id=c.run_id, params={}, logical_date=T0, now=T0)


def start_finish(store: RunStore) -> Callable[[str], object]:
    def work(run_id: str) -> None:
        assert store.mark_running(run_id, now=T0)
        assert store.finish(run_id, status=Status.SUCCESS, now=T0, context={"ok": True})

    return work


def bench(name: str, make: Callable[[], RunStore], n: int, threads: int) -> None:
    rows: list[tuple[str, int, float]] = []
    store = make()
    try:
        items = releases(n, "a")
        rows.append(("claim x1", n, timed(lambda: [claim_one(store)(c) for c in items])))
        items = releases(n, "b")
        items = [
            Claim(ReleaseKey("other", c.release.schedule, c.release.at), c.run_id) for c in items
        ]
        rows.append((f"claim x{threads}", n, threaded(threads, items, claim_one(store))))
        items = [
            Claim(ReleaseKey("batch", c.release.schedule, c.release.at), c.run_id)
            for c in releases(n, "c")
        ]
        rows.append(("claim_many (1 call)", n, timed(lambda: store.claim_many(items, now=T0))))
        items = [
            Claim(ReleaseKey("batch500", c.release.schedule, c.release.at), c.run_id)
            for c in releases(n, "d")
        ]
        rows.append(
            (
                "claim_many (500/call)",
                n,
                timed(
                    lambda: [store.claim_many(items[i : i + 500], now=T0) for i in range(0, n, 500)]
                ),
            )
        )
        ids_a = [f"a-{i}" for i in range(n)]
        rows.append(("start+finish x1", n, timed(lambda: [start_finish(store)(r) for r in ids_a])))
        ids_b = [f"b-{i}" for i in range(n)]
        rows.append((f"start+finish x{threads}", n, threaded(threads, ids_b, start_finish(store))))
        pages = 100
        rows.append(
            (
                "list page (50, filtered)",
                pages,
                timed(
                    lambda: [
                        store.list_runs(
                            RunFilter(pipeline="pipe-7", status=Status.SUCCESS), limit=50
                        )
                        for _ in range(pages)
                    ]
                ),
            )
        )
    finally:
        store.close()
    print(f"\n{name}")
    for label, count, seconds in rows:
        print(
            f"  {label:<26} {count / seconds:>10,.0f} /s   ({seconds * 1000:8.1f} ms for {count:,})"
        )


@contextmanager
def sqlite_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        yield tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--postgres", help="postgresql:// URL (a scratch schema is created and dropped)"
    )
    parser.add_argument(
        "--skip-variant", action="store_true", help="skip the per-thread SQLite variant"
    )
    args = parser.parse_args()
    n, threads = args.n, args.threads
    print(f"n={n:,} threads={threads} cpus={os.cpu_count()} sqlite={sqlite3.sqlite_version}")
    bench("memory://", lambda: open_store("memory://"), n, threads)
    with sqlite_dir() as tmp:
        bench(
            "sqlite (synchronous=normal, default)",
            lambda: open_store(f"sqlite:///{tmp}/normal.db"),
            n,
            threads,
        )
        bench(
            "sqlite (synchronous=full)",
            lambda: open_store(f"sqlite:///{tmp}/full.db?synchronous=full"),
            n,
            threads,
        )
        if not args.skip_variant:
            bench(
                "sqlite variant: connection per thread (normal)",
                lambda: PerThreadSqlite(f"{tmp}/per-thread.db"),
                n,
                threads,
            )
    if args.postgres:
        import psycopg

        schema = f"wf_bench_{uuid.uuid4().hex[:8]}"
        sep = "&" if "?" in args.postgres else "?"
        try:
            bench(
                "postgresql", lambda: open_store(f"{args.postgres}{sep}schema={schema}"), n, threads
            )
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


if __name__ == "__main__":
    main()
