"""Benchmark: RSS of the daemon's parent process with 1,000 pipelines, vs APScheduler 3.

Run: ``python benchmarks/bench_parent_rss.py [--pipelines 1000] [--aps-python
/tmp/venv-aps/bin/python] [--no-daemon]``. The report goes to stdout.

Each figure is the ``VmRSS`` of a fresh process (``/proc/<pid>/status``), read
once the pipelines are loaded, after a full garbage collection:

* **catalog, helper process**: the loader and the scheduler's catalog loading a
  conf folder of N small pipelines (one ``* * * * *`` schedule each) with the
  daemon's :class:`~ddeutil.workflow.scheduling.validator_process.ProcessValidator`;
  the helper's own RSS is shown apart (it is another process).
* **catalog, in process**: the same with the default in-process validator (the
  engine is imported to validate).
* **daemon**: a real ``python -m ddeutil.workflow.app`` over a temporary root
  whose ``conf/`` holds the N pipelines (SQLite store, 2 workers), once it logged
  "scheduler running": the parent's RSS (workers, fork server and helper apart).
* **APScheduler 3.x**: a started ``BackgroundScheduler`` holding N cron jobs, in
  the separate venv ``--aps-python`` (``python -m venv /tmp/venv-aps &&
  /tmp/venv-aps/bin/pip install 'apscheduler<4'``), never installed in the project.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
          run: |
            import time
            t = time.time()
"""

CATALOG_SCRIPT = r"""
import gc, json, sys

def rss_kb(pid="self"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

if __name__ == "__main__":
    mode = sys.argv[1]
    from ddeutil.workflow.loader import Loader
    from ddeutil.workflow.scheduling.catalog import PipelineCatalog
    from ddeutil.workflow.settings import Settings

    settings = Settings.from_env()
    validator = None
    if mode == "helper":
        from ddeutil.workflow.scheduling.validator_process import ProcessValidator

        validator = ProcessValidator()
    catalog = PipelineCatalog(Loader.from_settings(settings), settings, validator)
    catalog.reload(force=False)
    gc.collect()
    engine = sorted(m for m in sys.modules if m.startswith("ddeutil.workflow.engine"))
    helper = rss_kb(validator.pid) if validator is not None and validator.pid else None
    print(json.dumps({
        "rss_kb": rss_kb(), "helper_rss_kb": helper, "entries": len(catalog),
        "engine_modules": len(engine), "pydantic": "pydantic" in sys.modules,
    }))
    if validator is not None:
        validator.close()
"""

APS_SCRIPT = r"""
import gc, json, sys, time
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

sched = BackgroundScheduler()
for i in range(int(sys.argv[1])):
    sched.add_job(lambda: None, CronTrigger.from_crontab("* * * * *"), id=f"job-{i}")
sched.start()
time.sleep(1.0)
gc.collect()
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"):
        print(json.dumps({"rss_kb": int(line.split()[1])}))
sched.shutdown(wait=False)
"""


def write_conf(conf: Path, count: int) -> None:
    conf.mkdir(parents=True, exist_ok=True)
    for start in range(0, count, 100):
        text = "\n".join(PIPELINE.format(i=i) for i in range(start, min(start + 100, count)))
        (conf / f"bench-{start:04d}.yml").write_text(text, encoding="utf-8")


def environ(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(
        WORKFLOW_ROOT_PATH=str(root),
        WORKFLOW_CORE_TIMEZONE="UTC",
        WORKFLOW_APP_PROCESS_WORKER="2",
        WORKFLOW_APP_PIPELINE_PER_PROCESS="10",
        WORKFLOW_LOG_ENABLE_WRITE="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def catalog_run(root: Path, mode: str) -> dict[str, Any]:
    script = root / "catalog_probe.py"
    script.write_text(CATALOG_SCRIPT, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(script), mode],
        env=environ(root),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def aps_run(python: str, count: int) -> dict[str, Any] | None:
    if not Path(python).exists():
        return None
    out = subprocess.run(
        [python, "-c", APS_SCRIPT, str(count)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def status_kb(pid: int, key: str = "VmRSS:") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def daemon_run(root: Path) -> dict[str, Any]:
    log = root / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ddeutil.workflow.app", "--log-format", "text"],
            env=environ(root),
            stdout=out,
            stderr=out,
        )
        try:
            deadline = time.monotonic() + 180
            while "scheduler running" not in log.read_text():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the daemon did not start:\n{log.read_text()}")
                time.sleep(0.1)
            time.sleep(3.0)  # workers and helper settled
            return {"rss_kb": status_kb(proc.pid), "hwm_kb": status_kb(proc.pid, "VmHWM:")}
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pipelines", type=int, default=1000)
    parser.add_argument("--aps-python", default="/tmp/venv-aps/bin/python")
    parser.add_argument("--no-daemon", action="store_true", help="skip the real daemon")
    args = parser.parse_args()

    def mb(kb: int) -> str:
        return f"{kb / 1024:.1f} MB"

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_conf(root / "conf", args.pipelines)
        print(f"parent RSS with {args.pipelines} pipelines on '* * * * *':")
        aps = aps_run(args.aps_python, args.pipelines)
        base = aps["rss_kb"] if aps else None

        def line(label: str, kb: int, extra: str = "") -> None:
            ratio = f"  ({kb / base:.2f}x APScheduler)" if base else ""
            print(f"  {label:<28} {mb(kb):>9}{ratio}{extra}")

        for mode, label in (
            ("helper", "catalog, helper process"),
            ("inproc", "catalog, in process"),
        ):
            got = catalog_run(root, mode)
            extra = f"  engine modules {got['engine_modules']}, pydantic {got['pydantic']}"
            if got["helper_rss_kb"]:
                extra += f", helper {mb(got['helper_rss_kb'])}"
            line(label, got["rss_kb"], extra)
        if not args.no_daemon:
            got = daemon_run(root)
            line("daemon (python -m ...app)", got["rss_kb"], f"  peak {mb(got['hwm_kb'])}")
        if aps:
            print(f"  {'APScheduler 3.x':<28} {mb(aps['rss_kb']):>9}")
        else:
            print(f"  APScheduler: {args.aps_python} not found (see the module docstring)")


if __name__ == "__main__":
    main()
