"""The ``workflow`` command line (also ``python -m ddeutil.workflow``).

Each verb lives in a small module of this package exposing ``register(sub)``;
this module builds the parser, reads the settings once, configures logging
(the only place besides the daemon and the API that does) and dispatches.

Exit codes: 0 success, 1 the command ran and reports failure (a failed run, an
invalid template, a stale heartbeat), 2 bad input (unknown name, bad params,
bad settings).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO
from urllib.parse import unquote

from ..__about__ import __version__
from ..errors import SettingsError, StoreError, WorkflowError
from ..logs import configure_logging
from ..masking import Masker
from ..settings import Settings
from ..startup import warn_unknown_variables

if TYPE_CHECKING:
    from ..store.base import RunStore

__all__ = [
    "CliContext",
    "NoRunStore",
    "existing_store",
    "main",
    "on_stop_signals",
    "positive_int",
    "run_store",
    "sqlite_file",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141
"""The reader of stdout went away (128 + SIGPIPE, as the shell reports ``yes | head``)."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CliContext:
    """What every verb receives: the settings, the masker and the output stream.

    ``owns_process`` is true when :func:`main` runs as the process's command (the
    console script, ``python -m``): the process ends when the verb returns.
    """

    settings: Settings
    masker: Masker
    out: TextIO
    owns_process: bool = False


Handler = Callable[[argparse.Namespace, CliContext], int]


def positive_int(raw: str) -> int:
    """An argparse ``type=``: a whole number of at least 1."""
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


@contextmanager
def on_stop_signals(handle: Callable[[str], None]) -> Iterator[None]:
    """Call ``handle(signal name)`` on SIGINT / SIGTERM during the block (main thread only).

    The previous handlers are restored after it; elsewhere than the main thread
    (signals cannot be handled there) the block runs without.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        handle(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class NoRunStore(StoreError):  # noqa: N818 - names the situation, like FileNotFoundError
    """A verb that reads runs found no run store where the settings point (it creates none)."""


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite store URL (``None`` for another store, or SQLite in memory)."""
    scheme, _, rest = url.strip().partition("://")
    if scheme.lower() != "sqlite":
        return None
    location = unquote(rest.partition("?")[0])
    if ":memory:" in location:
        return None
    return Path("/" + location.lstrip("/"))


def existing_store(settings: Settings) -> str:
    """The run store URL of ``settings``, refusing a SQLite file that does not exist yet.

    Verbs that read or change recorded runs use it: they never create a store
    (which would then say "no run"), they say where they looked.

    Raises:
        NoRunStore: the SQLite file is not there.
    """
    url = settings.api_db_url
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise NoRunStore(
            f"no run store at {path}: nothing has run with this root yet "
            f"(WORKFLOW_ROOT_PATH is {settings.root_path}; WORKFLOW_API_DB_URL names another store)"
        )
    return url


@contextmanager
def run_store(ctx: CliContext, *, create: bool = True) -> Iterator[RunStore]:
    """The run store of the settings, open for the block (imported only when a verb needs it).

    With ``create=False`` a SQLite store that does not exist is not created:
    :class:`NoRunStore` says where it was looked for.
    """
    from ..store import open_store

    store = open_store(ctx.settings.api_db_url if create else existing_store(ctx.settings))
    try:
        yield store
    finally:
        store.close()


# verb -> module of this package that registers it. Only the module of the verb
# being run is imported, so `workflow run` does not pay for the run store or the
# API; `--help` and unknown verbs import them all.
VERB_MODULES: dict[str, str] = {
    "validate": "templates",
    "list": "templates",
    "next": "templates",
    "run": "run",
    "schema": "run",
    "scheduler": "ops",
    "health": "ops",
    "runs": "ops",
    "logs": "ops",
    "api": "api",
    "worker": "worker",
    "pause": "pause",
    "unpause": "pause",
    "prune": "prune",
    "cancel": "cancel",
    "rerun": "rerun",
    "backfill": "backfill",
}
_GLOBAL_OPTIONS_WITH_VALUE = frozenset({"--log-format", "--log-level"})


def _requested_verb(argv: Sequence[str]) -> str | None:
    """Return the first positional word of ``argv`` (the verb), skipping global options."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _GLOBAL_OPTIONS_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def _modules_for(verb: str | None) -> list[str]:
    if verb in VERB_MODULES:
        return [VERB_MODULES[verb]]
    return list(dict.fromkeys(VERB_MODULES.values()))


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the parser; with ``argv``, register only the verb it asks for."""
    parser = argparse.ArgumentParser(
        prog="workflow",
        description="Run, validate and schedule YAML-defined data pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_log_options(parser, default=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    verb = _requested_verb(argv) if argv is not None else None
    for name in _modules_for(verb):
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(sub)
    for verb_parser in sub.choices.values():  # the global options after the verb too
        _add_log_options(verb_parser, default=argparse.SUPPRESS)
    return parser


def _add_log_options(parser: argparse.ArgumentParser, *, default: object) -> None:
    """``--log-format`` and ``--log-level``; a verb's copy keeps the global value when absent."""
    parser.add_argument(
        "--log-format",
        choices=("auto", "text", "json"),
        default="auto" if default is None else default,
        help="log line format: text on a terminal and JSON otherwise by default",
    )
    parser.add_argument(
        "--log-level", default=default, help="log level (default WORKFLOW_LOG_LEVEL)"
    )


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it).

    Called without ``argv`` (the console script, ``python -m``) it is the
    process's command, and the process ends right after it: the cyclic garbage
    collector's final passes over everything still alive are skipped then (see
    :func:`_freeze_at_exit`).
    """
    if argv is None:
        _freeze_at_exit()
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(words).parse_args(words)
    stream = out if out is not None else sys.stdout
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"workflow: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    masker = Masker.from_env(os.environ)
    configure_logging(
        fmt=args.log_format, level=args.log_level or settings.log_level, masker=masker
    )
    warn_unknown_variables(os.environ)
    handler: Handler = args.handler
    try:
        ctx = CliContext(settings=settings, masker=masker, out=stream, owns_process=argv is None)
        code = handler(args, ctx)
        stream.flush()  # a closed pipe shows here, not at exit
        return code
    except WorkflowError as exc:
        print(f"workflow: error: {masker.text(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`workflow runs | head`): stop quietly, as `yes | head`
        # does. Later writes to the closed stdout go to /dev/null, so the
        # interpreter's last flush cannot print a traceback either.
        if argv is None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _freeze_at_exit() -> None:
    """At exit, hide every object still alive from the cyclic garbage collector.

    Interpreter teardown runs full collections over all the long-lived objects
    of the process (modules, classes, pydantic validators), which free nothing
    and cost ~15 ms of a cold ``workflow run``. ``gc.freeze`` runs as an atexit
    handler, so the other handlers (logging shutdown, user hooks' own) still
    run, and streams are flushed and modules torn down as usual.
    """
    atexit.register(gc.freeze)


def entry() -> None:  # pragma: no cover - console-script shim
    sys.exit(main())
