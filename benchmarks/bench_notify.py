"""Notifications: what a run's end pays for its outbox row, and how fast the outbox drains.

    python benchmarks/bench_notify.py [--runs 2000] [--store sqlite|postgres|both] [--pg-url URL]

For each store it

1. ends ``--runs`` runs with ``finish`` alone, then ``--runs`` more with
   ``finish(..., notices=...)`` (a failure notice each, written in the same
   transaction) and reports the median and p99 of each;
2. drains the outbox with one :class:`~ddeutil.workflow.notify.sender.Sender`
   posting to a local HTTP receiver (``http.server`` on a thread) and reports
   notices per second.

The SQLite file lives in a temporary folder; the PostgreSQL schema is dropped.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.notify.notices import Notifier
from ddeutil.workflow.notify.sender import Sender
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import RunStore, open_store
from ddeutil.workflow.store.base import TriggerKind

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _hooksink import hook_sink

NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(values) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def bench(store: RunStore, runs: int, label: str) -> None:
    with hook_sink() as sink:
        settings = Settings.from_env({"WORKFLOW_NOTIFY_WEBHOOK_URL": sink.url})
        notifier = Notifier(settings, Masker())
        for i in range(2 * runs):
            store.create_run(
                run_id=f"r{i}", pipeline="p", trigger=TriggerKind.MANUAL, params={}, now=NOW
            )
        plain: list[float] = []
        noticed: list[float] = []
        for i in range(2 * runs):
            notices = ()
            if i >= runs:
                notices = notifier.run_end(
                    None, run_id=f"r{i}", pipeline="p", status=Status.FAILED,
                    error="stage failed", release=None, ended=NOW,
                )  # fmt: skip
            began = time.perf_counter()
            store.finish(f"r{i}", status=Status.FAILED, now=NOW, error="x", notices=notices)
            (noticed if notices else plain).append(time.perf_counter() - began)
        print(f"{label}: finish alone: {_ms(plain)}; with its notice: {_ms(noticed)}")
        sender = Sender(store, settings, owner="bench", clock=FakeClock(NOW), batch=50)
        began = time.perf_counter()
        sent = 0
        while batch := sender.send_due():
            sent += batch
        elapsed = time.perf_counter() - began
        assert len(sink.hits) == sent == runs, (len(sink.hits), sent)
        print(f"{label}: {sent} notices delivered in {elapsed:.2f}s ({sent / elapsed:.0f}/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()
    if args.store in ("sqlite", "both"):
        folder = Path(tempfile.mkdtemp(prefix="bench-notify-"))
        store = open_store(f"sqlite:///{folder / 'runs.db'}")
        try:
            bench(store, args.runs, "SQLite")
        finally:
            store.close()
            shutil.rmtree(folder)
    if args.store in ("postgres", "both"):
        from _postgres import pg_base

        schema = f"bench_notify_{uuid.uuid4().hex[:8]}"
        base = pg_base(args.pg_url)
        store = open_store(f"{base}?schema={schema}")
        try:
            bench(store, args.runs, "PostgreSQL")
        finally:
            store.close()
            import psycopg

            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
