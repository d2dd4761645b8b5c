"""``workflow prune [--older-than DAYS] [--dry-run] [--json]``: apply the retention now.

Deletes the ended runs created more than DAYS ago (default
``WORKFLOW_RUN_RETENTION_DAYS``), their release claims and their log files
under ``WORKFLOW_LOG_PATH``, in bounded batches, with the policies of
:mod:`ddeutil.workflow.store.retention` (running runs and each pipeline's
newest run stay). Safe to run while daemons run, and from cron.

Exit codes: 0 done (or nothing to do), 1 the run store failed (batches
committed before stay deleted), 2 bad input: ``--older-than`` not a positive
number of days, or no ``--older-than`` while the setting is ``0`` (keep forever).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from ..clock import Clock, SystemClock
from ..errors import StoreError
from ..settings import MAX_RETENTION_DAYS
from ..store import open_store
from ..store.retention import PruneReport, cutoff, prune
from . import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliContext, existing_store

__all__ = ["days", "default_clock", "register"]


def default_clock() -> Clock:
    """The clock the cutoff is taken from (tests replace this function)."""
    return SystemClock()


def days(raw: str) -> float:
    """An argparse ``type=``: a positive number of days, at most 100 years."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days, got {raw!r}") from None
    if not (value > 0 and math.isfinite(value)) or value > MAX_RETENTION_DAYS:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of days, at most {MAX_RETENTION_DAYS}, got {raw!r}"
        )
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``prune`` to the parser."""
    p = sub.add_parser(
        "prune",
        help="delete ended runs (records, claims, log files) older than the retention",
        description="Delete the ended runs created more than DAYS ago, with their release "
        "claims and log files, in short batches. Running and pending runs and the newest run "
        "of each pipeline are kept. A pruned release can be claimed again (a backfill over "
        "it runs it again).",
    )
    p.add_argument(
        "--older-than",
        type=days,
        metavar="DAYS",
        help="age in days, may be fractional (default WORKFLOW_RUN_RETENTION_DAYS)",
    )
    p.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    p.add_argument("--json", action="store_true", help="print the report as a JSON object")
    p.set_defaults(handler=_cmd_prune)


def _cmd_prune(args: argparse.Namespace, ctx: CliContext) -> int:
    age: float | None = args.older_than
    if age is None:
        age = ctx.settings.run_retention_days
    if age is None:
        print(
            "workflow prune: WORKFLOW_RUN_RETENTION_DAYS is 0 (keep forever); "
            "pass --older-than DAYS to prune anyway",
            file=sys.stderr,
        )
        return EXIT_USAGE
    before = cutoff(default_clock().now(), age)
    try:
        store = open_store(existing_store(ctx.settings))
        try:
            report = prune(
                store, before=before, log_dir=ctx.settings.log_path, dry_run=args.dry_run
            )
        finally:
            store.close()
    except StoreError as exc:
        print(f"workflow prune: run store error: {ctx.masker.text(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report.to_dict(), sort_keys=True), file=ctx.out)
    else:
        print(_text(report), file=ctx.out)
    return EXIT_OK


def _text(report: PruneReport) -> str:
    when = report.before.isoformat()
    if report.dry_run:
        return f"dry run: {report.runs} ended runs created before {when} would be deleted"
    return (
        f"deleted {report.runs} ended runs created before {when} and {report.log_files} log "
        f"files in {report.batches} batches, {report.elapsed:.3f}s "
        f"(longest batch {report.longest_batch * 1000:.1f} ms)"
    )
