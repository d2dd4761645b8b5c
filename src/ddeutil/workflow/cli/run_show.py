"""``workflow runs show RUN_ID [--json]``: one run of the run store, in full.

Prints the run's status, pipeline, trigger, owner, ``rerun_of``, release,
params, its created/started/ended times with the wait (created -> started) and
the run time (started -> ended), its error and each job's status and duration.
Policies:

* **Read only**: the store is opened with ``create=False``; a missing SQLite
  file is an error naming its path, never a new empty store.
* **Exit codes**: 0 for a known run, 2 (usage) for an id the store does not know.
* **Masked**: params, errors and every printed line go through the CLI's
  :class:`~ddeutil.workflow.masking.Masker`.
* **Job status from the context**: each job's ``jobs.<id>.status``, its
  duration from its spans in the run's ``timeline`` (see :func:`job_rows`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..store.records import RunRecord
from . import EXIT_OK, EXIT_USAGE, CliContext, run_store

__all__ = ["job_rows", "register_show"]


def register_show(runs_parser: argparse.ArgumentParser) -> None:
    """Add the ``show`` sub-verb under ``workflow runs`` (listing stays the default)."""
    sub = runs_parser.add_subparsers(dest="runs_command", metavar="{show}")
    sub.required = False
    p = sub.add_parser(
        "show",
        help="one run in full: times, params, error and each job's status",
        description="Print one run of the run store: status, pipeline, trigger, owner, "
        "params (masked), created/started/ended with durations, error and each job's "
        "status. Exit 2 when the store does not know RUN_ID.",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--json", action="store_true", help="print the run as one JSON object")
    p.set_defaults(handler=_cmd_show)


def _cmd_show(args: argparse.Namespace, ctx: CliContext) -> int:
    with run_store(ctx, create=False) as store:
        run = store.get_run(args.run_id)
    if run is None:
        print(f"workflow: error: no run {args.run_id!r} in the run store", file=sys.stderr)
        return EXIT_USAGE
    jobs = job_rows(run.context)
    if args.json:
        data = run.to_dict()
        data.pop("context")
        data["wait_seconds"] = _seconds(run.created, run.started)
        data["run_seconds"] = _seconds(run.started, run.ended)
        data["jobs"] = jobs
        print(json.dumps(ctx.masker.data(data), indent=2, default=str), file=ctx.out)
        return EXIT_OK
    for line in _text(run, jobs, ctx):
        print(ctx.masker.text(line), file=ctx.out)
    return EXIT_OK


def _text(run: RunRecord, jobs: list[dict[str, Any]], ctx: CliContext) -> list[str]:
    release = "-"
    if run.release is not None:
        release = f"{run.release.schedule} at {run.release.at.isoformat()}"
    wait, took = _seconds(run.created, run.started), _seconds(run.started, run.ended)
    params = json.dumps(ctx.masker.data(dict(run.params)), default=str, sort_keys=True)
    fields = [
        ("run", run.run_id),
        ("pipeline", run.pipeline),
        ("status", run.status.value),
        ("trigger", run.trigger.value),
        ("owner", run.owner or "-"),
        ("rerun of", run.rerun_of or "-"),
        ("release", release),
        ("params", params),
        ("created", run.created.isoformat()),
        ("started", _iso(run.started) + ("" if wait is None else f"  (waited {wait:.1f}s)")),
        ("ended", _iso(run.ended) + ("" if took is None else f"  (took {took:.1f}s)")),
        ("error", run.error or "-"),
    ]
    lines = [f"{name + ':':<10}{value}" for name, value in fields]
    if jobs:
        width = max(len(job["job"]) for job in jobs)
        lines.append("jobs:")
        for job in jobs:
            duration = job["duration_seconds"]
            shown = "-" if duration is None else f"{duration:.1f}s"
            why = "" if job["reason"] is None else f"  {job['reason']}"
            lines.append(f"  {job['job']:<{width}}  {job['status']:<9}  {shown:>7}{why}")
    return lines


def job_rows(context: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Each job of a run's ``context`` with its status, duration and reason.

    The status is the job's ``jobs.<id>.status``; the duration spans the job's
    own spans in ``timeline`` (``None`` without one: reused by a rerun, never
    started); ``reason`` says why a job was skipped or cancelled. Jobs come in
    the order of the run's graph (``needs``), then any other job of ``jobs``; a
    job of the graph missing from ``jobs`` is ``not run``. A context of another
    shape gives what it can (never raises).
    """
    if not isinstance(context, Mapping):
        return []
    jobs_ctx = context.get("jobs")
    jobs_ctx = jobs_ctx if isinstance(jobs_ctx, Mapping) else {}
    needs = context.get("needs")
    order = [str(j) for j in needs] if isinstance(needs, Mapping) else []
    order += [str(j) for j in jobs_ctx if str(j) not in order]
    spans: dict[str, list[Mapping[str, Any]]] = {}
    timeline = context.get("timeline")
    raw = timeline.get("spans") if isinstance(timeline, Mapping) else None
    for span in raw if isinstance(raw, list) else []:
        if isinstance(span, Mapping) and span.get("stage") is None and "job" in span:
            spans.setdefault(str(span["job"]), []).append(span)
    rows = []
    for job in order:
        entry = jobs_ctx.get(job)
        entry = entry if isinstance(entry, Mapping) else {}
        own = spans.get(job, [])
        start = min((t for t in (_parse(s.get("start")) for s in own) if t), default=None)
        end = max((t for t in (_parse(s.get("end")) for s in own) if t), default=None)
        reason = entry.get("skipped") or entry.get("cancelled")
        rows.append(
            {
                "job": job,
                "status": str(entry.get("status", "not run")),
                "duration_seconds": _seconds(start, end),
                "reason": None if reason is None else str(reason),
            }
        )
    return rows


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _iso(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat()
