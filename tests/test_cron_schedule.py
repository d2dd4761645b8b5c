"""CronSchedule: the scheduler's pydantic-free schedule record fires exactly as On does."""

from __future__ import annotations

import pickle
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from ddeutil.workflow.errors import ScheduleError
from ddeutil.workflow.schedules.cron_schedule import CronSchedule
from ddeutil.workflow.schedules.on import On
from ddeutil.workflow.schedules.planner import Catchup, PlannedSchedule, plan

UTC = timezone.utc

CASES = [
    ("* * * * *", "UTC"),
    ("*/5 * * * *", "Asia/Bangkok"),
    ("30 1 * * *", "America/New_York"),  # a fixed time inside the fall-back hour
    ("30 2 * * *", "America/New_York"),  # a fixed time inside the spring-forward gap
    ("15 * * * *", "Europe/London"),
    ("0 0 29 2 *", "America/Sao_Paulo"),
    ("@weekly", "Europe/London"),
]


@pytest.mark.parametrize(("cron", "zone"), CASES)
def test_fire_times_equal_those_of_on_across_dst(cron: str, zone: str) -> None:
    on = On.parse({"cron": cron, "timezone": zone})
    record = CronSchedule.of(on)
    assert record == CronSchedule.parse(str(on.cronjob), on.timezone.key)
    assert record.key == on.key
    for start in ("2025-03-08 00:00", "2025-11-01 12:00", "2024-02-27 00:00"):
        after = datetime.fromisoformat(start).replace(tzinfo=UTC)
        until = after + timedelta(days=3)
        assert list(islice(record.fire_times(after, until), 300)) == list(
            islice(on.fire_times(after, until), 300)
        )
        assert list(islice(record.fire_times(after, until, newest_first=True), 50)) == list(
            islice(on.fire_times(after, until, newest_first=True), 50)
        )
        assert next(iter(record.fire_times(after))) == next(iter(on.fire_times(after)))
        naive = datetime.fromisoformat(start)  # a wall-clock time in the schedule's zone
        assert next(iter(record.fire_times(naive))) == next(iter(on.fire_times(naive)))


def test_the_planner_plans_the_same_releases_for_either() -> None:
    on = On.parse({"cron": "*/15 * * * *", "timezone": "Asia/Bangkok", "name": "q"})
    now = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    watermark = now - timedelta(hours=5)
    plans = [
        plan(
            [PlannedSchedule("p", schedule, Catchup.ALL)],
            watermark=watermark,
            now=now,
            catchup_limit=7,
        )
        for schedule in (on, CronSchedule.of(on))
    ]
    assert plans[0] == plans[1]
    assert len(plans[0].due) == 8  # the one on time and 7 caught up
    assert plans[0].skipped


def test_records_share_their_compiled_form_and_pickle_small() -> None:
    first = CronSchedule.parse("* * * * *", "UTC")
    second = CronSchedule.parse("* * * * *", "UTC", name="other")
    assert first._cron is second._cron
    copy = pickle.loads(pickle.dumps(first))
    assert copy == first
    assert copy._cron is first._cron
    assert first != second  # the name is part of the record
    assert hash(first) == hash(CronSchedule.parse("* * * * *", "UTC"))


def test_parse_rejects_what_on_rejects() -> None:
    with pytest.raises(ScheduleError):
        CronSchedule.parse("61 * * * *", "UTC")
    with pytest.raises(TypeError):
        CronSchedule.parse("* * * * *", "UTC").fire_times("2024-01-01")  # type: ignore[arg-type]
    assert CronSchedule.parse("* * * * *", "Europe/London").timezone == ZoneInfo("Europe/London")


def test_the_record_and_the_cron_machinery_need_no_pydantic() -> None:
    probe = (
        "import sys\n"
        "from ddeutil.workflow.schedules.cron_schedule import CronSchedule\n"
        "from ddeutil.workflow.schedules.planner import plan\n"
        "s = CronSchedule.parse('0 1 * * *', 'Asia/Bangkok')\n"
        "print(s.key, sorted(m for m in sys.modules if m.startswith('pydantic')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "0 1 * * *@Asia/Bangkok []"
