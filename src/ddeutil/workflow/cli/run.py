"""``workflow run NAME -p key=value ...`` and ``workflow schema``.

``run`` loads the pipeline, coerces each ``-p`` value with its param's type
(a list or map param takes JSON text), runs it in the foreground and prints one
line per stage and per job as each finishes, then the run's status and errors;
what a stage prints is shown under a ``RUNNING`` line of it, indented and masked,
and the console log leaves out the engine's lines the Printer already shows
(:mod:`.stage_lines`).
``--json`` prints only the full result as JSON instead (secrets masked).
Ctrl-C (or SIGTERM) cancels the run cooperatively: bash stages are killed with
their process groups and the run ends CANCELLED.

**Recorded when a run store is configured** (:func:`recording_url`): when
``WORKFLOW_API_DB_URL`` is set in the environment, or the default SQLite store
(``<root>/.workflow/runs.db``) already exists (a daemon or the API ran here),
the run is written to that store (trigger ``manual``) and shows in ``workflow
runs``, and ``workflow cancel RUN_ID`` from another shell cancels it (see
:mod:`.run_record`). Otherwise nothing is written and no store module is
imported, so a first ``workflow run`` on a machine creates nothing.
``--no-record`` never records. A store that does not answer before the run
starts: exit 2, nothing ran.

Exit codes: 0 SUCCESS; 1 FAILED or CANCELLED; 2 bad input (unknown pipeline,
invalid template, bad params) or a run store that does not answer.

``schema`` prints the JSON Schema of the YAML format (see
:mod:`ddeutil.workflow.engine.schema`) for editors.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from ..errors import ParamError, ParamProblem
from . import on_stop_signals

if TYPE_CHECKING:
    from ..cancellation import CancelToken
    from ..engine.context import RunEvent
    from ..masking import Masker
    from ..result import Result
    from ..settings import Settings
    from . import CliContext

__all__ = [
    "Printer",
    "cancel_on_signals",
    "dumps",
    "logs_to_stderr",
    "print_summary",
    "recording_url",
    "register",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run`` and ``schema`` to the parser."""
    run = sub.add_parser(
        "run",
        help="run a pipeline now, in the foreground",
        description="Run a pipeline now and print a summary of each stage as it finishes.",
    )
    run.add_argument("name", metavar="NAME", help="pipeline template name")
    run.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a param value (repeatable); coerced by the param's type, JSON for list/map",
    )
    run.add_argument("--json", action="store_true", help="print the full result as JSON")
    run.add_argument(
        "--no-record",
        action="store_true",
        help="do not write the run to the run store (by default it is recorded when a store "
        "is configured: WORKFLOW_API_DB_URL set, or the default SQLite store exists)",
    )
    run.add_argument(
        "--logical-date",
        metavar="T",
        type=_instant,
        default=None,
        help="run it for this date or instant: ${{ release.logical_date }} (ISO 8601; "
        "without an offset it is read in WORKFLOW_CORE_TIMEZONE; default: now)",
    )
    run.set_defaults(handler=_cmd_run)

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the YAML format",
        description="Print the JSON Schema of conf files, for editor validation and completion.",
    )
    schema.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    schema.set_defaults(handler=_cmd_schema)


def recording_url(settings: Settings) -> str | None:
    """The run store ``workflow run`` records its run in, or ``None`` (not recorded).

    A store is configured when ``WORKFLOW_API_DB_URL`` is set (not empty), or
    when the default SQLite file (``<root>/.workflow/runs.db``) already exists:
    a daemon or the API ran here. The default is never created by ``workflow
    run`` alone.
    """
    if settings.store_given:
        return settings.api_db_url
    default = settings.root_path / ".workflow" / "runs.db"
    return settings.api_db_url if default.is_file() else None


def _instant(raw: str) -> datetime:
    """An argparse ``type=``: an ISO 8601 date or date-time (the zone is applied later)."""
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date or date-time (2024-01-31, 2024-01-31T01:30+07:00), "
            f"got {raw!r}"
        ) from None


def _logical_date(value: datetime | None, ctx: CliContext) -> datetime | None:
    """``--logical-date`` in the configured zone when it names no offset."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ctx.settings.timezone)


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParamError([ParamProblem(pair, "expected KEY=VALUE")])
        params[key.strip()] = value
    return params


def cancel_on_signals(token: CancelToken) -> AbstractContextManager[None]:
    """SIGINT / SIGTERM cancel the run (main thread only); handlers restored after."""
    return on_stop_signals(lambda name: token.cancel(f"{name} received"))


class Printer:
    """Prints one line per finished stage and job; safe to call from worker threads.

    A stage that has printed nothing ``quiet_after`` seconds after it started gets a
    ``RUNNING`` line, so a long stage is never silent (see :meth:`event`).
    """

    def __init__(
        self, out: TextIO, masker: Masker, pipeline: str, *, quiet_after: float = 1.0
    ) -> None:
        self._out = out
        self._masker = masker
        self._pipeline = pipeline
        self._quiet_after = quiet_after
        self._lock = threading.Lock()
        self._headed: set[tuple[str, str]] = set()
        self._waiting: dict[tuple[str, str, str | None], threading.Timer] = {}

    def output(self, job: str, stage: str, text: str, *, stream: str = "stdout") -> None:
        """One output line of a running stage, indented under a ``RUNNING`` line of it."""
        mark = "!" if stream == "stderr" else "|"
        with self._lock:
            head = (job, stage) not in self._headed
            self._headed.add((job, stage))
        line = f"{'':<9} {'':>8}   {mark} {text}"
        self.write(f"{_running(job, stage)}\n{line}" if head else line)

    def write(self, line: str) -> None:
        with self._lock:
            self._out.write(self._masker.text(line) + "\n")
            self._out.flush()

    def event(self, event: RunEvent) -> None:
        """Print a finished stage or job; a started stage is watched for silence."""
        if event.kind == "stage_started":
            self._watch(event)
            return
        where = "" if event.pipeline == self._pipeline else f"{event.pipeline}: "
        head = f"{event.status.value:<9} {event.duration:8.3f}s  "
        if event.kind == "job" and event.reused_from is not None:
            line = f"{'REUSED':<9} {'':>8}   {where}job {event.job} (from run {event.reused_from})"
        elif event.kind == "job":
            line = f"{head}{where}job {event.job}"
        else:
            self._settle(event)
            line = f"{head}{where}{event.job} / {event.stage}{_described(event)}"
        if event.error and (event.kind == "stage" or event.status.value != "FAILED"):
            line += f": {event.error}"
        self.write(line)

    def close(self) -> None:
        """Stop watching stages that are still running (none print after this)."""
        with self._lock:
            timers, self._waiting = list(self._waiting.values()), {}
        for timer in timers:
            timer.cancel()

    def _watch(self, event: RunEvent) -> None:
        key = (event.job, event.stage or "", event.strategy)
        timer = threading.Timer(self._quiet_after, self._still_running, (event,))
        timer.daemon = True
        with self._lock:
            self._waiting[key] = timer
        timer.start()

    def _settle(self, event: RunEvent) -> None:
        with self._lock:
            self._headed.discard((event.job, event.stage or ""))
            timer = self._waiting.pop((event.job, event.stage or "", event.strategy), None)
        if timer is not None:
            timer.cancel()

    def _still_running(self, event: RunEvent) -> None:
        stage = event.stage or ""
        with self._lock:
            if self._waiting.pop((event.job, stage, event.strategy), None) is None:
                return
            if (event.job, stage) in self._headed:  # its output named it already
                return
            self._headed.add((event.job, stage))
        where = "" if event.pipeline == self._pipeline else f"{event.pipeline}: "
        self.write(_running(f"{where}{event.job}", f"{stage}{_described(event)}"))


def _running(job: str, stage: str) -> str:
    return f"{'RUNNING':<9} {'':>8}   {job} / {stage}"


def _described(event: RunEvent) -> str:
    """A stage's name (when not its id) and matrix values, after its id."""
    text = ""
    if event.name and event.name != event.stage:
        text += f" ({event.name})"
    if event.matrix:
        text += " [" + ", ".join(f"{k}={v}" for k, v in event.matrix.items()) + "]"
    return text


@contextmanager
def _long_lived(ctx: CliContext) -> Iterator[None]:
    """Import the engine and load the pipeline without the cyclic GC scanning it all.

    What the block allocates (modules, classes, validators, the pipeline) lives
    as long as the process, so collections of it free nothing, and they cost
    ~20 ms of a cold run: the collector is paused for the block. After it, the
    process's command (``ctx.owns_process``) moves everything alive out of the
    collector's sight (``gc.freeze``); other callers get the collector back as
    it was.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if ctx.owns_process:
            gc.freeze()
        if enabled:
            gc.enable()


def _cmd_run(args: argparse.Namespace, ctx: CliContext) -> int:
    with _long_lived(ctx):
        from ..cancellation import CancelToken
        from ..engine.pipeline import Pipeline
        from ..loader import Loader

        if args.json:
            logs_to_stderr(args, ctx)
        loader = Loader.from_settings(ctx.settings)
        pipeline = Pipeline.from_loader(args.name, settings=ctx.settings, loader=loader)
    printer = None if args.json else Printer(ctx.out, ctx.masker, pipeline.name)
    on_event = printer.event if printer is not None else None
    token = CancelToken()
    url = None if args.no_record else recording_url(ctx.settings)
    try:
        params = _parse_params(args.param)
        with cancel_on_signals(token), shown(printer):
            logical_date = _logical_date(args.logical_date, ctx)
            if url is None:
                result = pipeline.execute(
                    params,
                    cancel=token,
                    settings=ctx.settings,
                    masker=ctx.masker,
                    on_event=on_event,
                    logical_date=logical_date,
                )
            else:
                from .run_record import RecordingUnavailableError, execute_recorded

                try:
                    run_id, recorded = execute_recorded(
                        url,
                        pipeline,
                        loader,
                        params,
                        ctx=ctx,
                        token=token,
                        on_event=on_event,
                        logical_date=logical_date,
                    )
                except RecordingUnavailableError as exc:
                    print(f"workflow run: {ctx.masker.text(str(exc))}", file=sys.stderr)
                    return EXIT_USAGE
                if recorded is None:
                    line = f"pipeline {pipeline.name}: CANCELLED before it started (run {run_id})"
                    print(ctx.masker.text(line), file=sys.stderr if args.json else ctx.out)
                    return EXIT_FAILED
                result = recorded
    except ParamError as exc:
        head = f"invalid params for pipeline {pipeline.name!r}:"
        lines = [head, *(f"  {p.name}: {p.message}" for p in exc.problems)]
        print(ctx.masker.text("\n".join(lines)), file=sys.stderr)
        return EXIT_USAGE
    if printer is None:
        ctx.out.write(dumps(ctx.masker.data(result.to_dict())) + "\n")
    else:
        print_summary(printer, result)
    return EXIT_OK if result.status.value == "SUCCESS" else EXIT_FAILED


def shown(printer: Printer | None) -> AbstractContextManager[None]:
    """Stage output lines printed by ``printer``, each stage once (see :mod:`.stage_lines`)."""
    if printer is None:
        return nullcontext()
    from .stage_lines import printed_by

    return printed_by(printer)


def logs_to_stderr(args: argparse.Namespace, ctx: CliContext) -> None:
    """Keep stdout for the JSON result: move the console log handler to stderr."""
    from ..logs import configure_logging

    fmt: Literal["text", "json"] = (
        "text" if getattr(args, "log_format", "auto") == "text" else "json"
    )
    configure_logging(
        fmt=fmt,
        level=getattr(args, "log_level", None) or ctx.settings.log_level,
        masker=ctx.masker,
        stream=sys.stderr,
    )


def print_summary(printer: Printer, result: Result) -> None:
    printer.write(
        f"pipeline {result.pipeline}: {result.status.value} in {result.duration:.3f}s "
        f"(run {result.run_id})"
    )
    for error in result.errors:
        where = "/".join(p for p in (error.job, error.stage) if p)
        printer.write(f"  error {where}: {error.message}")


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, ensure_ascii=False)


def _cmd_schema(args: argparse.Namespace, ctx: CliContext) -> int:
    from ..engine.conf_schema import yaml_schema

    text = dumps(yaml_schema())
    if args.output is not None:
        args.output.write_text(text + "\n", encoding="utf-8")
    else:
        ctx.out.write(text + "\n")
    return EXIT_OK
