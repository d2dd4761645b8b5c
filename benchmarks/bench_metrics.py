"""Benchmark: the cost of one Prometheus scrape with 1,000 pipelines.

Run: ``python benchmarks/bench_metrics.py [--pipelines 1000] [--scrapes 200]``.

A :class:`~ddeutil.workflow.prometheus.PrometheusMeter` is filled as a busy
daemon's would be: every pipeline has finished runs (SUCCESS and FAILED, so
each has its own ``workflow_pipeline_run_duration_seconds`` series), with
releases claimed, skipped and started, stage durations and store errors. Then:

* **render**: ``meter.render()`` alone (the text exposition of the registry);
* **daemon port**: ``GET /metrics`` over real HTTP (loopback, a new connection
  per scrape, as Prometheus does after an idle interval) from the daemon's
  metrics server (``serve_metrics``);
* **API route**: ``GET /metrics`` of ``create_app`` through Starlette's
  ``TestClient`` (in process, no network), with a SQLite run store holding one
  daemon heartbeat (the one store read a scrape does).

Reported: p50, p99 (nearest rank) and max in milliseconds, and the size of
one scrape. The goal is under 20 ms per scrape.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from ddeutil.workflow.clock import SystemClock
from ddeutil.workflow.prometheus import PrometheusMeter, serve_metrics


def fill(meter: PrometheusMeter, pipelines: int) -> None:
    for i in range(pipelines):
        name = f"pipeline-{i:04d}"
        meter.release_claimed(late=i % 50 == 0)
        meter.run_started(lag=0.001 * (i % 7))
        meter.run_finished(name, status="SUCCESS", trigger="schedule", seconds=1.0 + i % 13)
        meter.run_finished(name, status="FAILED", trigger="api", seconds=0.5)
        for _ in range(3):
            meter.stage_finished(0.01 * (i % 11))
    meter.release_skipped("catchup", 10)
    meter.release_skipped("concurrency")
    meter.store_error()
    meter.worker_restarted()
    meter.heartbeat(datetime.now(timezone.utc))
    meter.load(in_flight=120, waiting=7)


def timed(call: Callable[[], int], scrapes: int) -> tuple[list[float], int]:
    size = call()  # warm-up
    times = []
    for _ in range(scrapes):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times), size


def rank(times: list[float], q: float) -> float:
    return times[max(math.ceil(q * len(times)) - 1, 0)]


def report(what: str, times: list[float], size: int) -> None:
    print(
        f"{what:<12} p50 {rank(times, 0.5):6.2f} ms  p99 {rank(times, 0.99):6.2f} ms  "
        f"max {times[-1]:6.2f} ms  ({size:,} bytes)"
    )


def bench_api(pipelines: int, scrapes: int) -> tuple[list[float], int]:
    with warnings.catch_warnings():  # Starlette prefers httpx2 for its TestClient
        warnings.simplefilter("ignore", UserWarning)
        from fastapi.testclient import TestClient

    from ddeutil.workflow.api import create_app
    from ddeutil.workflow.api.factory import freeze_long_lived
    from ddeutil.workflow.settings import Settings
    from ddeutil.workflow.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "conf").mkdir()
        settings = Settings.from_env(
            {"WORKFLOW_ROOT_PATH": str(root), "WORKFLOW_API_TOKEN": "bench-token-0123456789"}
        )
        store = open_store(settings.api_db_url)
        store.join("bench:1:aa", now=datetime.now(timezone.utc), host="bench", pid=1)
        store.close()
        app = create_app(settings)
        fill(app.state.meter, pipelines)
        freeze_long_lived()  # as `workflow api` and `uvicorn ddeutil.workflow.api:app` do
        with TestClient(app) as client:

            def scrape() -> int:
                response = client.get("/metrics")
                assert response.status_code == 200
                return len(response.content)

            return timed(scrape, scrapes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()

    meter = PrometheusMeter(clock=SystemClock())
    fill(meter, args.pipelines)
    print(f"{args.pipelines} pipelines, {args.scrapes} scrapes each")
    report("render", *timed(lambda: len(meter.render()), args.scrapes))

    server = serve_metrics(meter, host="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{server.port}/metrics"

    def scrape() -> int:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return len(reply.read())

    try:
        report("daemon port", *timed(scrape, args.scrapes))
    finally:
        server.close()
    report("API route", *bench_api(args.pipelines, args.scrapes))


if __name__ == "__main__":
    main()
