"""Benchmark: server-side render time of each dashboard page with 100,000 runs stored.

Run: ``python benchmarks/bench_ui.py [--runs 100000] [--repeat 20]``.

Fills a SQLite run store in a temporary root fast (one real run recorded through
the store API, then copied with ``INSERT ... SELECT`` over a recursive CTE, so
every row has the store's own encoding: 10 pipelines, all statuses, four trigger
kinds, one run a minute), builds the app with ``create_app`` and times each page
through a ``TestClient`` (in-process: the server's work, no network), reporting
the median and the worst of ``--repeat`` renders. Then prints SQLite's
``EXPLAIN QUERY PLAN`` of the history queries the pages run (list and count, with
and without filters).
"""

from __future__ import annotations

import argparse
import logging
import re
import sqlite3
import statistics
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from ddeutil.workflow.api import create_app
from ddeutil.workflow.engine.pipeline import Pipeline
from ddeutil.workflow.result import Status
from ddeutil.workflow.runs import TriggerKind
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store

TOKEN = "bench-ui-token-0123456789abcdef"
PIPELINES = 10
CONF = "".join(
    f"""
p{i}:
  type: Pipeline
  desc: pipeline number {i}
  on: {{cron: "*/5 * * * *", timezone: UTC}}
  params:
    day: {{type: date, default: "2024-01-01"}}
    mode: {{type: choice, options: [full, delta]}}
  jobs:
    extract:
      stages:
        - {{name: pull, echo: pulled}}
        - {{name: check, echo: checked}}
    load:
      needs: [extract]
      stages:
        - {{name: push, echo: pushed}}
"""
    for i in range(PIPELINES)
)
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _case(expr: str, values: list[str]) -> str:
    whens = " ".join(f"WHEN {i} THEN '{v}'" for i, v in enumerate(values))
    return f"CASE {expr} {whens} END"


def fill(root: Path, runs: int) -> Path:
    db = root / ".workflow" / "runs.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{db}")
    settings = Settings.from_env({"WORKFLOW_ROOT_PATH": str(root)})
    result = Pipeline.from_loader("p0", settings=settings).execute(
        {"mode": "full"}, settings=settings
    )
    store.create_run(
        run_id="seed", pipeline="p0", trigger=TriggerKind.SCHEDULE, params={"mode": "full"}, now=T0
    )
    store.finish("seed", status=Status.SUCCESS, now=T0, context=result.context)
    store.close()
    statuses = (Status.SUCCESS,) * 6 + (Status.FAILED,) * 2 + (Status.CANCELLED, Status.SKIPPED)
    kinds = (TriggerKind.SCHEDULE,) * 2 + (
        TriggerKind.API,
        TriggerKind.MANUAL,
        TriggerKind.BACKFILL,
    )
    with sqlite3.connect(db) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(workflow_runs)")]
        replaced = {
            "run_id": "printf('r%08d', n)",
            "pipeline": f"'p' || (n % {PIPELINES})",
            "status": _case("n % 10", [s.value for s in statuses]),
            "trigger_kind": _case("n % 5", [k.value for k in kinds]),
            "created": "strftime('%Y-%m-%dT%H:%M:%S+00:00', '2024-01-01', '+' || n || ' minutes')",
            "release_schedule": "NULL",
            "release_at": "NULL",
            "idempotency_key": "NULL",
        }
        select = ", ".join(replaced.get(c, c) for c in cols)
        conn.execute(
            f"INSERT INTO workflow_runs ({', '.join(cols)}) "
            f"WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {runs}) "
            f"SELECT {select} FROM seq, (SELECT * FROM workflow_runs WHERE run_id = 'seed')"
        )
        conn.execute("ANALYZE")
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "conf").mkdir()
        (root / "conf" / "p.yml").write_text(CONF, encoding="utf-8")
        began = time.perf_counter()
        db = fill(root, args.runs)
        print(f"filled {args.runs} runs in {time.perf_counter() - began:.1f}s")
        settings = Settings.from_env({"WORKFLOW_ROOT_PATH": str(root), "WORKFLOW_API_TOKEN": TOKEN})
        with TestClient(create_app(settings), base_url="https://testserver") as client:
            client.post("/ui/login", data={"token": TOKEN})
            pages = {
                "pipelines": "/ui/pipelines",
                "pipeline p3": "/ui/pipelines/p3",
                "history": "/ui/runs",
                "history page 1000": "/ui/runs?offset=50000",
                "history filtered": "/ui/runs?pipeline=p3&status=FAILED&trigger=schedule"
                "&since=2024-02-01T00:00&until=2024-03-01T00:00",
                "history status only": "/ui/runs?status=CANCELLED",
                "run": "/ui/runs/r00050000",
                "run status fragment": "/ui/runs/r00050000/status",
            }
            print(f"{'page':<22}{'median ms':>10}{'max ms':>10}")
            for label, path in pages.items():
                times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    response = client.get(path)
                    times.append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 200, (path, response.status_code)
                    assert "/ui/logout" in response.text or "run-status" in response.text, path
                if label == "history":
                    assert re.search(rf"{args.runs + 1} runs", response.text)
                print(f"{label:<22}{statistics.median(times):>10.1f}{max(times):>10.1f}")
        explain(db)


def explain(db: Path) -> None:
    queries = {
        "list, no filter": "SELECT * FROM workflow_runs ORDER BY created DESC, run_id DESC LIMIT 50 OFFSET 50000",
        "count, no filter": "SELECT COUNT(*) FROM workflow_runs",
        "list, pipeline+status": "SELECT * FROM workflow_runs WHERE pipeline = 'p3' AND status IN ('FAILED') ORDER BY created DESC, run_id DESC LIMIT 50",
        "count, pipeline+status+time": "SELECT COUNT(*) FROM workflow_runs WHERE pipeline = 'p3' AND status IN ('FAILED') AND created >= '2024-02-01' AND created < '2024-03-01'",
        "list, status": "SELECT * FROM workflow_runs WHERE status IN ('CANCELLED') ORDER BY created DESC, run_id DESC LIMIT 50",
        "last run of a pipeline": "SELECT * FROM workflow_runs WHERE pipeline = 'p3' ORDER BY created DESC, run_id DESC LIMIT 1",
    }
    with sqlite3.connect(db) as conn:
        for label, sql in queries.items():
            plan = "; ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
            print(f"{label}: {plan}")


if __name__ == "__main__":
    main()
