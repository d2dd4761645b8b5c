"""A stage's output lines in the run's log: one INFO record per line, masked and capped.

What a stage prints (a bash script's ``stdout`` and ``stderr`` as it produces
them; what a python or hook stage's own thread writes to ``sys.stdout`` and
``sys.stderr``) is logged line by line on the :data:`OUTPUT_LOGGER` logger, so
it reaches the per-run log file (``workflow logs RUN_ID``), the daemon's console
and ``workflow run``. Policy:

* **One record per line**, at INFO, with the run's context fields (``run_id``,
  ``pipeline``, ``job``, ``stage``), ``stream`` (``stdout``/``stderr``) and, for a
  combination of a matrix job, ``matrix`` (its values; also at the start of the
  message as ``[os=linux, py=3.12]``).
* **Masked** with the stage's masker (a bash stage's sensitive ``env`` values
  included) before it is logged.
* **Capped**: at most ``WORKFLOW_CORE_STAGE_LOG_LINES`` lines per stage try;
  further lines are only counted, and one ``... N more lines not logged`` line
  ends the stage's output. A line longer than :data:`LINE_LIMIT` characters is
  cut there (`` ... [line cut]``) and the rest of it skipped, so what is held per
  stream stays under that limit whatever a script prints.
* **Free when nobody listens**: without a handler enabled at INFO for the
  logger (a library user who configured no logging) or with the cap at ``0``,
  nothing is split or logged, and a python stage's prints reach the process
  output as before (:mod:`.stdio`).
* The stage's stored outputs (``stdout``/``stderr`` of a bash stage) are not
  changed by any of this.
"""

from __future__ import annotations

import codecs
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..masking import Masker
    from .context import RunContext

__all__ = ["LINE_LIMIT", "MORE_LINES", "OUTPUT_LOGGER", "StageOutputLog", "stage_output_log"]

OUTPUT_LOGGER = "ddeutil.workflow.stage_output"
"""The logger of stage output lines (handlers may single it out by name)."""

LINE_LIMIT = 4096
"""Characters of one output line logged at most; the rest of the line is skipped."""

MORE_LINES = "... {count} more lines not logged (WORKFLOW_CORE_STAGE_LOG_LINES={cap})"
"""The line that ends a stage's output when lines were over the cap."""

_CUT = " ... [line cut]"

_logger = logging.getLogger(OUTPUT_LOGGER)


def stage_output_log(rc: RunContext, label: str, masker: Masker) -> StageOutputLog | None:
    """A line logger for one try of stage ``label``, or ``None`` when nothing would be logged."""
    cap = rc.settings.stage_log_lines
    if cap <= 0 or not _logger.isEnabledFor(logging.INFO):
        return None
    return StageOutputLog(rc, label, masker, cap)


class StageOutputLog:
    """Splits one stage try's output into lines and logs them (see the module doc).

    Call :meth:`feed` (text) or :meth:`feed_bytes` per piece of a stream, then
    :meth:`close` once: it logs what is left of unfinished lines and the
    ``more lines`` line.
    """

    __slots__ = (
        "_cap",
        "_decoders",
        "_extra",
        "_masker",
        "_pending",
        "_prefix",
        "_skipping",
        "dropped",
        "logged",
    )

    def __init__(self, rc: RunContext, label: str, masker: Masker, cap: int) -> None:
        self._masker = masker
        self._cap = cap
        extra: dict[str, Any] = rc.log_extra(label)
        self._prefix = ""
        if rc.matrix:
            matrix = masker.data(dict(rc.matrix))
            extra["matrix"] = matrix
            self._prefix = "[" + ", ".join(f"{k}={v}" for k, v in matrix.items()) + "] "
        self._extra = extra
        self._pending: dict[str, str] = {}
        self._skipping: set[str] = set()
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self.logged = 0
        self.dropped = 0

    def feed_bytes(self, stream: str, chunk: bytes) -> None:
        """Add the next bytes of ``stream`` (UTF-8; a character split between chunks is kept)."""
        decoder = self._decoders.get(stream)
        if decoder is None:
            decoder = self._decoders[stream] = codecs.getincrementaldecoder("utf-8")("replace")
        self.feed(stream, decoder.decode(chunk))

    def feed(self, stream: str, text: str) -> None:
        """Add the next text of ``stream`` (``stdout`` or ``stderr``)."""
        if self.logged >= self._cap:  # over the cap: only count the lines
            newlines = text.count("\n")
            if newlines and stream in self._skipping:
                self._skipping.discard(stream)  # that newline ends a line already logged
                newlines -= 1
            self.dropped += newlines
            if text.endswith("\n"):
                self._pending.pop(stream, None)
            elif text:
                self._pending[stream] = "-"  # an unfinished line: counted at close
            return
        pending = self._pending.pop(stream, "") + text
        if "\n" in pending:
            *lines, pending = pending.split("\n")
            for line in lines:
                if stream in self._skipping:
                    self._skipping.discard(stream)
                    continue
                self._line(stream, line)
        if len(pending) > LINE_LIMIT:
            if stream not in self._skipping:
                self._line(stream, pending[:LINE_LIMIT], cut=True)
                self._skipping.add(stream)
            pending = ""
        if pending:
            self._pending[stream] = pending

    def close(self) -> None:
        """Log the unfinished lines and, when lines were over the cap, how many."""
        for decoder_stream, decoder in self._decoders.items():
            rest = decoder.decode(b"", final=True)
            if rest:
                self.feed(decoder_stream, rest)
        for stream, pending in list(self._pending.items()):
            if stream not in self._skipping:
                self._line(stream, pending)
        self._pending.clear()
        if self.dropped:
            message = MORE_LINES.format(count=self.dropped, cap=self._cap)
            _logger.info(self._prefix + message, extra={**self._extra, "stream": "stdout"})

    def _line(self, stream: str, line: str, *, cut: bool = False) -> None:
        if self.logged >= self._cap:
            self.dropped += 1
            return
        self.logged += 1
        line = line.removesuffix("\r")
        text = self._masker.clipped(line, cut_after=True) + _CUT if cut else self._masker.text(line)
        _logger.info(self._prefix + text, extra={**self._extra, "stream": stream})
