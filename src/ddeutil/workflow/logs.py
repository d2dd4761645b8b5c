"""Logging set-up for the entry points, and per-run log files.

The library only calls ``logging.getLogger(__name__)`` and passes run context
with ``extra={"run_id": ..., "pipeline": ..., "job": ..., "stage": ...}``. The
CLI, the daemon and the API call :func:`configure_logging` once; nothing else
installs handlers on the root logger.

Per-run files: :class:`RunLogRouter` is one handler on the ``ddeutil.workflow``
logger that appends each record carrying a ``run_id`` to that run's open file,
so thousands of concurrent runs cost one dictionary lookup per record.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

from .masking import Masker

__all__ = [
    "CONTEXT_FIELDS",
    "MaskingFilter",
    "RunLogRouter",
    "configure_logging",
    "run_log_path",
]

CONTEXT_FIELDS = ("run_id", "pipeline", "release", "job", "stage")
LogFormat = Literal["json", "text", "auto"]
PACKAGE_LOGGER = "ddeutil.workflow"


class MaskingFilter(logging.Filter):
    """Replaces secret values in the rendered message and the context fields."""

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self._masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        if self._masker.active:
            record.msg = self._masker.text(record.getMessage())
            record.args = None
            for name in CONTEXT_FIELDS:
                value = getattr(record, name, None)
                if isinstance(value, str):
                    setattr(record, name, self._masker.text(value))
        return True


class _TextFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL logger [run pipeline/job/stage] message``."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        ctx = [
            str(getattr(record, k))
            for k in ("pipeline", "job", "stage")
            if getattr(record, k, None)
        ]
        run_id = getattr(record, "run_id", None)
        if run_id or ctx:
            prefix = f"[{run_id or '-'} {'/'.join(ctx)}]".replace(" ]", "]")
            head, sep, msg = base.partition(" | ")
            return f"{head} {prefix} {msg}" if sep else f"{prefix} {base}"
        return base.replace(" | ", " ", 1)


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    class _UtcJsonFormatter(JsonFormatter):
        def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
            return _iso(record.created)

    return _UtcJsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
    )


def configure_logging(
    *,
    fmt: LogFormat = "auto",
    level: str | int = "INFO",
    masker: Masker | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install one console handler on the root logger (entry points only).

    Args:
        fmt: ``json`` for JSON lines, ``text`` for readable lines, ``auto`` for
            text on a terminal and JSON otherwise (systemd, Docker).
        level: Console level for the root logger.
        masker: Secret values to hide in every line.
        stream: Where to write (default stderr for text, stdout for JSON).

    Returns:
        The installed handler (tests remove it again).
    """
    out = stream
    if fmt == "auto":
        probe = out if out is not None else sys.stderr
        fmt = "text" if probe.isatty() else "json"
    if out is None:
        out = sys.stdout if fmt == "json" else sys.stderr
    handler = logging.StreamHandler(out)
    if fmt == "json":
        handler.setFormatter(_json_formatter())
    else:
        handler.setFormatter(
            _TextFormatter("%(asctime)s %(levelname)-7s | %(message)s", "%H:%M:%S")
        )
    if masker is not None:
        handler.addFilter(MaskingFilter(masker))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_ddeutil_workflow", False)]:
        root.removeHandler(old)
    handler._ddeutil_workflow = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    return handler


def run_log_path(log_dir: Path, run_id: str) -> Path:
    """Where the log file of ``run_id`` lives (one file per run, JSON lines)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return log_dir / f"{safe}.log"


class RunLogRouter(logging.Handler):
    """Appends records that carry a ``run_id`` to that run's log file.

    Records of runs that are not open here (e.g. child runs logging under their
    parent) are ignored. Lines are JSON objects with time, level, message and the
    context fields, masked with the given :class:`Masker`.
    """

    def __init__(self, log_dir: Path, masker: Masker | None = None) -> None:
        super().__init__(logging.DEBUG)
        self._dir = log_dir
        self._masker = masker or Masker()
        self._files: dict[str, IO[str]] = {}
        self._guard = threading.Lock()

    @contextmanager
    def capture(self, run_id: str, *aliases: str) -> Iterator[Path]:
        """Route records of ``run_id`` (and of ``aliases``, e.g. child run ids) to its file."""
        path = run_log_path(self._dir, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = path.open("a", encoding="utf-8")
        keys = (run_id, *aliases)
        with self._guard:
            for key in keys:
                self._files[key] = fh
        try:
            yield path
        finally:
            with self._guard:
                for key in keys:
                    self._files.pop(key, None)
            fh.close()

    def emit(self, record: logging.LogRecord) -> None:
        run_id = getattr(record, "run_id", None)
        if run_id is None:
            return
        fh = self._files.get(run_id)
        if fh is None:
            return
        line: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "message": self._masker.text(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = self._masker.text(str(value))
        try:
            with self._guard:
                fh.write(json.dumps(line, default=str) + "\n")
                fh.flush()
        except ValueError:  # closed between lookup and write: the run just ended
            return

    @classmethod
    @contextmanager
    def installed(cls, log_dir: Path, masker: Masker | None = None) -> Iterator[RunLogRouter]:
        """Attach a router to the package logger for the duration of the block."""
        router = cls(log_dir, masker)
        logger = logging.getLogger(PACKAGE_LOGGER)
        logger.addHandler(router)
        try:
            yield router
        finally:
            logger.removeHandler(router)
            router.close()


def _iso(created: float) -> str:
    """ISO 8601 in UTC with milliseconds, e.g. ``2024-01-01T00:00:00.123Z``."""
    stamp = datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
