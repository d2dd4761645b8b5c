"""Benchmark: trigger-to-SUCCESS latency and throughput of the REST API over real HTTP.

Run: ``python benchmarks/bench_api.py [--runs 500] [--clients 16] [--concurrent-runs 1600]
[--workers 4]``.

Starts ``uvicorn ddeutil.workflow.api:app`` in a subprocess on 127.0.0.1 (a free
port; loopback only) with a temporary root: a conf folder holding the
three-stage pipeline (an empty stage, a python assignment, a hook call), a hook
module ``benchhooks.tasks`` added to ``WORKFLOW_CORE_REGISTRY``, and a SQLite run
store. Logging stays at its defaults (INFO, one log file per run); uvicorn's
access log is off.

Measured with httpx clients over keep-alive connections:

* **sequential**: ``--runs`` triggers one after the other; each latency is from
  sending ``POST /api/v1/pipelines/three-stage/runs`` to reading the run as
  SUCCESS, polling ``GET /api/v1/runs/{id}?wait=10`` (the server answers as soon
  as the run ends). Also with plain polling every 5 ms (``--poll-runs``).
* **concurrent**: ``--clients`` threads each trigger-and-poll in a loop until
  ``--concurrent-runs`` runs are done; throughput is runs per second of wall time.

Every run must end SUCCESS; p50/p99 are nearest-rank percentiles.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

PIPELINE = """\
three-stage:
  type: Pipeline
  desc: empty, python assignment, hook call
  params:
    n:
      type: int
      default: 2
  jobs:
    main:
      stages:
        - name: nothing
        - name: assign
          id: assign
          vars:
            n: ${{ params.n }}
          run: |
            doubled = n * 2
        - name: hook
          id: hook
          uses: tasks/bench-add@bench
          with:
            a: ${{ stages.assign.outputs.doubled }}
            b: 1
"""

HOOKS = """\
from ddeutil.workflow.registry import tag


@tag("bench", alias="bench-add")
def add(a: int, b: int) -> dict:
    return {"total": a + b}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


class Server:
    """uvicorn serving the API in a subprocess."""

    def __init__(self, root: Path, workers: int) -> None:
        self.token = secrets.token_urlsafe(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
        env.update(
            {
                "WORKFLOW_ROOT_PATH": str(root),
                "WORKFLOW_CORE_REGISTRY": "ddeutil.workflow,benchhooks",
                "WORKFLOW_CORE_TIMEZONE": "UTC",
                "WORKFLOW_API_TOKEN": self.token,
                "WORKFLOW_API_RUN_WORKERS": str(workers),
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(root), env.get("PYTHONPATH", "")) if p
                ),
            }
        )
        self.log = (root / "server.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "ddeutil.workflow.api:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("uvicorn did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def client(server: Server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30.0,
    )


def one_run(http: httpx.Client, poll_interval: float | None) -> float:
    """Trigger the pipeline and poll until it ends; return the seconds it took."""
    start = time.perf_counter()
    response = http.post("/api/v1/pipelines/three-stage/runs", json={"params": {"n": 20}})
    if response.status_code != 202:
        raise RuntimeError(f"trigger failed: {response.status_code} {response.text}")
    location = response.headers["Location"]
    params = {"wait": 10} if poll_interval is None else {}
    while True:
        body = http.get(location, params=params).json()
        if body["status"] not in ("PENDING", "RUNNING"):
            break
        if poll_interval is not None:
            time.sleep(poll_interval)
    elapsed = time.perf_counter() - start
    if body["status"] != "SUCCESS":
        raise RuntimeError(f"run {body['run_id']} ended {body['status']}: {body.get('error')}")
    if body["context"]["jobs"]["main"]["stages"]["hook"]["outputs"] != {"total": 41}:
        raise RuntimeError(f"unexpected outputs: {body['context']}")
    return elapsed


def sequential(server: Server, runs: int, poll_interval: float | None) -> list[float]:
    with client(server) as http:
        for _ in range(20):  # warm-up: imports, caches, connection
            one_run(http, poll_interval)
        return [one_run(http, poll_interval) for _ in range(runs)]


def concurrent(server: Server, clients: int, total: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    left = [total]
    errors: list[BaseException] = []

    def worker() -> None:
        with client(server) as http:
            while True:
                with lock:
                    if left[0] <= 0 or errors:
                        return
                    left[0] -= 1
                try:
                    took = one_run(http, None)
                except BaseException as exc:
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    latencies.append(took)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    return len(latencies) / wall, latencies


def row(name: str, values: list[float], extra: str = "") -> str:
    ms: Callable[[float], str] = lambda s: f"{s * 1000:8.2f}"  # noqa: E731
    return (
        f"{name:<34} {len(values):>6} {ms(percentile(values, 50))} "
        f"{ms(percentile(values, 99))} {ms(max(values))}  {extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=500, help="sequential triggers")
    parser.add_argument("--poll-runs", type=int, default=200, help="sequential, 5 ms polling")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--concurrent-runs", type=int, default=1600, help="runs in total")
    parser.add_argument("--workers", type=int, default=4, help="WORKFLOW_API_RUN_WORKERS")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        root = Path(tmp)
        (root / "conf").mkdir()
        (root / "conf" / "bench.yml").write_text(PIPELINE, encoding="utf-8")
        (root / "benchhooks").mkdir()
        (root / "benchhooks" / "__init__.py").write_text("", encoding="utf-8")
        (root / "benchhooks" / "tasks.py").write_text(textwrap.dedent(HOOKS), encoding="utf-8")
        server = Server(root, args.workers)
        try:
            server.wait_ready()
            seq = sequential(server, args.runs, None)
            polled = sequential(server, args.poll_runs, 0.005) if args.poll_runs else []
            rate, loaded = concurrent(server, args.clients, args.concurrent_runs)
        finally:
            server.stop()

    print(
        f"REST API, three-stage pipeline, uvicorn on loopback, SQLite store, "
        f"WORKFLOW_API_RUN_WORKERS={args.workers}, Python {sys.version.split()[0]}"
    )
    print(
        f"{'trigger -> SUCCESS latency':<34} {'runs':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    print(row("sequential, long-poll (?wait=)", seq))
    if polled:
        print(row("sequential, polling every 5 ms", polled))
    print(row(f"{args.clients} concurrent clients, long-poll", loaded, f"{rate:.0f} runs/s"))
    print(f"throughput with {args.clients} concurrent clients: {rate:.1f} runs/s")


if __name__ == "__main__":
    main()
