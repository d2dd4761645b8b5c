"""``workflow backfill NAME --start T --end T [--parallel N] [--dry-run] [--json]``.

Runs every release of the pipeline's schedules in ``[start, end)`` in this
process, each exactly once across this command, earlier backfills and the
daemon (policies: :mod:`ddeutil.workflow.scheduling.backfill`). Output: on a
terminal a progress bar redrawn in place (done/total, failed, rate, ETA);
otherwise (or with ``--json``) one JSON line per release as it ends, then a
summary line. Log lines go to stderr (on a terminal, warnings and errors only).

The first SIGINT (Ctrl-C) or SIGTERM stops claiming and waits for the runs in
flight; a second one cancels them (recorded CANCELLED, shell process groups
killed). Running the same command again continues: claimed releases are
skipped and counted by who claimed them.

Exit codes: 0 every run started here succeeded; 1 some failed or were
cancelled; 2 bad input; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TextIO

from ..clock import Clock, SystemClock
from . import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliContext, on_stop_signals, positive_int

if TYPE_CHECKING:
    from ..loader import Loader
    from ..scheduling.backfill import Backfill, BackfillRange, BackfillSummary, Outcome
    from ..store.base import RunStore

__all__ = ["default_clock", "drive", "register", "send_logs_to_stderr"]

EXIT_INTERRUPTED = 130


def default_clock() -> Clock:
    """The clock of claims and of "now" (tests replace this function)."""
    return SystemClock()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``backfill`` to the parser."""
    p = sub.add_parser(
        "backfill",
        help="run a pipeline's past releases in a range, each exactly once",
        description="Run every release of the pipeline's schedules in [START, END) in this "
        "process, skipping releases already claimed (by the daemon or an earlier backfill). "
        "Naive times are read in the schedules' zone (WORKFLOW_CORE_TIMEZONE when they differ). "
        "Ctrl-C once stops claiming and waits; twice cancels the runs in flight.",
    )
    p.add_argument("name", metavar="NAME", help="pipeline template name")
    p.add_argument("--start", required=True, help="first instant, inclusive (ISO 8601)")
    p.add_argument("--end", required=True, help="last instant, exclusive (ISO 8601, or 'now')")
    p.add_argument(
        "--parallel",
        type=positive_int,
        default=None,
        help="runs at once (default 1; required above 1000 releases; at most 256)",
    )
    p.add_argument("--dry-run", action="store_true", help="list the releases, claim nothing")
    p.add_argument("--json", action="store_true", help="JSON lines even on a terminal")
    p.set_defaults(handler=_cmd_backfill)


def _cmd_backfill(args: argparse.Namespace, ctx: CliContext) -> int:
    from ..loader import Loader
    from ..scheduling.backfill import BackfillInputError, load_entry, prepare
    from ..store import open_store

    terminal = ctx.out.isatty() and not args.json
    send_logs_to_stderr(args, ctx, quiet=terminal)
    clock = default_clock()
    loader = Loader.from_settings(ctx.settings)
    try:
        entry = load_entry(args.name, loader, ctx.settings)
        checked = prepare(
            entry,
            start=args.start,
            end=args.end,
            parallel=args.parallel,
            now=clock.now(),
            settings=ctx.settings,
        )
    except BackfillInputError as exc:
        print(f"workflow backfill: {ctx.masker.text(exc.message)}", file=sys.stderr)
        return EXIT_USAGE
    store = open_store(ctx.settings.api_db_url)
    try:
        if args.dry_run:
            return _dry_run(ctx, store, checked, terminal)
        return _run(
            args, ctx, store=store, checked=checked, loader=loader, clock=clock, terminal=terminal
        )
    finally:
        store.close()


def _dry_run(ctx: CliContext, store: RunStore, checked: BackfillRange, terminal: bool) -> int:
    from ..scheduling.backfill import with_claims

    out = ctx.out
    free = 0
    for release, holder in with_claims(store, checked.releases()):
        if holder is None:
            free += 1
        if terminal:
            what = (
                "would run"
                if holder is None
                else f"claimed by {holder.trigger.value} run {holder.run_id} "
                f"({holder.status.value})"
            )
            out.write(f"{release.logical_date.isoformat()}  {what}\n")
        else:
            line: dict[str, Any] = {
                "release": release.logical_date.isoformat(),
                "at": release.at.isoformat(),
                "schedule": release.schedule,
                "claimed": holder is not None,
            }
            if holder is not None:
                line |= {
                    "run_id": holder.run_id,
                    "status": holder.status.value,
                    "claimed_by": holder.trigger.value,
                }
            out.write(json.dumps(line) + "\n")
    summary = {
        "summary": True,
        "dry_run": True,
        "pipeline": checked.entry.name,
        "start": checked.start.isoformat(),
        "end": checked.end.isoformat(),
        "zone": str(checked.zone),
        "total": checked.total,
        "would_run": free,
        "claimed": checked.total - free,
    }
    if terminal:
        out.write(
            f"{checked.total} release(s) of {checked.entry.name} in [{checked.start.isoformat()}, "
            f"{checked.end.isoformat()}): {free} would run, {checked.total - free} already "
            "claimed\n"
        )
    else:
        out.write(json.dumps(summary) + "\n")
    out.flush()
    return EXIT_OK


def _run(
    args: argparse.Namespace,
    ctx: CliContext,
    *,
    store: RunStore,
    checked: BackfillRange,
    loader: Loader,
    clock: Clock,
    terminal: bool,
) -> int:
    from ..scheduling.backfill import Backfill

    def make(on_outcome: Callable[[Outcome], None]) -> Backfill:
        return Backfill(
            store=store,
            settings=ctx.settings,
            entry=checked.entry,
            releases=checked.releases(),
            parallel=args.parallel or 1,
            clock=clock,
            masker=ctx.masker,
            loader=loader,
            on_outcome=on_outcome,
        )

    return drive(ctx, make, total=checked.total, terminal=terminal)


def drive(
    ctx: CliContext,
    make: Callable[[Callable[[Outcome], None]], Backfill],
    *,
    total: int,
    terminal: bool,
    again: str = "run the same command again to continue",
) -> int:
    """Run the backfill ``make`` builds (given the outcome callback) with progress and signals.

    On a terminal a progress bar over ``total`` releases, otherwise JSON lines;
    the first SIGINT/SIGTERM stops claiming, the second cancels. ``again`` tells
    an interrupted user how to continue. Returns the exit code.
    """
    view: _Bar | _Lines = _Bar(ctx.out, total, again) if terminal else _Lines(ctx.out)
    backfill = make(view.outcome)
    with _stop_on_signals(backfill):
        summary = backfill.run()
    view.done(summary)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.failed == 0 and summary.cancelled == 0 else EXIT_FAILED


def _stop_on_signals(backfill: Backfill) -> AbstractContextManager[None]:
    """First SIGINT/SIGTERM stops claiming, the second cancels (main thread only)."""

    def handle(name: str) -> None:
        if backfill.stopping:
            backfill.cancel(f"{name} received twice")
        else:
            backfill.stop()

    return on_stop_signals(handle)


class _Lines:
    """One JSON line per release as it ends, then the summary line."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def outcome(self, outcome: Outcome) -> None:
        self._write(outcome.to_dict())

    def done(self, summary: BackfillSummary) -> None:
        self._write(summary.to_dict())

    def _write(self, data: dict[str, Any]) -> None:
        with self._lock:
            self._out.write(json.dumps(data, default=str) + "\n")
            self._out.flush()


class _Bar:
    """A one-line progress bar redrawn in place: done/total, failed, rate, ETA."""

    WIDTH = 30

    def __init__(self, out: TextIO, total: int, again: str) -> None:
        self._out = out
        self._total = total
        self._again = again
        self._done = 0
        self._failed = 0
        self._skipped = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._draw()

    def outcome(self, outcome: Outcome) -> None:
        with self._lock:
            self._done += 1
            if outcome.skipped:
                self._skipped += 1
            elif outcome.status is None or outcome.status.value != "SUCCESS":
                self._failed += 1
            self._draw()

    def _draw(self) -> None:
        total = max(self._total, 1)
        filled = self.WIDTH * self._done // total
        elapsed = max(time.monotonic() - self._started, 1e-9)
        ran = self._done - self._skipped
        rate = ran / elapsed
        left = self._total - self._done
        eta = f"{left / rate:,.0f}s" if rate > 0 else "?"
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self._out.write(
            f"\r[{bar}] {self._done}/{self._total} failed {self._failed} "
            f"skipped {self._skipped} {rate:.1f}/s ETA {eta}\x1b[K"
        )
        self._out.flush()

    def done(self, summary: BackfillSummary) -> None:
        with self._lock:
            self._draw()
            self._out.write("\n")
            self._out.write(_summary_text(summary, self._again) + "\n")
            self._out.flush()


def _summary_text(summary: BackfillSummary, again: str) -> str:
    text = (
        f"backfill of {summary.pipeline}: {summary.ran} ran ({summary.succeeded} succeeded, "
        f"{summary.failed} failed, {summary.cancelled} cancelled); skipped as already claimed: "
        f"{summary.skipped_schedule} by the daemon's scheduled runs, "
        f"{summary.skipped_backfill} by earlier backfills"
    )
    if summary.interrupted:
        text += f"; interrupted: {summary.not_reached} release(s) not reached ({again})"
    return text


def send_logs_to_stderr(args: argparse.Namespace, ctx: CliContext, *, quiet: bool) -> None:
    """Keep stdout for the output; on a terminal show only warnings (the bar stays readable).

    The root logger keeps its level, so per-run log files still get every line.
    """
    from ..logs import configure_logging

    chosen = args.log_format
    text = chosen == "text" or (chosen == "auto" and sys.stderr.isatty())
    handler = configure_logging(
        fmt="text" if text else "json",
        level=args.log_level or ctx.settings.log_level,
        masker=ctx.masker,
        stream=sys.stderr,
    )
    if quiet and args.log_level is None:
        handler.setLevel(logging.WARNING)
