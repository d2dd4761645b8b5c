"""Bounded capture of a stream: start and end kept, the middle counted and marked."""

from __future__ import annotations

import pytest

from ddeutil.workflow.engine.capture import BoundedCapture, Captured
from ddeutil.workflow.masking import MASK, Masker


def _capture(limit: int, *chunks: bytes) -> Captured:
    capture = BoundedCapture(limit)
    for chunk in chunks:
        capture.feed(chunk)
    return capture.result()


def test_a_stream_within_the_limit_is_kept_whole() -> None:
    captured = _capture(8, b"0123", b"4567")
    assert captured == Captured(b"012345", b"67", 0)
    assert captured.text(Masker()) == "01234567"


def test_a_longer_stream_keeps_its_start_and_end_around_a_marker() -> None:
    captured = _capture(8, b"0123", b"456789", b"abcdef")
    assert (captured.head, captured.tail, captured.dropped, captured.total) == (
        b"012345",
        b"ef",
        8,
        16,
    )
    assert captured.text(Masker()) == "012345\n... [truncated: 8 bytes] ...\nef"


def test_memory_stays_at_the_limit_whatever_is_fed() -> None:
    capture = BoundedCapture(1000)
    for _ in range(2000):
        capture.feed(b"x" * 4096)
    captured = capture.result()
    assert len(captured.head) + len(captured.tail) == 1000
    assert captured.dropped == 2000 * 4096 - 1000


def test_a_secret_cut_by_the_truncation_stays_masked() -> None:
    masker = Masker(frozenset({"hunter2-secret"}))
    # the head ends inside the secret, the tail starts inside another copy of it
    captured = _capture(16, b"pass=hunter2-se", b"x" * 100, b"-secret!")
    text = captured.text(masker)
    assert "hunter2" not in text
    assert "-secret" not in text
    assert text.startswith(f"pass={MASK}\n")
    assert text.endswith(f"\n{MASK}!")


def test_a_limit_below_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 byte"):
        BoundedCapture(0)
