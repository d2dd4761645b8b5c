"""Operations verbs: ``scheduler``, ``health``, ``runs`` and ``logs``.

* ``workflow scheduler [--once]`` runs the daemon in the foreground, exactly like
  ``python -m ddeutil.workflow.app`` (see :mod:`ddeutil.workflow.app.daemon`).
* ``workflow health [--json]`` prints the age of the newest heartbeat of a live
  scheduler daemon and exits 0 when it is fresher than
  ``WORKFLOW_APP_HEALTH_STALE`` seconds, 1 when it is stale, when no daemon is
  live or the store cannot be read (Docker ``HEALTHCHECK``, systemd); the status
  is ``stopped`` (still exit 1) when no daemon is live and the newest one left
  cleanly (SIGTERM, ``--once``), whatever its heartbeat's age. Below
  that line it lists every daemon the store knows (see :func:`~ddeutil.workflow.store.fleet.daemon_views`).
* ``workflow runs [--pipeline NAME] [--status S] [--limit N] [--json]`` lists
  run records from the run store, newest first, with the daemon that owns each
  scheduled run; ``workflow runs show RUN_ID [--json]`` prints one run in full
  (see :mod:`.run_show`).
* ``workflow logs RUN_ID [--json]`` prints the per-run log file (written under
  ``WORKFLOW_LOG_PATH`` when ``WORKFLOW_LOG_ENABLE_WRITE`` is on); exit 2 for a
  run the store does not know and that has no log file, 1 for a known run
  without a log file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..app.options import add_arguments
from ..clock import Clock, SystemClock
from ..errors import StoreError
from ..logs import run_log_path
from ..result import Status
from ..store.base import RunFilter, RunRecord
from ..store.fleet import DaemonView, daemon_views
from . import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliContext, positive_int, run_store
from .run_show import register_show

__all__ = ["default_clock", "register"]


def default_clock() -> Clock:
    """The clock ``health`` reads "now" from (tests replace this function)."""
    return SystemClock()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``scheduler``, ``health``, ``runs`` and ``logs`` to the parser."""
    p = sub.add_parser(
        "scheduler",
        help="run the scheduler daemon in the foreground",
        description="Run the scheduler daemon in the foreground (like python -m "
        "ddeutil.workflow.app). SIGTERM/SIGINT stop it cleanly, SIGHUP reloads the conf.",
    )
    add_arguments(p)
    p.set_defaults(handler=_cmd_scheduler)

    p = sub.add_parser(
        "health",
        help="exit 0 when a scheduler heartbeat is fresh, 1 otherwise",
        description="Report the age of the newest heartbeat of a live scheduler daemon and "
        "list every daemon the run store knows. Exit 0 when that heartbeat is fresher than "
        "WORKFLOW_APP_HEALTH_STALE seconds, 1 when stale, missing or no daemon is live "
        "(status `stopped` when the newest daemon left cleanly).",
    )
    p.add_argument("--json", action="store_true", help="print the report as a JSON object")
    p.set_defaults(handler=_cmd_health)

    p = sub.add_parser(
        "runs",
        help="list run records, newest first; `runs show RUN_ID` shows one",
        description="List run records, newest first. `workflow runs show RUN_ID [--json]` "
        "prints one run in full: times, params, error and each job's status.",
    )
    p.add_argument("--pipeline", help="only runs of this pipeline")
    p.add_argument(
        "--status",
        type=str.upper,
        choices=[s.value for s in Status],
        help="only runs with this status",
    )
    p.add_argument("--limit", type=positive_int, default=20, help="most runs shown (default 20)")
    p.add_argument("--json", action="store_true", help="print the records as a JSON list")
    p.set_defaults(handler=_cmd_runs)
    register_show(p)

    p = sub.add_parser("logs", help="print the log of one run")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--json", action="store_true", help="print the raw JSON lines")
    p.set_defaults(handler=_cmd_logs)


def _cmd_scheduler(args: argparse.Namespace, ctx: CliContext) -> int:
    from ..app.daemon import serve

    return serve(ctx.settings, masker=ctx.masker, once=args.once, freeze=ctx.owns_process)


def _cmd_health(args: argparse.Namespace, ctx: CliContext) -> int:
    settings = ctx.settings
    stale = settings.app_health_stale
    try:
        with run_store(ctx, create=False) as store:
            owners = store.owners()
    except StoreError as exc:
        reason = f"cannot read the run store: {ctx.masker.text(str(exc))}"
        _health_out(args, ctx, "unhealthy", reason, [])
        return EXIT_FAILED
    everyone = daemon_views(
        owners,
        now=default_clock().now(),
        lease=timedelta(seconds=settings.app_lease_seconds),
        stale=timedelta(seconds=stale),
    )
    views = [v for v in everyone if v.record.kind == "scheduler"]
    workers = [v for v in everyone if v.record.kind == "worker"]
    if not views:
        headline = "no scheduler heartbeat recorded (has the daemon ever run?)"
        _health_out(args, ctx, "unhealthy", headline, views, workers=workers)
        return EXIT_FAILED
    live = [v for v in views if v.live]
    newest = max(live or views, key=lambda v: v.record.heartbeat)
    beat = (
        f"last heartbeat {newest.age:.1f}s ago at {newest.record.heartbeat.isoformat()} "
        f"by {newest.record.owner}"
    )
    if not live and newest.state == "stopped":
        status = "stopped"
        ended = newest.record.ended or newest.record.heartbeat
        headline = (
            f"the scheduler {newest.record.owner} stopped cleanly at "
            f"{ended.isoformat(timespec='seconds')}; no daemon is live"
        )
    elif not live:
        status = "unhealthy"
        headline = f"no live scheduler; the {beat} ({newest.state})"
    else:
        status = "stale" if newest.stale else "healthy"
        headline = f"{beat} (stale after {stale:g}s)"
    _health_out(args, ctx, status, headline, views, workers=workers)
    return EXIT_OK if status == "healthy" else EXIT_FAILED


def _health_out(
    args: argparse.Namespace,
    ctx: CliContext,
    status: str,
    headline: str,
    views: Sequence[DaemonView],
    *,
    workers: Sequence[DaemonView] = (),
) -> None:
    settings = ctx.settings
    if args.json:
        report = {
            "status": status,
            "message": headline,
            "stale_after_seconds": settings.app_health_stale,
            "lease_seconds": settings.app_lease_seconds,
            "schedulers": [v.to_dict() for v in views],
            "workers": [v.to_dict() for v in workers],
        }
        print(json.dumps(ctx.masker.data(report), indent=2), file=ctx.out)
        return
    print(f"{status}: {headline}", file=ctx.out)
    if views:
        _owner_table(ctx, "daemons", views)
    if workers:
        _owner_table(ctx, "workers", workers)


def _owner_table(ctx: CliContext, what: str, views: Sequence[DaemonView]) -> None:
    settings = ctx.settings
    current = [v for v in views if v.current]
    earlier = [v for v in views if not v.current]
    head = ("OWNER", "HOST", "PID", "STATE", "LAST HEARTBEAT", "AGE", "TAKEN BY")
    rows = [head, *(_daemon_row(v) for v in current), *(_daemon_row(v) for v in earlier)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        return ctx.masker.text(("  " + "  ".join(cells)).rstrip())

    print(f"{what} (unresponsive after {settings.app_lease_seconds:g}s):", file=ctx.out)
    print(line(head), file=ctx.out)
    for view in current:
        print(line(_daemon_row(view)), file=ctx.out)
    if earlier:
        print(
            f"ended more than {settings.app_health_stale:g}s ago (kept for the record):",
            file=ctx.out,
        )
        for view in earlier:
            print(line(_daemon_row(view)), file=ctx.out)


def _daemon_row(view: DaemonView) -> tuple[str, ...]:
    record = view.record
    return (
        record.owner,
        record.host,
        str(record.pid),
        view.state,
        record.heartbeat.isoformat(timespec="seconds"),
        f"{view.age:.1f}s",
        record.taken_by or "-",
    )


def _cmd_runs(args: argparse.Namespace, ctx: CliContext) -> int:
    with run_store(ctx, create=False) as store:
        status = Status(args.status) if args.status else None
        where = RunFilter(pipeline=args.pipeline, status=status)
        runs = store.list_runs(where, limit=args.limit)
    if args.json:
        data = [ctx.masker.data(run.to_dict()) for run in runs]
        print(json.dumps(data, indent=2, default=str), file=ctx.out)
        return EXIT_OK
    if not runs:
        print("no runs", file=ctx.out)
        return EXIT_OK
    rows: list[tuple[str, ...]] = [
        ("RUN ID", "PIPELINE", "TRIGGER", "STATUS", "RELEASE", "DURATION", "OWNER", "ERROR")
    ]
    rows.extend(_row(run) for run in runs)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        print(ctx.masker.text("  ".join([*cells, row[-1]]).rstrip()), file=ctx.out)
    return EXIT_OK


def _row(run: RunRecord) -> tuple[str, ...]:
    release = run.release.at.isoformat(timespec="minutes") if run.release else "-"
    return (
        run.run_id,
        run.pipeline,
        run.trigger.value,
        run.status.value,
        release,
        _duration(run.started, run.ended),
        run.owner or "-",
        (run.error or "").splitlines()[0] if run.error else "",
    )


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds():.1f}s"


def _cmd_logs(args: argparse.Namespace, ctx: CliContext) -> int:
    path = run_log_path(ctx.settings.log_path, args.run_id)
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            _print_log(args, ctx, fh)
        return EXIT_OK
    with run_store(ctx, create=False) as store:  # a Celery run's log is kept here
        known = store.get_run(args.run_id)
        kept = store.run_log(args.run_id) if known is not None else None
    if known is None:
        print(f"workflow: error: no run {args.run_id!r} in the run store", file=sys.stderr)
        return EXIT_USAGE
    if kept is not None:
        _print_log(args, ctx, kept.splitlines())
        return EXIT_OK
    why = "" if ctx.settings.log_enable_write else " (WORKFLOW_LOG_ENABLE_WRITE is off)"
    print(f"run {args.run_id} ({known.status.value}) has no log file{why}", file=ctx.out)
    return EXIT_FAILED


def _print_log(args: argparse.Namespace, ctx: CliContext, lines: Iterable[str]) -> None:
    for raw in lines:
        line = raw.rstrip("\n")
        print(ctx.masker.text(line if args.json else _render(line)), file=ctx.out)


def _render(line: str) -> str:
    try:
        data: Any = json.loads(line)
    except ValueError:
        return line
    if not isinstance(data, dict):
        return line
    where = "/".join(str(data[k]) for k in ("job", "stage") if data.get(k))
    head = f"{data.get('time', '')} {data.get('level', ''):<7}"
    return (
        f"{head} [{where}] {data.get('message', '')}"
        if where
        else f"{head} {data.get('message', '')}"
    )
