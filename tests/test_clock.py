"""Clocks return aware UTC instants; the fake one moves only when told."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from ddeutil.workflow.clock import FakeClock, SystemClock, ensure_utc


def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is timezone.utc


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(datetime(2024, 1, 1, 12))
    first = clock.now()
    assert first == datetime(2024, 1, 1, 12, tzinfo=timezone.utc)
    assert clock.now() == first
    assert clock.advance(90) == first + timedelta(seconds=90)
    assert clock.advance(timedelta(minutes=1)) == first + timedelta(seconds=150)


def test_fake_clock_can_step_back() -> None:
    clock = FakeClock(datetime(2024, 1, 1, 12, tzinfo=timezone.utc))
    clock.set(datetime(2024, 1, 1, 11, 55, tzinfo=timezone.utc))
    assert clock.now().minute == 55


def test_ensure_utc_converts_aware_and_labels_naive() -> None:
    bangkok = datetime(2024, 1, 1, 7, tzinfo=ZoneInfo("Asia/Bangkok"))
    assert ensure_utc(bangkok) == datetime(2024, 1, 1, 0, tzinfo=timezone.utc)
    assert ensure_utc(bangkok).tzinfo is timezone.utc
    assert ensure_utc(datetime(2024, 1, 1)).tzinfo is timezone.utc
