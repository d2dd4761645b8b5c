"""``workflow cancel RUN_ID [--reason TEXT] [--wait SECONDS]``.

Asks the run store to cancel one run, wherever it executes (see
:mod:`ddeutil.workflow.store.cancel`), and says what happened:

* a PENDING run is recorded CANCELLED at once (exit 0);
* a RUNNING run's cancel is asked of whoever executes it, named by its owner
  (a daemon, a Celery worker, a ``workflow run`` client, or the API process for
  a run nobody holds). Without ``--wait`` the command returns at once (exit 0);
  with ``--wait N`` it re-reads the run until it ended, at most N seconds, and
  prints its final status (exit 0 when it ended CANCELLED, 1 when it ended
  otherwise or was still running after N seconds);
* a run that already ended is left alone: its status is printed, exit 1;
* an unknown run id: exit 2. A run store that does not answer: exit 2.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable

from ..clock import Clock, SystemClock
from ..errors import StoreError
from ..result import Status
from ..store import open_store
from ..store.base import RunRecord, RunStore
from ..store.cancel import DEFAULT_REASON, CancelOutcome, ask_cancel
from . import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliContext, existing_store

__all__ = ["MAX_WAIT", "WAIT_POLL", "default_clock", "register"]

MAX_WAIT = 86_400.0
"""Longest ``--wait`` accepted (a day)."""
WAIT_POLL = 0.2
"""Seconds between two reads of the run while ``--wait`` waits."""
MAX_REASON = 1_000
"""Longest ``--reason`` accepted, in characters."""


def default_clock() -> Clock:
    """The clock the request is stamped with (tests replace this function)."""
    return SystemClock()


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {raw!r}") from None
    if not 0 <= value <= MAX_WAIT:
        raise argparse.ArgumentTypeError(f"expected 0 to {MAX_WAIT:g} seconds, got {raw!r}")
    return value


def _reason(raw: str) -> str:
    if len(raw) > MAX_REASON:
        raise argparse.ArgumentTypeError(f"at most {MAX_REASON} characters, got {len(raw)}")
    return raw


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cancel`` to the parser."""
    p = sub.add_parser(
        "cancel",
        help="cancel a run, wherever it executes",
        description="Cancel a run: a PENDING one at once, a RUNNING one by asking whoever "
        "executes it (daemon, Celery worker, `workflow run`, API) through the run store. "
        "Exit 0 when cancelled or asked, 1 when it had already ended (or --wait saw it end "
        "otherwise, or not end), 2 for an unknown run id.",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument(
        "--reason", type=_reason, default=DEFAULT_REASON, help="why (recorded with the run)"
    )
    p.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for a running run to end and print its final status",
    )
    p.set_defaults(handler=_cmd_cancel)


def _cmd_cancel(args: argparse.Namespace, ctx: CliContext) -> int:
    text = ctx.masker.text
    try:
        store = open_store(existing_store(ctx.settings))
    except StoreError as exc:
        print(text(f"workflow cancel: cannot open the run store: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    try:
        outcome = ask_cancel(store, args.run_id, now=default_clock().now(), reason=args.reason)
        if outcome is None:
            print(text(f"workflow cancel: no run with id {args.run_id!r}"), file=sys.stderr)
            return EXIT_USAGE
        print(text(_describe(outcome)), file=ctx.out)
        if outcome.what == "ended":
            return EXIT_FAILED
        if outcome.what == "cancelled" or args.wait <= 0:
            return EXIT_OK
        record = wait_ended(store, args.run_id, args.wait)
    except StoreError as exc:
        print(text(f"workflow cancel: the run store does not answer: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.close()
    if record is None or not record.status.is_terminal:
        print(f"run {args.run_id} still RUNNING after {args.wait:g}s", file=ctx.out)
        return EXIT_FAILED
    ended = f"run {args.run_id} ended {record.status.value}"
    print(text(f"{ended}: {record.error}" if record.error else ended), file=ctx.out)
    return EXIT_OK if record.status is Status.CANCELLED else EXIT_FAILED


def _describe(outcome: CancelOutcome) -> str:
    run = f"run {outcome.run_id}"
    if outcome.what == "cancelled":
        return f"{run} was PENDING: recorded CANCELLED (it will not start)"
    if outcome.what == "ended":
        return f"{run} already ended: {outcome.status.value}; nothing to cancel"
    who = f"owner {outcome.owner}" if outcome.owner else "the API process (no owner)"
    return f"{run} is RUNNING: cancel asked of {who}; it ends CANCELLED when that one notices"


def wait_ended(
    store: RunStore,
    run_id: str,
    timeout: float,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    pause: Callable[[float], object] | None = None,
) -> RunRecord | None:
    """Re-read ``run_id`` every :data:`WAIT_POLL` until it ended or ``timeout`` passed.

    Returns the last record read (``None`` if the run disappeared).
    """
    sleep = pause if pause is not None else threading.Event().wait
    deadline = monotonic() + timeout
    while True:
        record = store.get_run(run_id)
        if record is None or record.status.is_terminal:
            return record
        left = deadline - monotonic()
        if left <= 0:
            return record
        sleep(min(WAIT_POLL, left))
