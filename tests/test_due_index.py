"""The due index: a claim round passes over pipelines with nothing due, never one with a release."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ddeutil.workflow.schedules.cron_schedule import CronSchedule
from ddeutil.workflow.schedules.planner import PlannedSchedule
from ddeutil.workflow.scheduling.due_index import HORIZON, DueIndex

UTC = timezone.utc
T0 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)


def _daily_at_nine(name: str = "p") -> list[PlannedSchedule]:
    return [PlannedSchedule(name, CronSchedule.parse("0 9 * * *", "UTC"))]


def test_a_pipeline_is_quiet_until_its_next_fire_time() -> None:
    index, schedules = DueIndex(), _daily_at_nine()
    assert not index.quiet("p", T0, T0, schedules)  # unknown: planned
    index.learn("p", T0, schedules)
    assert index.quiet("p", T0, T0 + timedelta(minutes=59), schedules)
    assert not index.quiet("p", T0, T0 + timedelta(hours=1), schedules)  # 09:00 is due
    # A watermark moved on by another round (any daemon) keeps the answer.
    assert index.quiet("p", T0 + timedelta(minutes=30), T0 + timedelta(minutes=59), schedules)


def test_a_watermark_behind_what_was_learned_is_planned() -> None:
    """A round that rolled back left the watermark where it was: plan it, never skip it."""
    index, schedules = DueIndex(), _daily_at_nine()
    index.learn("p", T0, schedules)
    assert not index.quiet("p", T0 - timedelta(minutes=1), T0 + timedelta(minutes=1), schedules)


def test_other_schedules_after_a_reload_are_planned_and_forget_plans_all() -> None:
    index, schedules = DueIndex(), _daily_at_nine()
    index.learn("p", T0, schedules)
    reloaded = _daily_at_nine()  # equal, but another load of the conf
    assert not index.quiet("p", T0, T0 + timedelta(minutes=1), reloaded)
    index.learn("p", T0, reloaded)
    assert index.quiet("p", T0, T0 + timedelta(minutes=1), reloaded)
    index.forget()
    assert len(index) == 0
    assert not index.quiet("p", T0, T0 + timedelta(minutes=1), reloaded)


def test_the_soonest_schedule_of_a_pipeline_decides() -> None:
    index = DueIndex()
    schedules = [
        PlannedSchedule("p", CronSchedule.parse("0 9 * * *", "UTC")),
        PlannedSchedule("p", CronSchedule.parse("30 8 * * *", "UTC")),
    ]
    index.learn("p", T0, schedules)
    assert index.quiet("p", T0, T0 + timedelta(minutes=29), schedules)
    assert not index.quiet("p", T0, T0 + timedelta(minutes=30), schedules)


def test_a_schedule_beyond_the_horizon_is_planned_at_its_end() -> None:
    index = DueIndex()
    schedules = [PlannedSchedule("p", CronSchedule.parse("0 0 29 2 *", "UTC"))]  # 2028-02-29
    index.learn("p", T0, schedules)
    assert index.quiet("p", T0, T0 + HORIZON - timedelta(minutes=1), schedules)
    assert not index.quiet("p", T0, T0 + HORIZON, schedules)
