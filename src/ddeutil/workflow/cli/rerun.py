"""``workflow rerun RUN_ID [--from-job J] [--force] [--json]``: rerun from failure.

A new run of the same pipeline, recorded in the run store with ``rerun_of``
naming ``RUN_ID``, that reuses the outputs of the jobs that succeeded and runs
the failed, skipped and cancelled jobs and everything downstream of them (with
``--from-job``: that job and its downstream too); a matrix job that failed runs
only its failed combinations. It takes the earlier run's params and logical
date, and runs in the foreground like a recorded ``workflow run`` (Ctrl-C and
``workflow cancel`` cancel it). See :mod:`ddeutil.workflow.dispatch.rerun`.

Exit codes: 0 SUCCESS; 1 FAILED or CANCELLED; 2 refused or bad input (no run
store, an unknown run or job, a run not ended, nothing to rerun, or a template
changed in a way that makes reuse unsafe without ``--force``).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import RerunError
from .run import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Printer,
    cancel_on_signals,
    dumps,
    logs_to_stderr,
    print_summary,
    recording_url,
    shown,
)

if TYPE_CHECKING:
    from . import CliContext

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``rerun`` to the parser."""
    p = sub.add_parser(
        "rerun",
        help="rerun a run from its failure, reusing the outputs of the jobs that succeeded",
        description="Start a new run (linked to RUN_ID) that reuses what succeeded and runs "
        "the failed, skipped and cancelled jobs and their downstream, with the same params.",
    )
    p.add_argument("run_id", metavar="RUN_ID", help="the run to rerun (see `workflow runs`)")
    p.add_argument(
        "--from-job",
        metavar="JOB",
        help="also rerun this job and everything downstream of it, even if it succeeded",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="rerun even though the template changed (removed jobs, changed needs)",
    )
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(handler=_cmd_rerun)


def _cmd_rerun(args: argparse.Namespace, ctx: CliContext) -> int:
    from ..cancellation import CancelToken
    from ..dispatch.rerun import prepare_rerun
    from ..engine.pipeline import Pipeline
    from ..loader import Loader
    from ..store import open_store
    from .run_record import RecordingUnavailableError, execute_recorded, safe_url

    url = recording_url(ctx.settings)
    if url is None:
        return _refuse(
            ctx,
            "there is no run store here (WORKFLOW_API_DB_URL is not set and "
            f"{ctx.settings.root_path / '.workflow' / 'runs.db'} does not exist): "
            "no run to rerun",
        )
    store = open_store(url)
    try:
        source = store.get_run(args.run_id)
    finally:
        store.close()
    if source is None:
        return _refuse(ctx, f"no run with id {args.run_id!r} in the run store {safe_url(url)}")
    if args.json:
        logs_to_stderr(args, ctx)
    loader = Loader.from_settings(ctx.settings)
    pipeline = Pipeline.from_loader(source.pipeline, settings=ctx.settings, loader=loader)
    try:
        rerun = prepare_rerun(
            source, pipeline, ctx.settings, from_job=args.from_job, force=args.force
        )
    except RerunError as exc:
        lines = [f"cannot rerun run {exc.run_id}:", *(f"  {p}" for p in exc.problems)]
        if exc.unsafe:
            lines.append("the template changed since; --force reruns anyway")
        return _refuse(ctx, "\n".join(lines))
    printer = None if args.json else Printer(ctx.out, ctx.masker, pipeline.name)
    token = CancelToken()
    with cancel_on_signals(token), shown(printer):
        try:
            run_id, result = execute_recorded(
                url,
                pipeline,
                loader,
                rerun.params,
                ctx=ctx,
                token=token,
                on_event=printer.event if printer is not None else None,
                rerun=rerun,
            )
        except RecordingUnavailableError as exc:
            return _refuse(ctx, str(exc))
    if result is None:
        line = f"pipeline {pipeline.name}: CANCELLED before it started (run {run_id})"
        print(ctx.masker.text(line), file=sys.stderr if args.json else ctx.out)
        return EXIT_FAILED
    if printer is None:
        data = ctx.masker.data(result.to_dict())
        ctx.out.write(dumps({**data, "rerun_of": source.run_id}) + "\n")
    else:
        printer.write(f"rerun of run {source.run_id} ({source.status.value})")
        print_summary(printer, result)
    return EXIT_OK if result.status.value == "SUCCESS" else EXIT_FAILED


def _refuse(ctx: CliContext, message: str) -> int:
    print(ctx.masker.text(f"workflow rerun: {message}"), file=sys.stderr)
    return EXIT_USAGE
