"""``workflow pause NAME`` and ``workflow unpause NAME [--catchup]``.

A pause is kept in the run store, so every daemon on it honours it at its next
tick, without editing YAML: the releases of a paused pipeline that fall at or
after the instant it was paused are recorded SKIPPED (``skipped: the pipeline
is paused``), never run. Unpausing lets the next releases run; the skipped ones
stay skipped unless ``--catchup`` asks to run them (oldest first, exactly once,
in the foreground, like ``workflow backfill``).

Exit codes: 0 done (also when the pipeline already was in the asked state),
1 a catch-up run failed, 2 bad input (a pipeline the conf folder does not
have), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..clock import Clock, SystemClock
from ..errors import StoreError, TemplateNotFound
from . import positive_int, run_store, sqlite_file

if TYPE_CHECKING:
    from ..scheduling.backfill import Backfill, Outcome
    from ..settings import Settings
    from . import CliContext

__all__ = ["default_clock", "paused_pipelines", "register"]

EXIT_OK = 0
EXIT_USAGE = 2


def default_clock() -> Clock:
    """The clock a pause is stamped with (tests replace this function)."""
    return SystemClock()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pause`` and ``unpause`` to the parser."""
    p = sub.add_parser(
        "pause",
        help="stop a pipeline's schedules (kept in the run store; every daemon honours it)",
        description="Pause a pipeline: from the next tick of every daemon, its releases are "
        "recorded skipped (paused) until `workflow unpause`.",
    )
    p.add_argument("name", metavar="NAME", help="pipeline name")
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_pause)

    p = sub.add_parser(
        "unpause",
        help="resume a paused pipeline's schedules",
        description="Resume a paused pipeline. The releases skipped during the pause stay "
        "skipped unless --catchup runs them now, oldest first, each exactly once.",
    )
    p.add_argument("name", metavar="NAME", help="pipeline name")
    p.add_argument(
        "--catchup",
        action="store_true",
        help="run the releases the pause skipped, in the foreground (like workflow backfill)",
    )
    p.add_argument(
        "--since",
        metavar="T",
        help="with --catchup: catch up the releases skipped (paused) since T (ISO 8601); "
        "default: since the pause began, or ever when the pipeline is no longer paused",
    )
    p.add_argument(
        "--parallel",
        type=positive_int,
        default=None,
        help="with --catchup: runs at once (default 1; required above 1000 releases)",
    )
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON")
    p.set_defaults(handler=_cmd_unpause)


def _is_pipeline(ctx: CliContext, name: str) -> bool:
    """Whether the conf folder has a pipeline called ``name`` (a broken one counts)."""
    from ..loader import Loader

    loader = Loader.from_settings(ctx.settings)
    try:
        template = loader.get(name)
    except TemplateNotFound as exc:
        return "cannot be used" in exc.message  # broken: still the pipeline's name
    return template.type == "Pipeline"


def _print(ctx: CliContext, as_json: bool, data: dict[str, Any], line: str) -> None:
    ctx.out.write((json.dumps(data) if as_json else line) + "\n")


def _cmd_pause(args: argparse.Namespace, ctx: CliContext) -> int:
    if not _is_pipeline(ctx, args.name):
        return _unknown(ctx, args.name)
    now = default_clock().now()
    with run_store(ctx) as store:
        fresh = store.pause(args.name, now=now)
        since = store.paused().get(args.name, now)
    data = {"pipeline": args.name, "paused": True, "paused_at": since.isoformat(), "new": fresh}
    if fresh:
        line = (
            f"pipeline {args.name!r} paused at {since.isoformat()}: from the next tick its "
            f"releases are recorded skipped (paused); `workflow unpause {args.name}` resumes it"
        )
    else:
        line = f"pipeline {args.name!r} was already paused (since {since.isoformat()})"
    _print(ctx, args.as_json, data, line)
    return EXIT_OK


def _cmd_unpause(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.catchup:
        return _unpause_and_catch_up(args, ctx)
    with run_store(ctx) as store:
        since = store.unpause(args.name)
    if since is None:
        if not _is_pipeline(ctx, args.name):
            return _unknown(ctx, args.name)
        data = {"pipeline": args.name, "paused": False, "paused_at": None}
        _print(ctx, args.as_json, data, f"pipeline {args.name!r} was not paused")
        return EXIT_OK
    data = {"pipeline": args.name, "paused": False, "paused_at": since.isoformat()}
    line = (
        f"pipeline {args.name!r} unpaused (paused since {since.isoformat()}); the releases "
        "skipped during the pause stay skipped (--catchup runs them)"
    )
    _print(ctx, args.as_json, data, line)
    return EXIT_OK


def _unpause_and_catch_up(args: argparse.Namespace, ctx: CliContext) -> int:
    """Unpause, then run the releases the pause skipped (like a backfill, in the foreground).

    Everything is checked before the pause is lifted: a refused catch-up leaves
    the pipeline paused.
    """
    from ..loader import Loader
    from ..scheduling.backfill import (
        LARGE_RANGE,
        Backfill,
        BackfillInputError,
        load_entry,
        parse_instant,
        zone_of,
    )
    from ..scheduling.catchup import BEGINNING, count_paused, paused_releases
    from ..scheduling.tick_report import PAUSED_REASON
    from .backfill import drive, send_logs_to_stderr

    terminal = ctx.out.isatty() and not args.as_json
    send_logs_to_stderr(args, ctx, quiet=terminal)
    clock = default_clock()
    now = clock.now()
    loader = Loader.from_settings(ctx.settings)
    try:
        entry = load_entry(args.name, loader, ctx.settings)
        given = (
            None
            if args.since is None
            else parse_instant(
                args.since, field="since", zone=zone_of(entry, ctx.settings.timezone), now=now
            )
        )
    except BackfillInputError as exc:
        print(f"workflow unpause: {ctx.masker.text(exc.message)}", file=sys.stderr)
        return EXIT_USAGE
    with run_store(ctx) as store:
        paused_at = store.paused().get(args.name)
        start = given or paused_at or BEGINNING
        total = count_paused(store, entry, since=start, until=now)
        if total > LARGE_RANGE and args.parallel is None:
            print(
                f"workflow unpause: the pause skipped {total:,} releases of {args.name!r}; pass "
                "--parallel N to run them (the pipeline stays paused)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        if paused_at is not None:
            store.unpause(args.name)
        head = (
            f"pipeline {args.name!r} unpaused (paused since {paused_at.isoformat()})"
            if paused_at is not None
            else f"pipeline {args.name!r} was not paused"
        )
        print(
            f"{head}; catching up {total} release(s) skipped (paused) since {start.isoformat()}",
            file=sys.stderr,
        )

        def make(on_outcome: Callable[[Outcome], None]) -> Backfill:
            return Backfill(
                store=store,
                settings=ctx.settings,
                entry=entry,
                releases=paused_releases(store, entry, since=start, until=now),
                parallel=args.parallel or 1,
                clock=clock,
                masker=ctx.masker,
                loader=loader,
                on_outcome=on_outcome,
                reclaim=PAUSED_REASON,
            )

        again = f"run `workflow unpause {args.name} --catchup --since {start.isoformat()}` to go on"
        return drive(ctx, make, total=total, terminal=terminal, again=again)


def _unknown(ctx: CliContext, name: str) -> int:
    print(
        ctx.masker.text(
            f"workflow: error: no pipeline called {name!r} in the conf folder "
            f"{ctx.settings.conf_path} (`workflow list` shows them)"
        ),
        file=sys.stderr,
    )
    return EXIT_USAGE


def paused_pipelines(settings: Settings) -> dict[str, datetime] | None:
    """The paused pipelines of the run store, or ``None`` when there is no store to ask.

    A SQLite store whose file does not exist yet is not created for this (no
    daemon ran here, so nothing is paused); a store that does not answer is
    ``None`` too: ``workflow list`` still lists the conf folder.
    """
    url = settings.api_db_url
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        return None
    from ..store import open_store

    try:
        store = open_store(url)
        try:
            return store.paused()
        finally:
            store.close()
    except StoreError:
        return None
