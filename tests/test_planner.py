"""The planner: due releases per watermark and clock reading, catch-up policies, cost bounds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddeutil.workflow.schedules.planner import (
    Catchup,
    Plan,
    PlannedSchedule,
    Release,
    SkippedRange,
    advance_watermark,
    plan,
)

UTC = timezone.utc
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def at(text: str) -> datetime:
    """``"2024-01-01 10:00"`` (or with seconds) as aware UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(eq=False)
class Every:
    """A fake schedule firing every ``minutes`` minutes (offset ``offset``) since 2000-01-01.

    ``seconds`` adds to the period, for schedules denser than cron allows. Counts the
    fire times it hands out and the calls it gets, so tests can pin costs.
    """

    minutes: int
    offset: int = 0
    zone: tzinfo = UTC
    name: str | None = None
    seconds: int = 0
    yielded: int = 0
    yielded_before: int = 0
    calls: list[tuple[datetime, datetime]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.name or f"every {self.minutes}m{self.seconds}s+{self.offset}@{self.zone}"

    @property
    def timezone(self) -> tzinfo:
        return self.zone

    def _index_after(self, instant: datetime) -> int:
        """Index of the first slot strictly after ``instant``."""
        step = timedelta(minutes=self.minutes, seconds=self.seconds)
        return (instant - EPOCH - timedelta(minutes=self.offset)) // step + 1

    def _slot(self, index: int) -> datetime:
        step = timedelta(minutes=self.minutes, seconds=self.seconds)
        return EPOCH + timedelta(minutes=self.offset) + index * step

    def fire_times(
        self, after: datetime, until: datetime, *, newest_first: bool = False
    ) -> Iterator[datetime]:
        if newest_first:
            return self._backward(after, until)
        return self._forward(after, until)

    def _forward(self, after: datetime, until: datetime) -> Iterator[datetime]:
        self.calls.append((after, until))
        index = self._index_after(after)
        while (slot := self._slot(index)) <= until:
            self.yielded += 1
            yield slot
            index += 1

    def _backward(self, after: datetime, until: datetime) -> Iterator[datetime]:
        index = self._index_after(until) - 1
        while (slot := self._slot(index)) > after:
            self.yielded_before += 1
            yield slot
            index -= 1

    def all_between(self, after: datetime, until: datetime) -> list[datetime]:
        """Reference enumeration, not counted."""
        out = []
        index = self._index_after(after)
        while (slot := self._slot(index)) <= until:
            out.append(slot)
            index += 1
        return out


def times(releases: tuple[Release, ...]) -> list[datetime]:
    return [r.at for r in releases]


# -- window edges ---------------------------------------------------------------------------


def test_first_start_without_watermark_plans_nothing() -> None:
    schedule = Every(1)
    result = plan([PlannedSchedule("p", schedule)], watermark=None, now=at("2024-01-01 10:00"))
    assert result == Plan()
    assert schedule.calls == []


@pytest.mark.parametrize("now", ["2024-01-01 10:00", "2024-01-01 09:55"])
def test_now_at_or_before_watermark_plans_nothing(now: str) -> None:
    result = plan(
        [PlannedSchedule("p", Every(1), Catchup.ALL)],
        watermark=at("2024-01-01 10:00"),
        now=at(now),
    )
    assert result == Plan()


def test_no_schedules_and_no_fire_times_give_an_empty_plan() -> None:
    assert plan([], watermark=at("2024-01-01 10:00"), now=at("2024-01-01 11:00")) == Plan()
    daily = Every(24 * 60)
    result = plan(
        [PlannedSchedule("p", daily, Catchup.ALL)],
        watermark=at("2024-01-01 10:00"),
        now=at("2024-01-01 11:00"),
    )
    assert result == Plan()


def test_window_is_open_at_the_watermark_and_closed_at_now() -> None:
    result = plan(
        [PlannedSchedule("p", Every(5))],
        watermark=at("2024-01-01 10:00"),
        now=at("2024-01-01 10:05"),
    )
    assert times(result.due) == [at("2024-01-01 10:05")]


# -- restarts and catch-up ------------------------------------------------------------------


@pytest.mark.parametrize("catchup", list(Catchup))
def test_restart_straddling_a_slot_runs_it_once(catchup: Catchup) -> None:
    hourly = [PlannedSchedule("p", Every(60), catchup)]
    stopped, started = at("2024-01-01 09:59:59"), at("2024-01-01 10:00:20")
    first = plan(hourly, watermark=stopped, now=started)
    assert first.due == (
        Release("p", hourly[0].schedule.key, at("2024-01-01 10:00"), at("2024-01-01 10:00")),
    )
    assert first.due[0].late is False
    assert first.skipped == ()
    watermark = advance_watermark(stopped, started)
    second = plan(hourly, watermark=watermark, now=at("2024-01-01 10:01:00"))
    assert second == Plan()


@pytest.mark.parametrize(
    ("catchup", "due", "skipped"),
    [(Catchup.NONE, 0, 10), (Catchup.LATEST, 1, 9), (Catchup.ALL, 10, 0)],
)
def test_ten_hours_down_hourly(catchup: Catchup, due: int, skipped: int) -> None:
    result = plan(
        [PlannedSchedule("p", Every(60), catchup)],
        watermark=at("2024-01-01 00:30"),
        now=at("2024-01-01 10:30"),
    )
    assert len(result.due) == due
    assert len(result.skipped) == skipped
    assert result.skipped_ranges == ()
    every_slot = [at(f"2024-01-01 {h:02}:00") for h in range(1, 11)]
    assert sorted(times(result.due) + times(result.skipped)) == every_slot
    assert all(r.late for r in result.due + result.skipped)
    if catchup is Catchup.LATEST:
        assert times(result.due) == [at("2024-01-01 10:00")]
    if catchup is Catchup.NONE:
        assert {r.reason for r in result.skipped} == {"missed (catchup=none)"}


def test_catchup_all_is_capped_at_the_limit_newest_first() -> None:
    result = plan(
        [PlannedSchedule("p", Every(60), Catchup.ALL)],
        watermark=at("2024-01-01 00:30"),
        now=at("2024-01-01 10:30"),
        catchup_limit=3,
    )
    assert times(result.due) == [at(f"2024-01-01 {h:02}:00") for h in (8, 9, 10)]
    assert times(result.skipped) == [at(f"2024-01-01 {h:02}:00") for h in range(1, 8)]
    assert {r.reason for r in result.skipped} == {"beyond catchup limit 3"}
    assert {r.reason for r in result.due} == {"a missed release, run late (catchup: all)"}


def test_latest_runs_the_newest_missed_release_and_the_on_time_one() -> None:
    result = plan(
        [PlannedSchedule("p", Every(60), Catchup.LATEST)],
        watermark=at("2024-01-01 06:30"),
        now=at("2024-01-01 10:00:20"),
    )
    assert [(r.at, r.late) for r in result.due] == [
        (at("2024-01-01 09:00"), True),
        (at("2024-01-01 10:00"), False),
    ]
    assert times(result.skipped) == [at("2024-01-01 07:00"), at("2024-01-01 08:00")]
    assert result.due[1].reason is None


@pytest.mark.parametrize(
    ("grace", "late"),
    [(timedelta(seconds=60), False), (timedelta(seconds=20), True), (timedelta(0), True)],
)
def test_grace_decides_on_time_versus_missed(grace: timedelta, late: bool) -> None:
    result = plan(
        [PlannedSchedule("p", Every(60), Catchup.NONE)],
        watermark=at("2024-01-01 09:59"),
        now=at("2024-01-01 10:00:20"),
        grace=grace,
    )
    assert len(result.due + result.skipped) == 1
    assert bool(result.skipped) is late


def test_wall_clock_stepping_back_runs_nothing_twice() -> None:
    schedules = [PlannedSchedule("p", Every(1), Catchup.ALL)]
    readings = [at("2024-01-01 10:05")]
    readings += [at("2024-01-01 10:00") + timedelta(minutes=m) for m in range(11)]
    watermark: datetime | None = at("2024-01-01 10:00")
    released: list[datetime] = []
    for now in readings:
        result = plan(schedules, watermark=watermark, now=now)
        released += times(result.due) + times(result.skipped)
        watermark = advance_watermark(watermark, now)
    expected = [at("2024-01-01 10:00") + timedelta(minutes=m) for m in range(1, 11)]
    assert released == expected


def test_advance_watermark_never_moves_back() -> None:
    ten = at("2024-01-01 10:00")
    assert advance_watermark(None, ten) == ten
    assert advance_watermark(ten, ten - timedelta(minutes=5)) == ten
    assert advance_watermark(ten, ten + timedelta(minutes=1)) == ten + timedelta(minutes=1)
    naive = advance_watermark(None, datetime(2024, 1, 1, 10))
    assert naive == ten
    assert naive.tzinfo is UTC


# -- many schedules -------------------------------------------------------------------------


def test_releases_are_sorted_by_time_pipeline_then_schedule() -> None:
    five = Every(5, name="b-every-5")
    ten = Every(10, name="a-every-10")
    schedules = [
        PlannedSchedule("zeta", five),
        PlannedSchedule("alpha", five),
        PlannedSchedule("alpha", ten),
        PlannedSchedule("mid", ten),
    ]
    result = plan(
        schedules,
        watermark=at("2024-01-01 10:00"),
        now=at("2024-01-01 10:10"),
        grace=timedelta(minutes=30),
    )
    assert [(r.at.minute, r.pipeline, r.schedule) for r in result.due] == [
        (5, "alpha", "b-every-5"),
        (5, "zeta", "b-every-5"),
        (10, "alpha", "a-every-10"),
        (10, "alpha", "b-every-5"),
        (10, "mid", "a-every-10"),
        (10, "zeta", "b-every-5"),
    ]


def test_skipped_are_sorted_and_policies_apply_per_pipeline() -> None:
    hourly = Every(60)
    result = plan(
        [
            PlannedSchedule("z-none", hourly, Catchup.NONE),
            PlannedSchedule("a-all", hourly, Catchup.ALL),
            PlannedSchedule("m-latest", hourly, "latest"),  # type: ignore[arg-type]
        ],
        watermark=at("2024-01-01 00:30"),
        now=at("2024-01-01 03:30"),
    )
    assert [(r.at.hour, r.pipeline) for r in result.due] == [
        (1, "a-all"),
        (2, "a-all"),
        (3, "a-all"),
        (3, "m-latest"),
    ]
    assert [(r.at.hour, r.pipeline) for r in result.skipped] == [
        (1, "m-latest"),
        (1, "z-none"),
        (2, "m-latest"),
        (2, "z-none"),
        (3, "z-none"),
    ]


def test_a_shared_schedule_is_computed_once_and_a_repeated_one_released_once() -> None:
    shared = Every(5)
    copy = Every(5)  # same key, another object
    result = plan(
        [
            PlannedSchedule("a", shared),
            PlannedSchedule("b", copy),
            PlannedSchedule("b", shared),
        ],
        watermark=at("2024-01-01 10:00"),
        now=at("2024-01-01 10:05"),
    )
    assert [(r.pipeline, r.at.minute) for r in result.due] == [("a", 5), ("b", 5)]
    assert len(shared.calls) + len(copy.calls) == 1


# -- times and zones ------------------------------------------------------------------------


def test_logical_date_is_the_instant_in_the_schedule_zone_across_dst_fall_back() -> None:
    new_york = ZoneInfo("America/New_York")
    schedule = Every(60, offset=30, zone=new_york)
    result = plan(
        [PlannedSchedule("p", schedule)],
        watermark=at("2024-11-03 05:00"),
        now=at("2024-11-03 06:31"),
        grace=timedelta(hours=2),
    )
    first, second = result.due
    assert (first.at, second.at) == (at("2024-11-03 05:30"), at("2024-11-03 06:30"))
    for release in result.due:
        # (inter-zone == is always False inside an ambiguous hour, PEP 495: convert first)
        assert release.logical_date.astimezone(UTC) == release.at
        assert release.logical_date.tzinfo is new_york
        assert (release.logical_date.hour, release.logical_date.minute) == (1, 30)
    assert (first.logical_date.fold, second.logical_date.fold) == (0, 1)
    assert first.logical_date.utcoffset() == timedelta(hours=-4)
    assert second.logical_date.utcoffset() == timedelta(hours=-5)


def test_release_time_is_normalised_to_utc() -> None:
    @dataclass
    class Zoned:
        key: str = "zoned"
        timezone: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Bangkok"))

        def fire_times(
            self, after: datetime, until: datetime, *, newest_first: bool = False
        ) -> list[datetime]:
            return [datetime(2024, 1, 1, 17, 0, tzinfo=self.timezone)]

    result = plan(
        [PlannedSchedule("p", Zoned())],
        watermark=at("2024-01-01 09:59"),
        now=at("2024-01-01 10:00"),
    )
    assert result.due[0].at == at("2024-01-01 10:00")
    assert result.due[0].at.tzinfo is UTC
    assert result.due[0].logical_date.hour == 17


def test_fire_times_outside_the_window_are_ignored() -> None:
    @dataclass
    class Sloppy:
        key: str = "sloppy"
        timezone: tzinfo = UTC

        def fire_times(
            self, after: datetime, until: datetime, *, newest_first: bool = False
        ) -> list[datetime]:
            return [after, until, until + timedelta(minutes=1)]

    result = plan(
        [PlannedSchedule("p", Sloppy())],
        watermark=at("2024-01-01 09:59"),
        now=at("2024-01-01 10:00"),
    )
    assert times(result.due) == [at("2024-01-01 10:00")]


# -- cost bounds ----------------------------------------------------------------------------


@pytest.mark.parametrize("catchup", list(Catchup))
def test_a_year_down_on_a_minute_schedule_is_bounded(catchup: Catchup) -> None:
    minute = Every(1)
    now = at("2024-06-01 12:00:30")
    watermark = now - timedelta(days=365)
    result = plan(
        [PlannedSchedule("p", minute, catchup)],
        watermark=watermark,
        now=now,
        catchup_limit=100,
        skip_list_limit=10,
    )
    assert minute.yielded + minute.yielded_before <= 2 * (100 + 10 + 1) + 5
    runs = {Catchup.NONE: 0, Catchup.LATEST: 1, Catchup.ALL: 100}[catchup]
    newest_missed = at("2024-06-01 11:59")
    assert times(result.due)[-1:] == [at("2024-06-01 12:00")]  # on time
    assert len(result.due) == runs + 1
    assert len(result.skipped) == 10
    assert times(result.skipped)[-1] == newest_missed - timedelta(minutes=runs)
    (summary,) = result.skipped_ranges
    assert summary.after == watermark
    assert summary.until == newest_missed - timedelta(minutes=runs + 10)


def test_a_long_gap_walks_backwards() -> None:
    minute = Every(1)
    now = at("2024-06-01 12:00:30")
    result = plan(
        [PlannedSchedule("p", minute, Catchup.LATEST)],
        watermark=now - timedelta(days=365),
        now=now,
    )
    assert minute.yielded_before == 1 + 10 + 1
    assert minute.yielded == 1  # the on-time slot
    assert times(result.due) == [at("2024-06-01 11:59"), at("2024-06-01 12:00")]


def test_a_sparse_schedule_over_a_long_gap_stays_bounded() -> None:
    weekly = Every(7 * 24 * 60, offset=9 * 60)
    now = at("2024-06-01 12:00")
    watermark = now - timedelta(days=365)
    result = plan(
        [PlannedSchedule("p", weekly, Catchup.ALL)],
        watermark=watermark,
        now=now,
        catchup_limit=5,
        skip_list_limit=2,
    )
    expected = weekly.all_between(watermark, now)
    assert times(result.due) == expected[-5:]
    assert times(result.skipped) == expected[-7:-5]
    assert result.skipped_ranges[0].until == expected[-8]
    assert weekly.yielded + weekly.yielded_before <= 2 * (5 + 2 + 1)
    assert len(weekly.calls) < 20


# -- the same answer as a brute-force reference ---------------------------------------------


def reference(
    schedule: Every,
    catchup: Catchup,
    *,
    watermark: datetime,
    now: datetime,
    grace: timedelta,
    limit: int,
    listed: int,
) -> tuple[list[datetime], list[datetime], datetime | None]:
    slots = schedule.all_between(watermark, now) if now > watermark else []
    on_time = [s for s in slots if s > now - grace]
    missed = [s for s in slots if s <= now - grace]
    runs = {Catchup.NONE: 0, Catchup.LATEST: 1, Catchup.ALL: limit}[catchup]
    run = missed[max(len(missed) - runs, 0) :] if runs else []
    skipped = missed[: len(missed) - len(run)]
    shown = skipped[max(len(skipped) - listed, 0) :] if listed else []
    hidden = skipped[: len(skipped) - len(shown)]
    return sorted(run + on_time), shown, hidden[-1] if hidden else None


@settings(max_examples=300, deadline=None)
@given(
    period=st.integers(20, 4 * 3600),
    offset=st.integers(0, 59),
    gap=st.integers(-600, 60 * 24 * 3),
    grace=st.integers(0, 7200),
    catchup=st.sampled_from(list(Catchup)),
    limit=st.integers(1, 12),
    listed=st.integers(0, 5),
)
def test_matches_a_brute_force_reference(
    *,
    period: int,
    offset: int,
    gap: int,
    grace: int,
    catchup: Catchup,
    limit: int,
    listed: int,
) -> None:
    schedule = Every(0, offset, seconds=period)
    now = at("2024-03-01 12:00:17")
    watermark = now - timedelta(minutes=gap)
    result = plan(
        [PlannedSchedule("p", schedule, catchup)],
        watermark=watermark,
        now=now,
        grace=timedelta(seconds=grace),
        catchup_limit=limit,
        skip_list_limit=listed,
    )
    due, shown, hidden = reference(
        schedule,
        catchup,
        watermark=watermark,
        now=now,
        grace=timedelta(seconds=grace),
        limit=limit,
        listed=listed,
    )
    assert times(result.due) == due
    assert times(result.skipped) == shown
    assert [r.until for r in result.skipped_ranges] == ([hidden] if hidden else [])
    assert all(isinstance(r, SkippedRange) and r.after == watermark for r in result.skipped_ranges)


def test_a_schedule_denser_than_cron_keeps_only_the_newest_missed() -> None:
    dense = Every(0, seconds=10)
    now = at("2024-01-01 10:00")
    result = plan(
        [PlannedSchedule("p", dense, Catchup.NONE)],
        watermark=now - timedelta(minutes=2),
        now=now,
        grace=timedelta(minutes=1),
        skip_list_limit=3,
    )
    assert len(result.due) == 6
    assert times(result.skipped) == [now - timedelta(seconds=s) for s in (80, 70, 60)]
    assert result.skipped_ranges[0].until == now - timedelta(seconds=90)


# -- arguments ------------------------------------------------------------------------------


def test_catchup_accepts_template_spelling_and_rejects_others() -> None:
    assert PlannedSchedule("p", Every(1), "all").catchup is Catchup.ALL  # type: ignore[arg-type]
    assert PlannedSchedule("p", Every(1)).catchup is Catchup.LATEST
    with pytest.raises(ValueError, match="sometimes"):
        PlannedSchedule("p", Every(1), "sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grace": timedelta(seconds=-1)}, "grace"),
        ({"catchup_limit": 0}, "catchup_limit"),
        ({"skip_list_limit": -1}, "skip_list_limit"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan(
            [],
            watermark=at("2024-01-01 10:00"),
            now=at("2024-01-01 10:01"),
            **kwargs,  # type: ignore[arg-type]
        )


# -- with the real On -----------------------------------------------------------------------


def on(cron: str, zone: str = "UTC") -> Any:
    from ddeutil.workflow.schedules.on import On

    return On.parse({"cron": cron, "timezone": zone})


@pytest.mark.parametrize(
    ("catchup", "due"), [(Catchup.NONE, 0), (Catchup.LATEST, 1), (Catchup.ALL, 10)]
)
def test_on_hourly_ten_hours_down(catchup: Catchup, due: int) -> None:
    hourly = on("0 * * * *")
    result = plan(
        [PlannedSchedule("p", hourly, catchup)],
        watermark=at("2024-01-01 00:30"),
        now=at("2024-01-01 10:30"),
    )
    assert len(result.due) == due
    assert times(result.due) == [at(f"2024-01-01 {h:02}:00") for h in range(11 - due, 11)]
    assert len(result.skipped) == 10 - due
    assert {r.schedule for r in result.due + result.skipped} <= {"0 * * * *@UTC"}


def test_on_restart_straddling_a_slot_runs_it_once() -> None:
    result = plan(
        [PlannedSchedule("p", on("0 * * * *"), Catchup.NONE)],
        watermark=at("2024-01-01 09:59:59"),
        now=at("2024-01-01 10:00:20"),
    )
    assert [(r.at, r.late) for r in result.due] == [(at("2024-01-01 10:00"), False)]


def test_on_every_minute_down_for_a_year() -> None:
    now = at("2024-06-01 12:00:30")
    result = plan(
        [PlannedSchedule("p", on("* * * * *"), Catchup.LATEST)],
        watermark=now - timedelta(days=365),
        now=now,
    )
    assert times(result.due) == [at("2024-06-01 11:59"), at("2024-06-01 12:00")]
    assert len(result.skipped) == 10
    assert result.skipped_ranges[0].until == at("2024-06-01 11:48")


def test_on_logical_date_follows_the_zone_across_a_dst_change() -> None:
    weekdays = on("0 9 * * 1-5", "America/New_York")
    result = plan(
        [PlannedSchedule("p", weekdays, Catchup.ALL)],
        watermark=at("2024-11-01 12:00"),  # Friday, EDT
        now=at("2024-11-04 14:00:30"),  # Monday, EST
    )
    friday, monday = result.due
    assert (friday.at, friday.late) == (at("2024-11-01 13:00"), True)
    assert (monday.at, monday.late) == (at("2024-11-04 14:00"), False)
    for release in result.due:
        assert (release.logical_date.hour, release.logical_date.minute) == (9, 0)
        assert release.logical_date.tzinfo == ZoneInfo("America/New_York")
    assert friday.logical_date.utcoffset() == timedelta(hours=-4)
    assert monday.logical_date.utcoffset() == timedelta(hours=-5)
