"""Store records and encoding: release keys, DuplicateRun, JSON, timestamps."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ddeutil.workflow.errors import StoreError, WorkflowError
from ddeutil.workflow.result import ErrorRecord, Status
from ddeutil.workflow.store import (
    DuplicateRun,
    MemoryRunStore,
    ReleaseKey,
    RunFilter,
    RunRecord,
    TriggerKind,
)
from ddeutil.workflow.store._codec import dumps_json, load_errors, ts_text

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_release_key_is_normalised_to_utc() -> None:
    local = ReleaseKey("p", "s", datetime(2024, 1, 1, 7, tzinfo=ZoneInfo("Asia/Bangkok")))
    naive = ReleaseKey("p", "s", datetime(2024, 1, 1))
    assert local == naive == ReleaseKey("p", "s", T0)
    assert hash(local) == hash(naive)
    assert local.at.tzinfo is timezone.utc
    assert len({local, naive}) == 1


def test_duplicate_run_carries_the_existing_run_and_pickles() -> None:
    error = DuplicateRun("run-1", "key-9")
    assert isinstance(error, StoreError)
    assert isinstance(error, WorkflowError)
    assert "key-9" in str(error)
    assert "run-1" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.run_id, copy.idempotency_key, str(copy)) == (
        DuplicateRun,
        "run-1",
        "key-9",
        str(error),
    )


def test_run_record_dict_view_is_json_ready() -> None:
    record = RunRecord(
        run_id="r",
        pipeline="p",
        trigger=TriggerKind.SCHEDULE,
        status=Status.FAILED,
        release=ReleaseKey("p", "s", T0),
        logical_date=T0,
        params={"a": 1},
        context=None,
        errors=(ErrorRecord("boom", job="j"),),
        created=T0,
        started=None,
        ended=T0 + timedelta(seconds=5),
        error="boom",
        idempotency_key=None,
    )
    view = json.loads(json.dumps(record.to_dict()))
    assert view["trigger"] == "schedule"
    assert view["status"] == "FAILED"
    assert view["release"] == {"pipeline": "p", "schedule": "s", "at": T0.isoformat()}
    assert view["errors"] == [
        {"kind": "WorkflowError", "job": "j", "stage": None, "message": "boom"}
    ]
    assert view["started"] is None
    assert view["ended"] == "2024-01-01T00:00:05+00:00"


def test_timestamp_text_is_fixed_width_and_sorts_in_time_order() -> None:
    values = [
        datetime(2024, 1, 1, 0, 0, 0, 5, tzinfo=timezone.utc),
        datetime(2024, 1, 1, 7, 0, 0, tzinfo=ZoneInfo("Asia/Bangkok")),  # = T0
        datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
    ]
    texts = [ts_text(v) for v in values]
    assert {len(t) for t in texts} == {32}
    assert sorted(texts) == [ts_text(v) for v in sorted(values)]
    assert texts[1] == "2024-01-01T00:00:00.000000+00:00"


def test_json_encoding_survives_cycles_and_odd_keys() -> None:
    loop: dict[str, object] = {"name": "loop"}
    loop["self"] = loop
    assert json.loads(dumps_json({"x": loop, (1, 2): "tuple key"})) == {
        "x": {"name": "loop", "self": "<circular>"},
        "[1, 2]": "tuple key",
    }
    assert json.loads(dumps_json({"inf": float("inf"), "b": b"\xff"})) == {
        "inf": "inf",
        "b": "\\xff",
    }


def test_error_lists_decode_with_defaults() -> None:
    assert load_errors(None) == ()
    assert load_errors("[]") == ()
    assert load_errors([{"message": "m"}]) == (ErrorRecord("m"),)


def test_status_filter_accepts_status_values_as_text() -> None:
    store = MemoryRunStore()
    store.create_run(run_id="m", pipeline="p", trigger=TriggerKind.API, params={}, now=T0)
    # text is what a caller without the enum has: typed as Status, accepted as text
    assert store.count_runs(RunFilter(status="PENDING")) == 1  # type: ignore[arg-type]
    assert store.count_runs(RunFilter(status=["PENDING", Status.FAILED])) == 1  # type: ignore[list-item]
    with pytest.raises(ValueError, match="BOGUS"):
        RunFilter(status="BOGUS")  # type: ignore[arg-type]


def test_run_filters_are_normalised_on_construction() -> None:
    bangkok = timezone(timedelta(hours=7))
    where = RunFilter(
        status=[Status.FAILED, Status.SUCCESS],
        since=datetime(2024, 1, 1, 7, tzinfo=bangkok),
        until=datetime(2024, 1, 2),
        trigger=TriggerKind.API,
    )
    assert where.statuses == (Status.FAILED, Status.SUCCESS)
    assert str(where.since) == str(T0) == "2024-01-01 00:00:00+00:00"
    assert where.until == datetime(2024, 1, 2, tzinfo=timezone.utc)
    assert RunFilter(status=Status.PENDING) == RunFilter(status=[Status.PENDING])
    assert RunFilter().statuses is None
    assert RunFilter(status=[]).statuses == ()


def test_times_must_be_datetimes() -> None:
    store = MemoryRunStore()
    with pytest.raises(TypeError, match="datetime"):
        store.set_watermark("2024-01-01")  # type: ignore[arg-type]
