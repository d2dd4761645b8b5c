"""Warm cost of ``${{ }}`` in ``run`` and ``bash`` bodies, per run.

Measures ``Pipeline.execute`` of small pipelines whose bodies hold expressions, with a
new param value on every run (as a daily ``run-date`` would be), against the same
pipelines with static bodies. Run it on two checkouts to compare them, e.g.::

    python benchmarks/bench_bodies.py                          # this checkout
    PYTHONPATH=/path/to/other/checkout/src python benchmarks/bench_bodies.py

Prints one JSON object: median microseconds per run for each pipeline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

PIPELINES: dict[str, dict[str, Any]] = {
    "py-static": {"stages": [{"name": "a", "id": "a", "run": "x = 'v' * 2\ny = 1 + 1"}]},
    "py-values": {
        "stages": [
            {
                "name": "a",
                "id": "a",
                "run": "x = '${{ params.v }}' * 2\ny = ${{ params.n }} + 1",
            }
        ]
    },
    "py-fstring": {
        "stages": [{"name": "a", "id": "a", "run": 'x = f"day {1 + 1}: ${{ params.v }}"'}]
    },
    "bash-static": {"stages": [{"name": "a", "id": "a", "bash": 'echo "v"'}]},
    "bash-values": {
        "stages": [{"name": "a", "id": "a", "bash": 'echo "${{ params.v }}" ${{ params.n }}'}]
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="runs per python pipeline")
    parser.add_argument("--bash-runs", type=int, default=60, help="runs per bash pipeline")
    args = parser.parse_args()

    from ddeutil.workflow.engine.pipeline import Pipeline
    from ddeutil.workflow.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "conf").mkdir()
        data = {
            name: {
                "type": "Pipeline",
                "params": {
                    "v": {"type": "str", "default": "x"},
                    "n": {"type": "int", "default": 1},
                },
                "jobs": {"j": job},
            }
            for name, job in PIPELINES.items()
        }
        (root / "conf" / "bench.yml").write_text(yaml.safe_dump(data))
        settings = Settings.from_env(
            {
                "WORKFLOW_ROOT_PATH": str(root),
                "WORKFLOW_LOG_ENABLE_WRITE": "false",
                "WORKFLOW_CORE_TIMEZONE": "UTC",
            }
        )
        out: dict[str, float] = {}
        for name in PIPELINES:
            pipe = Pipeline.from_loader(name, settings=settings)
            runs = args.bash_runs if name.startswith("bash") else args.runs
            for i in range(20):  # warm-up
                pipe.execute({"v": f"warm-{i}", "n": i}, settings=settings)
            times = []
            for i in range(runs):
                params = {"v": f"2024-01-{i:05d}", "n": i}
                start = time.perf_counter()
                result = pipe.execute(params, settings=settings)
                times.append(time.perf_counter() - start)
                assert result.status.value == "SUCCESS", result.errors
            out[name] = round(statistics.median(times) * 1e6, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
