"""The On schedule model: YAML shapes, errors, its fire times, the pinned DST policy."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from itertools import islice, pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError, model_validator

from ddeutil.workflow.errors import ConfigError, ScheduleError, TemplateNotFound
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.schedules import cron as cron_module
from ddeutil.workflow.schedules.on import On
from ddeutil.workflow.settings import Settings

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
BANGKOK = ZoneInfo("Asia/Bangkok")


def z(text: str) -> datetime:
    """``"2025-03-09 07:00"`` as aware UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def on(cron: str, zone: str = "UTC") -> On:
    return On.parse({"cron": cron, "timezone": zone})


def fmt(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S}"


def fire_times(schedule: On, after: datetime, until: datetime) -> list[datetime]:
    """Every fire time in ``(after, until]``, oldest first."""
    return list(schedule.fire_times(after, until))


def next_after(schedule: On, after: datetime | str) -> datetime:
    """The first fire time strictly after ``after``."""
    return next(iter(schedule.fire_times(after)))


def upcoming(schedule: On, after: datetime | str, count: int) -> list[datetime]:
    """The next ``count`` fire times after ``after``, on the schedule's wall clock."""
    return [t.astimezone(schedule.timezone) for t in islice(schedule.fire_times(after), count)]


def newest(schedule: On, until: datetime | str, count: int) -> list[datetime]:
    """The ``count`` newest fire times up to ``until``, on the schedule's wall clock."""
    after = datetime(1970, 1, 2, tzinfo=UTC)
    walk = schedule.fire_times(after, until, newest_first=True)
    return [t.astimezone(schedule.timezone) for t in islice(walk, count)]


@pytest.fixture
def loader(settings: Settings) -> Callable[[], Loader]:
    """A fresh loader over the test conf folder (call it after writing files)."""
    return lambda: Loader.from_settings(settings)


# --------------------------------------------------------------------- the README example


@pytest.mark.parametrize("key", ["cron", "cronjob"])
def test_readme_example_works_verbatim(
    key: str,
    write_conf: Callable[[str, str], Path],
    make_settings: Callable[..., Settings],
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_conf("schedules.yml", f'on_every_5_min:\n  type: on.On\n  {key}: "*/5 * * * *"\n')
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))  # from_loader's default settings

    schedule = On.from_loader(name="on_every_5_min", externals={})
    assert "*/5 * * * *" == str(schedule.cronjob)  # noqa: SIM300 - verbatim README

    times = schedule.fire_times("2022-01-01 00:00:00")
    local = [f"{t.astimezone(schedule.timezone):%Y-%m-%d %H:%M:%S}" for t in islice(times, 4)]
    assert local == [
        "2022-01-01 00:05:00",
        "2022-01-01 00:10:00",
        "2022-01-01 00:15:00",
        "2022-01-01 00:20:00",
    ]
    assert schedule.name == "on_every_5_min"
    assert schedule.timezone == BANGKOK  # WORKFLOW_CORE_TIMEZONE's default


def test_from_loader_uses_the_given_settings_and_loader(
    write_conf: Callable[[str, str], Path],
    make_settings: Callable[..., Settings],
) -> None:
    write_conf("a/b/on.yaml", 'nightly:\n  type: ddeutil.workflow.on.On\n  cron: "0 2 * * *"\n')
    settings = make_settings(WORKFLOW_CORE_TIMEZONE="America/New_York")
    schedule = On.from_loader("nightly", settings=settings)
    assert schedule.timezone == NY
    assert schedule.key == "0 2 * * *@America/New_York"
    same = On.from_loader("nightly", settings=settings, loader=Loader.from_settings(settings))
    assert same == schedule


def test_externals_are_merged_over_the_template(
    write_conf: Callable[[str, str], Path], settings: Settings
) -> None:
    write_conf(
        "on.yml", 'ny:\n  type: on.On\n  cron: "0 9 * * 1-5"\n  timezone: America/New_York\n'
    )
    schedule = On.from_loader("ny", {"timezone": "Asia/Bangkok"}, settings=settings)
    assert schedule.timezone == BANGKOK
    assert str(schedule.cronjob) == "0 9 * * 1-5"
    assert On.from_loader("ny", settings=settings).timezone == NY  # the template is unchanged


def test_from_loader_reports_unknown_and_foreign_templates(
    write_conf: Callable[[str, str], Path], settings: Settings
) -> None:
    path = write_conf("x.yml", "not_a_schedule:\n  type: ddeutil.workflow.clock.FakeClock\n")
    with pytest.raises(TemplateNotFound, match="'missing'"):
        On.from_loader("missing", settings=settings)
    with pytest.raises(ConfigError, match="not a schedule") as info:
        On.from_loader("not_a_schedule", settings=settings)
    assert (info.value.file, info.value.template, info.value.key) == (
        str(path),
        "not_a_schedule",
        "type",
    )


def test_template_errors_carry_file_template_and_key(
    write_conf: Callable[[str, str], Path], settings: Settings
) -> None:
    path = write_conf(
        "bad.yml", 'bad_tz:\n  type: on.On\n  cron: "* * * * *"\n  timezone: Mars/Olympus\n'
    )
    with pytest.raises(ScheduleError) as info:
        On.from_loader("bad_tz", settings=settings)
    err = info.value
    assert (err.file, err.template, err.key) == (str(path), "bad_tz", "timezone")
    assert str(err).startswith(f"{path}: template 'bad_tz': key 'timezone': unknown timezone")


def test_the_bundled_schedules_load(settings: Settings) -> None:
    conf = Path(__file__).resolve().parents[1] / "conf"
    bundled = settings.evolve(conf_path=conf)
    loader = Loader.from_settings(bundled)
    names = [t.name for t in loader.of_type(On)]
    assert "on_every_5_min" in names
    for name in names:
        schedule = On.from_loader(name, settings=bundled, loader=loader)
        assert next_after(schedule, z("2025-01-01 00:00")) > z("2025-01-01 00:00")


# ------------------------------------------------------------------------ the YAML shape


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"cron": "*/5 * * * *"}, "*/5 * * * *"),
        ({"cronjob": "*/5 * * * *"}, "*/5 * * * *"),
        ({"cron": " 0  9 * * MON-FRI "}, "0 9 * * MON-FRI"),
        ({"cron": "@daily"}, "@daily"),
        ({"type": "on.On", "cron": "@hourly"}, "@hourly"),
        ({"interval": "daily", "time": "01:30"}, "30 1 * * *"),
        ({"interval": "daily"}, "0 0 * * *"),
        ({"interval": "Daily", "time": "23:59"}, "59 23 * * *"),
        ({"interval": "weekly", "time": "08:00"}, "0 8 * * 1"),
        ({"interval": "weekly", "time": "08:00", "day": "FRI"}, "0 8 * * 5"),
        ({"interval": "weekly", "time": "8:05", "day": "sunday"}, "5 8 * * 0"),
        ({"interval": "weekly", "day": 6}, "0 0 * * 6"),
        ({"interval": "weekly", "day": "0"}, "0 0 * * 0"),
        ({"interval": "monthly", "time": "06:15"}, "15 6 1 * *"),
        ({"interval": "monthly", "time": "06:15", "day": 31}, "15 6 31 * *"),
        ({"interval": "monthly", "day": "15"}, "0 0 15 * *"),
    ],
)
def test_schedule_shapes_produce_their_cron(data: dict[str, Any], expected: str) -> None:
    assert str(On.parse(data).cronjob) == expected


def test_zone_comes_from_the_mapping_then_the_default_then_the_documented_default() -> None:
    assert (
        On.parse({"cron": "* * * * *", "timezone": "America/New_York"}, default_tz="UTC").timezone
        == NY
    )
    assert On.parse({"cron": "* * * * *"}, default_tz=NY).timezone == NY
    assert On.parse({"cron": "* * * * *"}, default_tz="America/New_York").timezone == NY
    assert On.parse({"cron": "* * * * *", "timezone": None}, default_tz=NY).timezone == NY
    assert On.parse({"cron": "* * * * *"}).timezone == BANGKOK
    assert On.model_validate({"cron": "* * * * *"}, context={"default_tz": NY}).timezone == NY
    assert On(cron="* * * * *", timezone=NY).timezone == NY  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("data", "key", "message"),
    [
        (
            {"cron": "* * * * *", "timezone": "Mars/Olympus"},
            "timezone",
            "unknown timezone 'Mars/Olympus'",
        ),
        ({"cron": "* * * * *", "timezone": "America"}, "timezone", "unknown timezone"),
        ({"cron": "* * * * *", "timezone": "../etc/passwd"}, "timezone", "unknown timezone"),
        ({"cron": "* * * * *", "timezone": ""}, "timezone", "IANA zone name"),
        ({"cron": "* * * * *", "timezone": 7}, "timezone", "IANA zone name"),
        (
            {"cron": "61 * * * *"},
            "cron",
            "invalid cron expression '61 * * * *': minute: 61 is out of range",
        ),
        ({"cronjob": "*/0 * * * *"}, "cronjob", "step 0"),
        ({"cron": "0 0 * * * *"}, "cron", "expected 5 fields"),
        ({"cron": None}, "cron", "must be a string"),
        (
            {"cron": "* * * * *", "cronjob": "* * * * *"},
            "cron",
            "either `cron` or `cronjob`, not both",
        ),
        ({}, "cron", "missing `cron`"),
        ({"timezone": "UTC"}, "cron", "missing `cron`"),
        ({"cron": "* * * * *", "interval": "daily"}, "interval", "cannot be combined"),
        ({"cron": "* * * * *", "time": "01:00"}, "time", "cannot be combined"),
        ({"time": "01:00"}, "interval", "needs `interval"),
        ({"interval": "hourly"}, "interval", "daily, weekly or monthly, got 'hourly'"),
        ({"interval": 1}, "interval", "daily, weekly or monthly"),
        ({"interval": "daily", "time": 90}, "time", "YAML 1.1 reads an unquoted 01:30 as a number"),
        ({"interval": "daily", "time": "24:00"}, "time", '"HH:MM"'),
        ({"interval": "daily", "time": "1:5"}, "time", '"HH:MM"'),
        ({"interval": "daily", "time": "01:30:00"}, "time", '"HH:MM"'),
        ({"interval": "daily", "time": "noon"}, "time", '"HH:MM"'),
        ({"interval": "daily", "day": 1}, "day", "does not apply to a daily interval"),
        ({"interval": "weekly", "day": "funday"}, "day", "day name (MON, Monday) or 0-6"),
        ({"interval": "weekly", "day": 7}, "day", "0-6"),
        ({"interval": "weekly", "day": True}, "day", "0-6"),
        ({"interval": "monthly", "day": 0}, "day", "1-31"),
        ({"interval": "monthly", "day": "32"}, "day", "1-31"),
        ({"interval": "monthly", "day": "MON"}, "day", "1-31"),
        ({"cron": "* * * * *", "timzone": "UTC"}, "timzone", "unknown key 'timzone'"),
        ({"cron": "* * * * *", "name": 5}, "name", "name must be a string"),
    ],
)
def test_bad_input_is_a_schedule_error_naming_the_key(
    data: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ScheduleError) as info:
        On.parse(data)
    assert isinstance(info.value, ConfigError)
    assert not isinstance(info.value, ValidationError)
    assert info.value.key == key
    assert message in str(info.value)


@pytest.mark.parametrize("value", ["*/5 * * * *", ["*/5 * * * *"], 5, None])
def test_a_schedule_must_be_a_mapping(value: Any) -> None:
    with pytest.raises(ScheduleError, match="must be a mapping"):
        On.model_validate(value)


def test_pydantic_errors_are_converted() -> None:
    # On.parse turns any remaining pydantic error into a ScheduleError with the key path
    class Strict(On):
        @model_validator(mode="before")
        @classmethod
        def _read(cls, data: Any, info: Any) -> Any:
            return {"cronjob": "* * * * *", "timezone": 3, "name": None}

    with pytest.raises(ScheduleError) as info:
        Strict.parse({"cron": "* * * * *"})
    assert info.value.key == "timezone"
    assert isinstance(info.value.__cause__, ValidationError)


# -------------------------------------------------------------------------- from_value


def test_from_value_takes_a_template_name_or_an_inline_mapping(
    write_conf: Callable[[str, str], Path], make_settings: Callable[..., Settings]
) -> None:
    write_conf("on.yml", 'every_5:\n  type: on.On\n  cron: "*/5 * * * *"\n')
    settings = make_settings(WORKFLOW_CORE_TIMEZONE="America/New_York")
    loader = Loader.from_settings(settings)
    named = On.from_value("every_5", loader=loader, settings=settings)
    inline = On.from_value({"cronjob": "*/5 * * * *"}, loader=loader, settings=settings)
    assert named.name == "every_5"
    assert inline.name is None
    assert named.key == inline.key == "*/5 * * * *@America/New_York"  # the key ignores names
    assert named != inline
    with pytest.raises(TemplateNotFound, match="'nope'"):
        On.from_value("nope", loader=loader, settings=settings)
    with pytest.raises(ScheduleError) as info:
        On.from_value({"cron": "* * *"}, loader=loader, settings=settings)
    assert info.value.key == "cron"
    assert info.value.template is None
    with pytest.raises(ScheduleError, match="template name or a mapping"):
        On.from_value(5, loader=loader, settings=settings)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- the model


def test_schedules_are_frozen_hashable_values() -> None:
    a = on("0 9 * * 1-5", "America/New_York")
    b = on("0 9 * * 1-5", "America/New_York")
    assert a == b
    assert hash(a) == hash(b)
    assert a != on("0 9 * * 1-5", "UTC")
    assert pickle.loads(pickle.dumps(a)) == a
    assert next_after(pickle.loads(pickle.dumps(a)), z("2025-01-01 00:00")) == z("2025-01-01 14:00")
    assert a.model_dump(mode="json") == {
        "cronjob": "0 9 * * 1-5",
        "timezone": "America/New_York",
        "name": None,
        "jitter": 0,
    }
    with pytest.raises(ValidationError):
        a.name = "x"  # type: ignore[misc]


# ------------------------------------------------------------------------ fire times


def test_fire_times_step_strictly_after_and_walk_back_from_until() -> None:
    schedule = on("*/5 * * * *")
    assert fmt(next_after(schedule, "2022-01-01 00:05:00")) == "2022-01-01 00:10:00"
    assert [fmt(t) for t in newest(schedule, "2022-01-01 00:05:00", 3)] == [
        "2022-01-01 00:05:00",
        "2022-01-01 00:00:00",
        "2021-12-31 23:55:00",
    ]
    back = schedule.fire_times(z("2022-01-01 00:00"), z("2022-01-01 00:12"), newest_first=True)
    assert list(back) == [z("2022-01-01 00:10"), z("2022-01-01 00:05")]  # `after` excluded
    with pytest.raises(ValueError, match="newest_first needs an `until`"):
        schedule.fire_times(z("2022-01-01 00:00"), newest_first=True)


def test_sub_second_bounds_step_to_the_neighbouring_fire_times() -> None:
    start = datetime(2022, 1, 1, 0, 5, 0, 500_000, tzinfo=UTC)
    assert fmt(next_after(on("*/5 * * * *"), start)) == "2022-01-01 00:10:00"
    assert fmt(newest(on("*/5 * * * *"), start, 1)[0]) == "2022-01-01 00:05:00"
    assert next_after(on("*/5 * * * *"), start) == z("2022-01-01 00:10")


def test_fire_times_are_utc_and_match_the_schedule_zone_wall_clock() -> None:
    schedule = on("0 9 * * 1-5", "America/New_York")
    first, second = islice(schedule.fire_times(z("2025-01-03 15:00")), 2)  # a Friday
    assert first.tzinfo is UTC
    assert first == datetime(2025, 1, 6, 9, 0, tzinfo=NY)  # Monday 09:00 local
    assert fmt(second.astimezone(NY)) == "2025-01-07 09:00:00"
    week = upcoming(schedule, z("2025-01-05 00:00"), 5)
    assert [f"{d:%a %H:%M}" for d in week] == [
        "Mon 09:00",
        "Tue 09:00",
        "Wed 09:00",
        "Thu 09:00",
        "Fri 09:00",
    ]


@pytest.fixture
def machine_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pretend the machine runs in Los Angeles, far from the schedules under test."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("machine_zone")
@pytest.mark.parametrize(
    "start",
    ["2022-01-01 00:00:00", "2022-01-01T00:00:00", "2022-01-01", datetime(2022, 1, 1)],
)
def test_a_naive_start_is_read_in_the_schedule_zone_not_the_machines(start: str | datetime) -> None:
    first = next_after(on("*/5 * * * *", "Asia/Bangkok"), start)
    assert first == datetime(2022, 1, 1, 0, 5, tzinfo=BANGKOK)
    assert first == z("2021-12-31 17:05")


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("2022-01-01 00:00:00+00:00", "2022-01-01 07:05:00"),
        ("2022-01-01T00:00:00Z", "2022-01-01 07:05:00"),
        (datetime(2022, 1, 1, tzinfo=UTC), "2022-01-01 07:05:00"),
        (datetime(2022, 1, 1, tzinfo=NY), "2022-01-01 12:05:00"),
    ],
)
def test_an_aware_start_is_converted(start: str | datetime, expected: str) -> None:
    assert fmt(upcoming(on("*/5 * * * *", "Asia/Bangkok"), start, 1)[0]) == expected


def test_bad_starts_are_rejected() -> None:
    schedule = on("*/5 * * * *")
    with pytest.raises(ValueError, match="invalid start 'yesterday'"):
        schedule.fire_times("yesterday")
    with pytest.raises(TypeError, match="expected a datetime"):
        schedule.fire_times(12)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a datetime"):
        schedule.fire_times(z("2022-01-01 00:00"), 12)  # type: ignore[arg-type]


# ------------------------------------------------------------------ DST policy through On


@pytest.mark.parametrize(
    ("cron", "zone", "after", "until", "expected"),
    [
        (
            "30 2 * * *",
            "America/New_York",
            "2025-03-09 00:00",
            "2025-03-10 00:00",
            ["2025-03-09 07:00"],
        ),
        (
            "30 1 * * *",
            "America/New_York",
            "2025-11-02 00:00",
            "2025-11-03 00:00",
            ["2025-11-02 05:30"],
        ),
        (
            "0 * * * *",
            "America/New_York",
            "2025-11-02 04:30",
            "2025-11-02 07:00",
            ["2025-11-02 05:00", "2025-11-02 06:00", "2025-11-02 07:00"],
        ),
        (
            "0 0 * * *",
            "America/Sao_Paulo",
            "2018-11-04 00:00",
            "2018-11-05 00:00",
            ["2018-11-04 03:00"],
        ),
    ],
)
def test_pinned_dst_cases(
    cron: str, zone: str, after: str, until: str, expected: list[str]
) -> None:
    schedule = on(cron, zone)
    want = [z(t) for t in expected]
    assert fire_times(schedule, z(after), z(until)) == want
    assert list(schedule.fire_times(z(after), z(until))) == want
    assert list(schedule.fire_times(z(after), want[-1], newest_first=True)) == want[::-1]


def test_the_sao_paulo_midnight_runs_at_one_local() -> None:
    first, second = upcoming(on("0 0 * * *", "America/Sao_Paulo"), "2018-11-03 12:00:00", 2)
    assert f"{first:%Y-%m-%d %H:%M %z}" == "2018-11-04 01:00 -0200"
    assert f"{second:%Y-%m-%d %H:%M %z}" == "2018-11-05 00:00 -0200"


def test_gap_and_fold_results_carry_the_right_local_offsets() -> None:
    gap = upcoming(on("30 2 * * *", "America/New_York"), "2025-03-09 00:00:00", 1)
    assert f"{gap[0]:%H:%M %Z}" == "03:00 EDT"
    fold = upcoming(on("0 * * * *", "America/New_York"), "2025-11-02 00:30:00", 3)
    assert [f"{t:%H:%M %Z}" for t in fold] == ["01:00 EDT", "01:00 EST", "02:00 EST"]


def test_a_year_of_hourly_fire_times_is_strictly_increasing_in_utc() -> None:
    schedule = on("0 * * * *", "America/New_York")
    times = fire_times(schedule, z("2025-01-01 00:00"), z("2026-01-01 00:00"))
    assert len(times) == len(set(times)) == 8760
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(times))
    assert all(t.tzinfo is UTC for t in times)
    back = schedule.fire_times(z("2025-01-01 00:00"), z("2026-01-01 00:00"), newest_first=True)
    assert list(back) == times[::-1]


# --------------------------------------------------------------------- the tick helper


def test_fire_times_is_half_open_previous_excluded_current_included() -> None:
    schedule = on("*/5 * * * *")
    assert fire_times(schedule, z("2025-01-01 00:05"), z("2025-01-01 00:10")) == [
        z("2025-01-01 00:10")
    ]
    assert fire_times(schedule, z("2025-01-01 00:05"), z("2025-01-01 00:09")) == []
    assert fire_times(schedule, z("2025-01-01 00:10"), z("2025-01-01 00:10")) == []
    assert fire_times(schedule, z("2025-01-01 00:10"), z("2025-01-01 00:05")) == []
    edge = datetime(2025, 1, 1, 0, 9, 59, 999_999, tzinfo=UTC)
    assert fire_times(schedule, edge, z("2025-01-01 00:10")) == [z("2025-01-01 00:10")]
    assert fire_times(schedule, z("2025-01-01 00:05"), edge) == []


def test_a_ten_hour_gap_returns_every_missed_hour() -> None:
    schedule = on("0 * * * *", "Asia/Bangkok")
    missed = fire_times(schedule, z("2025-01-01 00:30"), z("2025-01-01 10:30"))
    assert missed == [z("2025-01-01 01:00") + timedelta(hours=i) for i in range(10)]


def test_minute_ticks_give_the_same_fire_times_as_one_window() -> None:
    schedules = [
        on("*/5 * * * *", "America/New_York"),
        on("30 1 * * *", "America/New_York"),
        on("0 * * * *", "America/New_York"),
    ]
    start = z("2025-11-01 20:00")
    for schedule in schedules:
        ticked: list[datetime] = []
        now = start
        for _ in range(24 * 60):
            ticked += fire_times(schedule, now, now + timedelta(minutes=1))
            now += timedelta(minutes=1)
        assert ticked == fire_times(schedule, start, now), schedule.cronjob
        assert ticked == list(schedule.fire_times(start, now))


def test_a_quiet_tick_computes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    schedule = on("0 9 * * 1-5", "America/New_York")
    fire_times(schedule, z("2025-01-06 14:30"), z("2025-01-06 14:31"))  # learns the next fire
    calls: list[int] = []
    real = cron_module.CronExpression.next_wall

    def counting(self: cron_module.CronExpression, lo: int) -> int:
        calls.append(lo)
        return real(self, lo)

    monkeypatch.setattr(cron_module.CronExpression, "next_wall", counting)
    now = z("2025-01-06 14:31")
    for _ in range(23 * 60 + 28):  # up to 13:59Z the next day, the minute before 09:00 EST
        assert fire_times(schedule, now, now + timedelta(minutes=1)) == []
        now += timedelta(minutes=1)
    assert calls == []
    assert fire_times(schedule, z("2025-01-07 13:59"), z("2025-01-07 14:00")) == [
        z("2025-01-07 14:00")
    ]
    assert len(calls) == 1  # the next fire time after 14:00 is learnt once


def test_newest_first_walks_back_from_until_down_to_after() -> None:
    schedule = on("0 * * * *")
    walk = schedule.fire_times(z("2025-01-01 00:00"), z("2025-01-01 10:00"), newest_first=True)
    got = list(islice(walk, 3))
    assert got == [z("2025-01-01 10:00"), z("2025-01-01 09:00"), z("2025-01-01 08:00")]
    walk = schedule.fire_times(z("2025-01-01 07:00"), z("2025-01-01 10:30"), newest_first=True)
    assert list(walk) == [z("2025-01-01 10:00"), z("2025-01-01 09:00"), z("2025-01-01 08:00")]


def test_key_and_the_next_fire_time() -> None:
    schedule = on("@daily", "Asia/Bangkok")
    assert schedule.key == "@daily@Asia/Bangkok"
    assert next_after(schedule, z("2025-01-01 16:59:59")) == z("2025-01-01 17:00")
    assert next_after(schedule, z("2025-01-01 17:00")) == z("2025-01-02 17:00")
    assert next_after(schedule, z("2025-01-01 17:00")).tzinfo is UTC


def test_naive_tick_bounds_are_read_in_the_schedule_zone() -> None:
    schedule = on("0 9 * * *", "Asia/Bangkok")
    naive = fire_times(schedule, datetime(2025, 1, 1, 8, 30), datetime(2025, 1, 1, 9, 0))
    assert naive == [z("2025-01-01 02:00")]
    assert list(schedule.fire_times(datetime(2025, 1, 1, 8, 30), datetime(2025, 1, 1, 9))) == naive


def test_model_copy_with_update_is_validated_and_recompiled() -> None:
    schedule = on("0 9 * * *", "UTC")
    moved = schedule.model_copy(update={"timezone": "Asia/Bangkok"})
    assert moved.timezone == BANGKOK
    assert next_after(moved, z("2025-01-01 00:00")) == z("2025-01-01 02:00")
    assert next_after(schedule, z("2025-01-01 00:00")) == z("2025-01-01 09:00")
    assert schedule.model_copy() == schedule
    with pytest.raises(ScheduleError) as info:
        schedule.model_copy(update={"cronjob": "61 * * * *"})
    assert info.value.key == "cronjob"


def test_json_schema_describes_the_normalised_fields() -> None:
    schema = On.model_json_schema(mode="serialization")
    assert schema["properties"]["cronjob"]["type"] == "string"
    assert "cronjob" in schema["required"]
