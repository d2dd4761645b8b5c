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
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from ..__about__ import __version__
from ..errors import SettingsError, WorkflowError
from ..logs import configure_logging
from ..masking import Masker
from ..settings import Settings

__all__ = ["CliContext", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CliContext:
    """What every verb receives: the settings, the masker and the output stream."""

    settings: Settings
    masker: Masker
    out: TextIO


Handler = Callable[[argparse.Namespace, CliContext], int]


def _verb_modules() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    from . import ops, run, templates

    return [templates.register, run.register, ops.register]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workflow",
        description="Run, validate and schedule YAML-defined data pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-format",
        choices=("auto", "text", "json"),
        default="auto",
        help="log line format: text on a terminal and JSON otherwise by default",
    )
    parser.add_argument("--log-level", default=None, help="log level (default WORKFLOW_LOG_LEVEL)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for register in _verb_modules():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the CLI and return its exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
    handler: Handler = args.handler
    try:
        return handler(args, CliContext(settings=settings, masker=masker, out=stream))
    except WorkflowError as exc:
        print(f"workflow: error: {masker.text(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def entry() -> None:  # pragma: no cover - console-script shim
    sys.exit(main())
