"""The dispatch seam's records: frozen, JSON round trips, no engine and no store."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
from ddeutil.workflow.result import Status
from ddeutil.workflow.runs import ReleaseKey, TriggerKind


def test_a_scheduled_request_round_trips_through_json_with_its_zone() -> None:
    at = datetime(2024, 3, 10, 2, 30, tzinfo=timezone.utc)
    logical = at.astimezone(ZoneInfo("Asia/Bangkok"))
    request = RunRequest(
        run_id="20240310T023000-1a2b3c4d",
        pipeline="etl",
        version="0123abcd",
        params={"n": 1, "names": ["a", "b"], "flag": True, "none": None},
        release=ReleaseKey("etl", "30 2 * * *@Asia/Bangkok", at),
        logical_date=logical,
        trigger=TriggerKind.SCHEDULE,
        attempt=2,
    )

    text = request.to_json()
    back = RunRequest.from_json(text)

    assert back == request
    assert back.logical_date is not None
    assert back.logical_date.tzinfo == ZoneInfo("Asia/Bangkok")
    assert json.loads(text)["logical_date"] == {
        "at": "2024-03-10T09:30:00+07:00",
        "zone": "Asia/Bangkok",
    }


def test_a_manual_request_round_trips_and_dates_in_params_travel_as_iso_text() -> None:
    request = RunRequest(run_id="r1", pipeline="p", params={"day": date(2024, 1, 2)})

    back = RunRequest.from_json(request.to_json())

    assert back.params == {"day": "2024-01-02"}
    assert (back.release, back.logical_date, back.version) == (None, None, None)
    assert (back.trigger, back.attempt) == (TriggerKind.MANUAL, 1)


def test_a_param_json_cannot_carry_is_refused() -> None:
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        RunRequest(run_id="r1", pipeline="p", params={"f": object()}).to_json()


@pytest.mark.parametrize(
    "event",
    [
        RunEvent("started", "r1"),
        RunEvent("finished", "r1", Status.SUCCESS),
        RunEvent("finished", "r1", Status.FAILED, "main/s1: boom"),
        RunEvent("finished", "r1", None, "not started (no longer PENDING)"),
    ],
)
def test_events_round_trip_through_json(event: RunEvent) -> None:
    assert RunEvent.from_json(event.to_json()) == event
    assert event.failed is (event.status is Status.FAILED)


def test_records_are_frozen() -> None:
    request = RunRequest(run_id="r1", pipeline="p")
    with pytest.raises(AttributeError):
        request.run_id = "r2"  # type: ignore[misc]
