"""Bounded capture of an output stream: its start and its end are kept, the middle counted.

A bash stage reads its ``stdout`` and ``stderr`` in chunks into a
:class:`BoundedCapture` of ``WORKFLOW_CORE_STAGE_OUTPUT_LIMIT`` bytes each, so
memory stays at the limit however much a script prints. Policy:

* The first three quarters of the limit keep the start of the stream, the last
  quarter its end (where an error message usually is); bytes between them are
  dropped and counted.
* In the text of a truncated stream the dropped part is replaced by one line,
  :data:`TRUNCATED` (``... [truncated: 98566144 bytes] ...``), so what the run
  records, the store keeps and the API serves is at most the limit plus that line.
* Secrets are masked in each kept piece, a secret cut in two by the truncation
  included (:meth:`~ddeutil.workflow.masking.Masker.clipped`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..masking import Masker

__all__ = ["TRUNCATED", "BoundedCapture", "Captured"]

TRUNCATED = "... [truncated: {dropped} bytes] ..."
"""The line that stands for the dropped middle of a truncated stream."""


@dataclass(frozen=True)
class Captured:
    """What was kept of one stream.

    Attributes:
        head: The start of the stream.
        tail: Its end (empty unless the stream outgrew the head's share).
        dropped: Bytes between ``head`` and ``tail`` that were not kept.
    """

    head: bytes = b""
    tail: bytes = b""
    dropped: int = 0

    @property
    def total(self) -> int:
        """Bytes the stream carried in all."""
        return len(self.head) + len(self.tail) + self.dropped

    def text(self, masker: Masker) -> str:
        """The stream as UTF-8 text (undecodable bytes replaced), secrets masked.

        A truncated stream reads ``head``, a :data:`TRUNCATED` line, ``tail``.
        """
        if not self.dropped:
            return masker.text((self.head + self.tail).decode("utf-8", errors="replace"))
        head = masker.clipped(self.head.decode("utf-8", errors="replace"), cut_after=True)
        tail = masker.clipped(self.tail.decode("utf-8", errors="replace"), cut_before=True)
        return f"{head}\n{TRUNCATED.format(dropped=self.dropped)}\n{tail}"


class BoundedCapture:
    """Collects a stream chunk by chunk in at most ``limit`` bytes (see the module doc).

    Args:
        limit: Bytes kept at most (at least 1).
    """

    __slots__ = ("_head", "_head_max", "_tail", "_tail_max", "total")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the capture limit must be at least 1 byte, got {limit}")
        self._tail_max = limit // 4
        self._head_max = limit - self._tail_max
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        """Add the next ``chunk`` of the stream."""
        self.total += len(chunk)
        room = self._head_max - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self._tail_max:
            self._tail += chunk[-self._tail_max :]
            excess = len(self._tail) - self._tail_max
            if excess > 0:
                del self._tail[:excess]  # O(1): a bytearray drops its front in place

    def result(self) -> Captured:
        """What is kept so far, as a frozen record."""
        kept = len(self._head) + len(self._tail)
        return Captured(bytes(self._head), bytes(self._tail), self.total - kept)
