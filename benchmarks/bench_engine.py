"""Engine benchmark: this checkout against ddeutil-workflow 0.0.86 from PyPI.

Set up the baseline once, outside the repository::

    python3 -m venv /tmp/venv086 && /tmp/venv086/bin/pip install ddeutil-workflow==0.0.86
    python benchmarks/bench_engine.py --baseline-python /tmp/venv086/bin/python

Both sides run the same pipelines from YAML written into a temporary folder (only
``type:`` differs: ``Pipeline`` here, ``Workflow`` in 0.0.86), each measured in a
child process of its own interpreter:

1. warm ``execute()`` of one job with three stages - an ``echo`` empty stage, a
   python assignment and a hook call - median of many runs after a warm-up;
2. one job of 1,000 empty stages: microseconds per stage;
3. a 256-combination matrix (16 x 16) with ``max-parallel: 8``, two stages per
   combination: wall time, the tracemalloc peak of one run, and the max RSS of
   a process that imports, loads and runs it once;
4. a cold run in a new process, imports included: ``python -m ddeutil.workflow
   run three`` here; for 0.0.86 ``Workflow.from_conf('three').execute({})`` (its
   ``workflow-cli workflows execute`` only echoes the params). The two sides are
   interleaved and the medians compared.

0.0.86 runs with ``WORKFLOW_LOG_TRACE_HANDLERS=[]`` (no trace output: its fastest
setting) and audits off; this engine runs with no log handler installed in
(1)-(3), as a library, and with its default CLI logging in (4). The machine's
load affects both sides alike; run it on a quiet machine for stable numbers.
Without ``--baseline-python`` only this engine is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import yaml

MATRIX_SIDE = 16  # 16 x 16 = 256 combinations

OUR_HOOKS = """
from ddeutil.workflow.registry import tag


@tag("v1", alias="add-one")
def add_one(x: int) -> dict:
    return {"y": x + 1}
"""

BASE_HOOKS = OUR_HOOKS.replace("ddeutil.workflow.registry", "ddeutil.workflow.reusables")

CHILD = """
import json, resource, statistics, sys, time, tracemalloc

SIDE, MODE, OUT, RUNS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

if SIDE == "ours":
    from ddeutil.workflow.engine.pipeline import Pipeline
    from ddeutil.workflow.settings import Settings

    settings = Settings.from_env()

    def load(name):
        return Pipeline.from_loader(name, settings=settings)

    def run(pipe):
        result = pipe.execute(settings=settings)
        assert result.status.value == "SUCCESS", result.errors
else:
    from ddeutil.workflow import Workflow

    def load(name):
        return Workflow.from_conf(name)

    def run(pipe):
        result = pipe.execute({})
        status = getattr(result.status, "name", str(result.status))
        assert status == "SUCCESS", result.context


def timed(pipe, runs):
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        run(pipe)
        out.append(time.perf_counter() - start)
    return out


data = {}
if MODE == "warm":
    pipe = load("three")
    timed(pipe, 5)
    times = timed(pipe, RUNS)
    data = {"median": statistics.median(times), "min": min(times)}
elif MODE == "thousand":
    pipe = load("thousand")
    timed(pipe, 1)
    times = timed(pipe, RUNS)
    data = {"median": statistics.median(times), "min": min(times)}
elif MODE == "matrix":
    pipe = load("matrix")
    times = timed(pipe, RUNS)
    tracemalloc.start()
    run(pipe)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    data = {
        "first": times[0],
        "median": statistics.median(times),
        "tracemalloc_peak": peak,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
with open(OUT, "w") as fh:
    json.dump(data, fh)
"""

BASE_COLD = "from ddeutil.workflow import Workflow; Workflow.from_conf('three').execute({})"


def pipelines() -> dict[str, dict[str, Any]]:
    """The three benchmark pipelines, in this engine's spelling."""
    three = {
        "stages": [
            {"name": "empty", "id": "empty", "echo": "hello"},
            {"name": "assign", "id": "assign", "run": "x = 1"},
            {"name": "hook", "id": "hook", "uses": "tasks/add-one@v1", "with": {"x": 1}},
        ]
    }
    thousand = {"stages": [{"name": f"stage {i}", "id": f"s{i}"} for i in range(1000)]}
    values = list(range(MATRIX_SIDE))
    matrix = {
        "strategy": {"max-parallel": 8, "matrix": {"a": values, "b": values}},
        "stages": [
            {"name": "echo", "id": "echo", "echo": "${{ matrix.a }}-${{ matrix.b }}"},
            {"name": "assign", "id": "assign", "run": "x = 1"},
        ],
    }
    return {"three": three, "thousand": thousand, "matrix": matrix}


def write_side(root: Path, side: str) -> dict[str, Path]:
    """One conf folder per pipeline (so a cold run parses only its own file)."""
    hooks = root / "pkg" / "bench_hooks"
    hooks.mkdir(parents=True)
    (hooks / "__init__.py").write_text("")
    (hooks / "tasks.py").write_text(OUR_HOOKS if side == "ours" else BASE_HOOKS)
    homes = {}
    for name, job in pipelines().items():
        home = root / name
        (home / "conf").mkdir(parents=True)
        kind = "Pipeline" if side == "ours" else "Workflow"
        doc = {name: {"type": kind, "jobs": {"j": job}}}
        (home / "conf" / f"{name}.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
        homes[name] = home
    return homes


def side_env(side: str, root: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKFLOW_", "PYTHON"))}
    env["PYTHONPATH"] = str(root / "pkg")
    if side == "ours":
        env.update(
            WORKFLOW_ROOT_PATH=str(home),
            WORKFLOW_CORE_REGISTRY="ddeutil.workflow,bench_hooks",
            WORKFLOW_CORE_TIMEZONE="UTC",
            WORKFLOW_LOG_ENABLE_WRITE="false",
        )
    else:
        env.update(
            WORKFLOW_CORE_CONF_PATH=str(home / "conf"),
            WORKFLOW_CORE_REGISTRY_CALLER="bench_hooks",
            WORKFLOW_LOG_TRACE_HANDLERS="[]",
            WORKFLOW_LOG_AUDIT_ENABLE_WRITE="false",
        )
    return env


def child(
    python: str, side: str, mode: str, *, runs: int, root: Path, home: Path
) -> dict[str, Any]:
    script = root / "child.py"
    script.write_text(CHILD)
    out = root / f"{mode}.json"
    subprocess.run(
        [python, str(script), side, mode, str(out), str(runs)],
        env=side_env(side, root, home),
        cwd=home,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return dict(json.loads(out.read_text()))


def cold(
    commands: dict[str, tuple[list[str], dict[str, str], Path]], runs: int
) -> dict[str, list[float]]:
    """Wall time of each command in a new process, interleaved."""
    times: dict[str, list[float]] = {side: [] for side in commands}
    for _ in range(runs):
        for side, (argv, env, cwd) in commands.items():
            start = time.perf_counter()
            subprocess.run(
                argv,
                env=env,
                cwd=cwd,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            times[side].append(time.perf_counter() - start)
    return times


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-python", help="python of a venv with ddeutil-workflow==0.0.86")
    parser.add_argument(
        "--ours-python", default=sys.executable, help="python that imports this checkout"
    )
    parser.add_argument("--warm-runs", type=int, default=500)
    parser.add_argument("--stage-runs", type=int, default=20)
    parser.add_argument("--matrix-runs", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=9)
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    args = parser.parse_args(argv)

    sides = {"ours": args.ours_python}
    if args.baseline_python:
        sides["0.0.86"] = args.baseline_python
    results: dict[str, dict[str, Any]] = {side: {} for side in sides}
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        roots = {side: Path(tmp) / ("ours" if side == "ours" else "base") for side in sides}
        homes = {
            side: write_side(roots[side], "ours" if side == "ours" else "base") for side in sides
        }
        plan = [
            ("warm", "three", args.warm_runs),
            ("thousand", "thousand", args.stage_runs),
            ("matrix", "matrix", args.matrix_runs),
        ]
        for mode, name, runs in plan:
            for side, python in sides.items():
                kind = "ours" if side == "ours" else "base"
                # the baseline is ~1,000x slower per stage: fewer runs keep the total short
                n = runs if side == "ours" or mode == "matrix" else max(3, runs // 10)
                results[side][mode] = child(
                    python, kind, mode, runs=n, root=roots[side], home=homes[side][name]
                )
        commands: dict[str, tuple[list[str], dict[str, str], Path]] = {}
        for side, python in sides.items():
            kind = "ours" if side == "ours" else "base"
            home = homes[side]["three"]
            argv_ = (
                [python, "-m", "ddeutil.workflow", "run", "three"]
                if kind == "ours"
                else [python, "-c", BASE_COLD]
            )
            commands[side] = (argv_, side_env(kind, roots[side], home), home)
        for side, times in cold(commands, args.cold_runs).items():
            results[side]["cold"] = {"median": statistics.median(times), "min": min(times)}

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    report(results)
    return 0


def report(results: dict[str, dict[str, Any]]) -> None:
    ours = results["ours"]
    base = results.get("0.0.86")
    rows = [
        ("warm execute, 1 job x 3 stages (median)", "warm", lambda r: fmt_time(r["median"])),
        (
            "1,000 empty stages, per stage (median)",
            "thousand",
            lambda r: fmt_time(r["median"] / 1000),
        ),
        (
            "256-combination matrix, max-parallel 8 (median)",
            "matrix",
            lambda r: fmt_time(r["median"]),
        ),
        ("cold run in a new process (median)", "cold", lambda r: fmt_time(r["median"])),
    ]
    print(f"{'scenario':<50} {'this engine':>14} {'0.0.86':>14} {'speed-up':>9}")
    for label, key, show in rows:
        line = f"{label:<50} {show(ours[key]):>14}"
        if base is not None:
            line += f" {show(base[key]):>14} {base[key]['median'] / ours[key]['median']:>8.1f}x"
        print(line)
    for side, data in results.items():
        matrix = data["matrix"]
        print(
            f"matrix memory ({side}): tracemalloc peak of one run "
            f"{matrix['tracemalloc_peak'] / 2**20:.1f} MiB, max RSS of the process "
            f"{matrix['max_rss_kb'] / 1024:.0f} MiB; first run {fmt_time(matrix['first'])}"
        )
    if base is not None:
        ratio = ours["cold"]["median"] / base["cold"]["median"]
        best = ours["cold"]["min"] / base["cold"]["min"]
        print(f"cold run ratio, this engine / 0.0.86: {ratio:.2f} (median), {best:.2f} (best run)")
        print(textwrap.fill("warm ratio target >= 20x; cold ratio target <= 0.4", 100))


if __name__ == "__main__":
    raise SystemExit(main())
