"""``workflow run`` shows stage output lines under their stage, and each stage once.

The engine logs a stage's output lines on
:data:`~ddeutil.workflow.engine.stage_output.OUTPUT_LOGGER` and its start and end
at INFO; the :class:`~ddeutil.workflow.cli.run.Printer` prints one line per
finished stage and job. While a :func:`printed_by` block runs, policy:

* **Each stage once**: the console log handler drops the engine's records
  below WARNING (the stage and job lines the Printer prints, and the output
  lines); warnings and errors still reach it.
* **Output under its stage**: each output line is printed, masked and indented,
  after a ``RUNNING`` line naming the stage (printed once: at its first line, or
  when the stage has been silent for a second).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from ..engine.stage_output import OUTPUT_LOGGER

__all__ = ["printed_by"]

_ENGINE = "ddeutil.workflow.engine"


class Printer(Protocol):
    """What :func:`printed_by` needs of ``workflow run``'s Printer."""

    def output(self, job: str, stage: str, text: str, *, stream: str = "stdout") -> None: ...

    def close(self) -> None: ...


class _PrintedFilter(logging.Filter):
    """Drops what the Printer shows from the console: engine records below WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        name = record.name
        return not (name == OUTPUT_LOGGER or name.startswith(_ENGINE))


class _OutputLines(logging.Handler):
    """Hands each output line to the Printer."""

    def __init__(self, printer: Printer) -> None:
        super().__init__(logging.INFO)
        self._printer = printer

    def emit(self, record: logging.LogRecord) -> None:
        self._printer.output(
            str(getattr(record, "job", "") or ""),
            str(getattr(record, "stage", "") or ""),
            record.getMessage(),
            stream=str(getattr(record, "stream", "stdout")),
        )


@contextmanager
def printed_by(printer: Printer) -> Iterator[None]:
    """Route stage output to ``printer`` and keep its lines off the console log."""
    root = logging.getLogger()
    consoles = [h for h in root.handlers if getattr(h, "_ddeutil_workflow", False)]
    dropped = _PrintedFilter()
    for handler in consoles:
        handler.addFilter(dropped)
    lines = _OutputLines(printer)
    output = logging.getLogger(OUTPUT_LOGGER)
    output.addHandler(lines)
    try:
        yield
    finally:
        printer.close()
        output.removeHandler(lines)
        for handler in consoles:
            handler.removeFilter(dropped)
