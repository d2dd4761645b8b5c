"""The run store contract: every implementation passes the same tests.

Parametrized over memory, SQLite in memory, SQLite on disk and PostgreSQL (see
conftest.py). Tests that need several processes or a reopen use the URL stores.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from ddeutil.workflow.errors import StoreError, StoreLockedError
from ddeutil.workflow.result import ErrorRecord, Status
from ddeutil.workflow.store import (
    Claim,
    DuplicateRun,
    ReleaseKey,
    RunFilter,
    RunRecord,
    RunState,
    RunStore,
    TriggerKind,
    open_store,
)

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SCHEDULE = "*/5 * * * *@UTC"
T = TypeVar("T")
RUNNING = RunFilter(status=Status.RUNNING)


def rk(minutes: int = 0, pipeline: str = "p", schedule: str = SCHEDULE) -> ReleaseKey:
    return ReleaseKey(pipeline, schedule, T0 + timedelta(minutes=minutes))


def claim(store: RunStore, key: ReleaseKey, run_id: str, *, now: datetime = T0) -> bool:
    return store.claim(key, run_id=run_id, params={"n": 1}, logical_date=key.at, now=now)


def manual(
    store: RunStore, run_id: str, *, minutes: int = 0, pipeline: str = "p", **kw: Any
) -> RunRecord:
    return store.create_run(
        run_id=run_id,
        pipeline=pipeline,
        trigger=kw.pop("trigger", TriggerKind.MANUAL),
        params=kw.pop("params", {}),
        now=T0 + timedelta(minutes=minutes),
        **kw,
    )


def in_threads(count: int, fn: Callable[[int], T]) -> list[T]:
    """Run ``fn(i)`` on ``count`` threads released together; bounded waits."""
    barrier = threading.Barrier(count, timeout=30)

    def run(i: int) -> T:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(run, i) for i in range(count)]
        return [f.result(timeout=60) for f in futures]


# -- claims -------------------------------------------------------------------------


def test_claim_records_a_pending_scheduled_run(store: RunStore) -> None:
    assert claim(store, rk(5), "r1", now=T0 + timedelta(minutes=5, seconds=1))
    run = store.get_run("r1")
    assert run is not None
    assert run.status is Status.PENDING
    assert run.trigger is TriggerKind.SCHEDULE
    assert run.release == rk(5)
    assert run.pipeline == "p"
    assert run.logical_date == T0 + timedelta(minutes=5)
    assert run.params == {"n": 1}
    assert run.created == T0 + timedelta(minutes=5, seconds=1)
    assert (run.started, run.ended, run.context, run.error, run.errors) == (
        None,
        None,
        None,
        None,
        (),
    )


def test_second_claim_of_a_release_returns_false_and_writes_nothing(store: RunStore) -> None:
    assert claim(store, rk(), "first")
    assert not claim(store, rk(), "second")
    assert store.get_run("second") is None
    assert store.count_runs() == 1
    # retrying the very same claim (same run id) is a plain "no", not an error
    assert not claim(store, rk(), "first")


def test_same_instant_in_another_zone_is_the_same_release(store: RunStore) -> None:
    bangkok = T0.astimezone(ZoneInfo("Asia/Bangkok"))
    assert claim(store, rk(), "utc")
    assert not claim(store, ReleaseKey("p", SCHEDULE, bangkok), "bkk")


def test_other_pipeline_schedule_or_instant_is_another_release(store: RunStore) -> None:
    assert claim(store, rk(), "a")
    assert claim(store, rk(pipeline="q"), "b")
    assert claim(store, rk(schedule="0 * * * *@UTC"), "c")
    assert claim(store, rk(minutes=5), "d")
    assert store.count_runs() == 4


def test_claim_of_a_new_release_with_a_taken_run_id_raises(store: RunStore) -> None:
    assert claim(store, rk(), "r1")
    with pytest.raises(StoreError):
        claim(store, rk(5), "r1")
    assert store.count_runs() == 1


def test_claim_race_between_threads_has_exactly_one_winner(store: RunStore) -> None:
    releases = [rk(i) for i in range(20)]

    def contender(t: int) -> list[bool]:
        return [claim(store, key, f"t{t}-{i}") for i, key in enumerate(releases)]

    results = in_threads(8, contender)
    for i, key in enumerate(releases):
        winners = [t for t, flags in enumerate(results) if flags[i]]
        assert len(winners) == 1, (key, winners)
        assert store.get_run(f"t{winners[0]}-{i}") is not None
    assert store.count_runs() == len(releases)


def test_claim_many_flags_each_item_in_order(store: RunStore) -> None:
    assert claim(store, rk(10), "old")
    batch = [
        Claim(rk(0), "a", {"x": 1}, rk(0).at),
        Claim(rk(10), "b", {}, rk(10).at),  # claimed before
        Claim(rk(5), "c"),
        Claim(rk(0), "d"),  # repeated inside the batch: the first occurrence wins
    ]
    assert store.claim_many(batch, now=T0) == [True, False, True, False]
    assert {r.run_id for r in store.list_runs()} == {"old", "a", "c"}
    c = store.get_run("c")
    assert c is not None
    assert c.logical_date is None
    assert c.params == {}
    assert store.claim_many([], now=T0) == []


def test_claim_many_with_a_taken_run_id_writes_nothing(store: RunStore) -> None:
    assert claim(store, rk(), "taken")
    with pytest.raises(StoreError):
        store.claim_many([Claim(rk(5), "fresh"), Claim(rk(10), "taken")], now=T0)
    assert store.get_run("fresh") is None
    assert store.count_runs() == 1


# -- manual runs and idempotency ------------------------------------------------------


def test_create_run_records_a_pending_run_without_release(store: RunStore) -> None:
    run = manual(store, "m1", trigger=TriggerKind.API, params={"a": [1, 2]}, logical_date=T0)
    assert run == store.get_run("m1")
    assert (run.status, run.trigger, run.release) == (Status.PENDING, TriggerKind.API, None)
    assert run.params == {"a": [1, 2]}
    assert run.logical_date == T0
    manual(store, "m2")  # no release: manual runs never collide with each other
    assert store.count_runs() == 2


def test_reused_idempotency_key_raises_duplicate_run_naming_the_first(
    store: RunStore,
) -> None:
    first = manual(store, "m1", idempotency_key="key-1")
    with pytest.raises(DuplicateRun) as info:
        manual(store, "m2", pipeline="other", idempotency_key="key-1")
    assert info.value.run_id == first.run_id
    assert info.value.idempotency_key == "key-1"
    assert isinstance(info.value, StoreError)
    assert store.get_run("m2") is None
    assert store.get_run("m1") is not None
    assert store.get_run("m1").idempotency_key == "key-1"  # type: ignore[union-attr]


def test_idempotency_race_between_threads_creates_one_run(store: RunStore) -> None:
    def contender(t: int) -> str:
        try:
            return manual(store, f"m{t}", idempotency_key="same").run_id
        except DuplicateRun as exc:
            return f"dup:{exc.run_id}"

    results = in_threads(8, contender)
    created = [r for r in results if not str(r).startswith("dup:")]
    assert len(created) == 1
    assert all(r == f"dup:{created[0]}" for r in results if r not in created)
    assert store.count_runs() == 1


# -- start handshake and finish -----------------------------------------------------


def test_mark_running_moves_pending_to_running_once(store: RunStore) -> None:
    claim(store, rk(), "r1")
    assert store.mark_running("r1", now=T0 + timedelta(seconds=3))
    assert not store.mark_running("r1", now=T0 + timedelta(seconds=4))
    run = store.get_run("r1")
    assert run is not None
    assert run.status is Status.RUNNING
    assert run.started == T0 + timedelta(seconds=3)
    assert not store.mark_running("unknown", now=T0)


def test_mark_running_refuses_a_run_closed_before_it_started(store: RunStore) -> None:
    manual(store, "m1")
    assert store.finish("m1", status=Status.CANCELLED, now=T0, error="stopping")
    assert not store.mark_running("m1", now=T0)
    run = store.get_run("m1")
    assert run is not None
    assert (run.status, run.started, run.error) == (Status.CANCELLED, None, "stopping")


def test_start_race_between_threads_has_exactly_one_winner(store: RunStore) -> None:
    for i in range(10):
        claim(store, rk(i), f"r{i}")

    results = in_threads(8, lambda t: [store.mark_running(f"r{i}", now=T0) for i in range(10)])
    for i in range(10):
        assert sum(flags[i] for flags in results) == 1


def test_finish_first_terminal_writer_wins(store: RunStore) -> None:
    claim(store, rk(), "r1")
    store.mark_running("r1", now=T0)
    errors = (ErrorRecord("boom", kind="StageError", job="j", stage="s"),)
    end = T0 + timedelta(minutes=1)
    assert store.finish(
        "r1", status=Status.FAILED, now=end, context={"jobs": {}}, errors=errors, error="boom"
    )
    assert not store.finish("r1", status=Status.SUCCESS, now=end + timedelta(1), context={})
    run = store.get_run("r1")
    assert run is not None
    assert (run.status, run.ended, run.error) == (Status.FAILED, end, "boom")
    assert run.context == {"jobs": {}}
    assert run.errors == errors
    assert not store.finish("unknown", status=Status.SUCCESS, now=end)


def test_finish_race_between_threads_has_exactly_one_winner(store: RunStore) -> None:
    claim(store, rk(), "r1")
    store.mark_running("r1", now=T0)
    statuses = [Status.SUCCESS, Status.FAILED, Status.CANCELLED, Status.SKIPPED] * 2

    results = in_threads(
        len(statuses),
        lambda t: store.finish("r1", status=statuses[t], now=T0, error=f"writer {t}"),
    )
    assert results.count(True) == 1
    winner = results.index(True)
    run = store.get_run("r1")
    assert run is not None
    assert (run.status, run.error) == (statuses[winner], f"writer {winner}")


def test_finish_without_context_keeps_the_stored_one(store: RunStore) -> None:
    manual(store, "m1")
    store.mark_running("m1", now=T0)
    assert store.finish("m1", status=Status.SUCCESS, now=T0)
    run = store.get_run("m1")
    assert run is not None
    assert (run.context, run.errors, run.error) == (None, (), None)


def test_lone_surrogates_are_stored_escaped_so_every_record_reads_back(store: RunStore) -> None:
    lone = "\ud800"
    emoji = "\U0001f600"
    store.create_run(
        run_id="m1",
        pipeline="p",
        trigger=TriggerKind.MANUAL,
        params={"who": f"a{lone}b", lone: [lone], "ok": emoji},
        now=T0,
    )
    store.mark_running("m1", now=T0)
    assert store.finish(
        "m1",
        status=Status.FAILED,
        now=T0,
        context={"out": {"x": lone, "y": emoji}},
        errors=[ErrorRecord(message=f"bad {lone}", kind="ValueError")],
        error=f"bad {lone}",
    )
    run = store.get_run("m1")
    assert run is not None
    json.dumps(run.to_dict(), ensure_ascii=False).encode("utf-8")  # servable as UTF-8
    assert run.params == {"who": "a\\ud800b", "\\ud800": ["\\ud800"], "ok": emoji}
    assert run.context == {"out": {"x": "\\ud800", "y": emoji}}
    assert (run.errors[0].message, run.error) == ("bad \\ud800", "bad \\ud800")
    assert [r.run_id for r in store.list_runs()] == ["m1"]


@pytest.mark.parametrize("status", [Status.PENDING, Status.RUNNING])
def test_finish_refuses_a_non_terminal_status(store: RunStore, status: Status) -> None:
    manual(store, "m1")
    with pytest.raises(ValueError, match="terminal"):
        store.finish("m1", status=status, now=T0)
    assert store.get_run("m1").status is Status.PENDING  # type: ignore[union-attr]


# -- history ---------------------------------------------------------------------------


def _history(store: RunStore) -> None:
    """Six runs, one a minute: p/q pipelines, assorted triggers and statuses."""
    claim(store, rk(0), "s0", now=T0)
    manual(store, "m1", minutes=1, trigger=TriggerKind.API)
    claim(store, rk(2, pipeline="q"), "s2", now=T0 + timedelta(minutes=2))
    manual(store, "m3", minutes=3, pipeline="q")
    claim(store, rk(4), "s4", now=T0 + timedelta(minutes=4))
    manual(store, "m5", minutes=5)
    store.mark_running("s0", now=T0)
    store.finish("s0", status=Status.SUCCESS, now=T0)
    store.finish("m3", status=Status.FAILED, now=T0)
    store.mark_running("s4", now=T0)


def ids(runs: list[RunRecord]) -> list[str]:
    return [r.run_id for r in runs]


def test_list_runs_is_newest_first_and_pages(store: RunStore) -> None:
    _history(store)
    assert ids(store.list_runs()) == ["m5", "s4", "m3", "s2", "m1", "s0"]
    assert ids(store.list_runs(limit=2)) == ["m5", "s4"]
    assert ids(store.list_runs(limit=2, offset=2)) == ["m3", "s2"]
    assert ids(store.list_runs(limit=2, offset=6)) == []
    assert ids(store.list_runs(limit=0)) == []
    assert store.count_runs() == 6


def test_runs_created_in_the_same_instant_have_a_stable_order(store: RunStore) -> None:
    for name in ["b", "c", "a"]:
        manual(store, name)
    assert ids(store.list_runs()) == ["c", "b", "a"]
    assert ids(store.list_runs(limit=1, offset=1)) == ["b"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"pipeline": "q"}, ["m3", "s2"]),
        ({"status": Status.PENDING}, ["m5", "s2", "m1"]),
        ({"status": [Status.SUCCESS, Status.FAILED]}, ["m3", "s0"]),
        ({"status": []}, []),
        ({"since": T0 + timedelta(minutes=2)}, ["m5", "s4", "m3", "s2"]),
        ({"until": T0 + timedelta(minutes=2)}, ["m1", "s0"]),
        (
            {"since": T0 + timedelta(minutes=1), "until": T0 + timedelta(minutes=4)},
            ["m3", "s2", "m1"],
        ),
        ({"trigger": TriggerKind.SCHEDULE}, ["s4", "s2", "s0"]),
        ({"trigger": TriggerKind.API}, ["m1"]),
        ({"pipeline": "p", "status": Status.PENDING}, ["m5", "m1"]),
        ({"pipeline": "nope"}, []),
    ],
)
def test_list_and_count_filter_alike(
    store: RunStore, filters: dict[str, Any], expected: list[str]
) -> None:
    _history(store)
    where = RunFilter(**filters)
    assert ids(store.list_runs(where)) == expected
    assert store.count_runs(where) == len(expected)


def test_time_filters_accept_any_zone(store: RunStore) -> None:
    _history(store)
    since = (T0 + timedelta(minutes=4)).astimezone(ZoneInfo("America/New_York"))
    assert ids(store.list_runs(RunFilter(since=since))) == ["m5", "s4"]


def test_negative_paging_is_refused(store: RunStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.list_runs(limit=-1)
    with pytest.raises(ValueError, match="offset"):
        store.list_runs(offset=-1)


def test_pending_runs_are_oldest_release_first(store: RunStore) -> None:
    # claimed out of order; the release time decides, not the claim time
    claim(store, rk(20), "late", now=T0)
    claim(store, rk(10), "early", now=T0 + timedelta(minutes=30))
    claim(store, rk(15, pipeline="q"), "middle", now=T0 + timedelta(minutes=1))
    claim(store, rk(5), "started", now=T0)
    store.mark_running("started", now=T0)
    manual(store, "manual", minutes=12, trigger=TriggerKind.API)
    assert ids(store.pending_runs()) == ["early", "manual", "middle", "late"]
    assert ids(store.pending_runs(trigger=TriggerKind.SCHEDULE)) == ["early", "middle", "late"]
    assert ids(store.list_runs(RUNNING)) == ["started"]
    assert store.count_runs(RunFilter(status=Status.RUNNING, trigger=TriggerKind.API)) == 0


def test_fail_interrupted_closes_running_runs_only(store: RunStore) -> None:
    _history(store)  # s4 RUNNING, s0 SUCCESS, m3 FAILED, others PENDING
    manual(store, "api", minutes=6, trigger=TriggerKind.API)
    store.mark_running("api", now=T0 + timedelta(minutes=6))
    later = T0 + timedelta(hours=1)
    assert store.fail_interrupted(now=later, reason="x", trigger=TriggerKind.MANUAL) == []
    assert store.fail_interrupted(now=later, reason="daemon restarted") == ["s4", "api"]
    run = store.get_run("s4")
    assert run is not None
    assert (run.status, run.ended, run.error) == (Status.FAILED, later, "daemon restarted")
    assert [e.message for e in run.errors] == ["daemon restarted"]
    assert store.count_runs(RUNNING) == 0
    assert ids(store.pending_runs()) == ["m1", "s2", "m5"]
    assert store.get_run("s0").status is Status.SUCCESS  # type: ignore[union-attr]
    assert store.fail_interrupted(now=later, reason="again") == []


def test_fail_interrupted_can_be_limited_to_one_trigger(store: RunStore) -> None:
    claim(store, rk(), "sched")
    manual(store, "api", trigger=TriggerKind.API)
    for run_id in ("sched", "api"):
        store.mark_running(run_id, now=T0)
    assert store.fail_interrupted(now=T0, reason="api restart", trigger=TriggerKind.API) == ["api"]
    assert ids(store.list_runs(RUNNING)) == ["sched"]


def test_fail_interrupted_leaves_the_runs_an_owner_holds(store: RunStore) -> None:
    assert store.claim_many([Claim(rk(), "owned")], now=T0, owner="daemon") == [True]
    for run_id in ("worker", "local"):
        manual(store, run_id, trigger=TriggerKind.API)
    assert store.mark_running("owned", now=T0, owner="daemon")
    assert store.mark_running("worker", now=T0, runner="w")
    assert store.mark_running("local", now=T0)
    assert store.fail_interrupted(now=T0, reason="api restart") == ["local"]
    assert ids(store.list_runs(RUNNING)) == ["worker", "owned"]


# -- run states -------------------------------------------------------------------------


def test_run_states_reads_the_state_of_the_known_runs(store: RunStore) -> None:
    manual(store, "pending")
    manual(store, "running")
    manual(store, "failed")
    assert store.mark_running("running", now=T0 + timedelta(seconds=1), runner="w")
    assert store.finish("failed", status=Status.FAILED, now=T0, error="boom")
    states = store.run_states(["running", "unknown", "pending", "failed", "running"])
    assert states == {
        "pending": RunState(Status.PENDING, None, None, None),
        "running": RunState(Status.RUNNING, None, "w", T0 + timedelta(seconds=1)),
        "failed": RunState(Status.FAILED, "boom", None, None),
    }
    assert store.run_states([]) == {}


def test_run_states_reads_thousands_of_runs(store: RunStore) -> None:
    claims = [Claim(rk(n), f"r{n:04d}") for n in range(1200)]
    assert all(store.claim_many(claims, now=T0, owner="a"))
    assert store.mark_running("r1100", now=T0, owner="a")
    states = store.run_states([f"r{n:04d}" for n in range(1300)])
    assert len(states) == 1200
    assert states["r0000"] == RunState(Status.PENDING, None, "a", None)
    assert states["r1100"] == RunState(Status.RUNNING, None, "a", T0)
    assert states["r1199"].status is Status.PENDING


# -- scheduler state ------------------------------------------------------------------


def test_watermark_is_stored_as_given(store: RunStore) -> None:
    assert store.get_watermark() is None
    store.set_watermark(T0 + timedelta(hours=1))
    assert store.get_watermark() == T0 + timedelta(hours=1)
    # the store does not enforce monotonicity: that is the scheduler's policy
    store.set_watermark(T0)
    assert store.get_watermark() == T0


def test_last_heartbeat_is_the_newest_beat_of_any_daemon(store: RunStore) -> None:
    assert store.last_heartbeat() is None
    store.join("daemon-a", now=T0, host="h", pid=1)
    store.join("daemon-b", now=T0, host="h", pid=2)
    assert store.heartbeat(now=T0 + timedelta(minutes=1), owner="daemon-b")
    assert store.heartbeat(now=T0 + timedelta(seconds=30), owner="daemon-a")
    assert store.last_heartbeat() == (T0 + timedelta(minutes=1), "daemon-b")


def test_a_heartbeat_of_an_owner_that_never_joined_is_refused(store: RunStore) -> None:
    assert store.heartbeat(now=T0, owner="stranger") is False
    assert store.last_heartbeat() is None


def refused(store: RunStore, owner: str) -> str:
    """Try the scheduler lock, expecting a refusal; return the refusal message."""
    with pytest.raises(StoreLockedError) as info, store.scheduler_lock(owner):
        pytest.fail("the scheduler lock was granted twice")
    return str(info.value)


def test_scheduler_lock_is_exclusive_and_released_on_exit(store: RunStore) -> None:
    if store.shared():
        pytest.skip("a shared store's daemons hold the lock together (see test_fleet.py)")
    with store.scheduler_lock("first"):
        assert "first" in refused(store, "second")
    with store.scheduler_lock("second"):
        pass
    with pytest.raises(RuntimeError), store.scheduler_lock("third"):
        raise RuntimeError("boom")
    with store.scheduler_lock("fourth"):
        pass


def test_lock_is_exclusive_between_store_objects(shared_url: str) -> None:
    a, b = open_store(shared_url), open_store(shared_url)
    if a.shared():
        a.close()
        b.close()
        pytest.skip("a shared store's daemons hold the lock together (see test_fleet.py)")
    try:
        with a.scheduler_lock("daemon-a"):
            assert "daemon-a" in refused(b, "b")
        with b.scheduler_lock("daemon-b"):
            pass
    finally:
        a.close()
        b.close()


# -- values -----------------------------------------------------------------------------


def test_datetimes_come_back_aware_utc_with_microseconds(store: RunStore) -> None:
    bangkok = ZoneInfo("Asia/Bangkok")
    at = datetime(2024, 3, 10, 7, 30, 0, 123456, tzinfo=bangkok)
    key = ReleaseKey("p", SCHEDULE, at)
    assert store.claim(key, run_id="r1", params={}, logical_date=at, now=at)
    store.mark_running("r1", now=datetime(2024, 3, 10, 1, 0, 1))  # naive: taken as UTC
    store.set_watermark(at)
    run = store.get_run("r1")
    assert run is not None
    assert run.release is not None
    for value in (run.created, run.logical_date, run.release.at, store.get_watermark()):
        assert value is not None
        assert value == at
        assert value.tzinfo == timezone.utc
        assert value.microsecond == 123456
    assert run.started == datetime(2024, 3, 10, 1, 0, 1, tzinfo=timezone.utc)


def test_json_values_round_trip_with_lenient_encoding(store: RunStore) -> None:
    params = {
        "when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        "day": datetime(2024, 1, 2).date(),
        "amount": Decimal("12.50"),
        "tags": {"b", "a"},
        "nested": {"list": [1, 2.5, None, True, "ไทย"], "tuple": (1, 2)},
        "nan": float("nan"),
        "obj": object.__new__(type("Thing", (), {"__str__": lambda self: "thing"})),
        3: "int key",
    }
    context = {"jobs": {"j": {"stages": {"s": {"outputs": {"at": T0}}}}}}
    manual(store, "m1", params=params)
    store.finish("m1", status=Status.SUCCESS, now=T0, context=context)
    run = store.get_run("m1")
    assert run is not None
    assert run.params == {
        "when": "2024-01-02T03:04:05+00:00",
        "day": "2024-01-02",
        "amount": "12.50",
        "tags": ["a", "b"],
        "nested": {"list": [1, 2.5, None, True, "ไทย"], "tuple": [1, 2]},
        "nan": "nan",
        "obj": "thing",
        "3": "int key",
    }
    assert run.context == {"jobs": {"j": {"stages": {"s": {"outputs": {"at": T0.isoformat()}}}}}}
    json.dumps(run.to_dict())  # the record view is JSON-able as it is


def test_records_are_frozen_and_detached_from_the_store(store: RunStore) -> None:
    manual(store, "m1", params={"a": 1})
    run = store.get_run("m1")
    assert run is not None
    with pytest.raises(AttributeError):
        run.status = Status.SUCCESS  # type: ignore[misc]
    run.params["a"] = 2  # type: ignore[index]
    assert store.get_run("m1").params == {"a": 1}  # type: ignore[union-attr]


def test_closed_store_refuses_calls_and_does_not_ping(store_url: str) -> None:
    store = open_store(store_url)
    assert store.ping()
    store.close()
    store.close()  # idempotent
    assert not store.ping()
    with pytest.raises(StoreError, match="closed"):
        store.get_run("x")
    with pytest.raises(StoreError, match="closed"):
        claim(store, rk(), "r")


# -- reopen and several processes --------------------------------------------------------


def test_data_survives_close_and_reopen(shared_url: str) -> None:
    store = open_store(shared_url)
    claim(store, rk(), "r1")
    store.mark_running("r1", now=T0)
    store.set_watermark(T0)
    store.join("d", now=T0, host="h", pid=1)
    store.close()
    again = open_store(shared_url)
    try:
        assert again.get_run("r1").status is Status.RUNNING  # type: ignore[union-attr]
        assert not claim(again, rk(), "r2")
        assert again.get_watermark() == T0
        assert again.last_heartbeat() == (T0, "d")
    finally:
        again.close()


def _race(
    spawn: Callable[..., Any], command: str, url: str, procs: int, n: int
) -> list[list[bool]]:
    workers = [spawn(command, url, str(n), f"p{i}") for i in range(procs)]
    for proc in workers:
        assert proc.readline() == "ready"
    for proc in workers:
        proc.send("go")
    return [json.loads(proc.finish()) for proc in workers]


@pytest.mark.parametrize("command", ["claim", "claim-many"])
def test_claim_race_between_processes_has_exactly_one_winner(
    shared_url: str, spawn: Callable[..., Any], command: str
) -> None:
    # the processes also race to create the schema of a fresh store
    results = _race(spawn, command, shared_url, procs=3, n=30)
    store = open_store(shared_url)
    try:
        for i in range(30):
            winners = [p for p, flags in enumerate(results) if flags[i]]
            assert len(winners) == 1, (i, winners)
            assert store.get_run(f"p{winners[0]}-{i}") is not None
        assert store.count_runs() == 30
    finally:
        store.close()


def test_start_race_between_processes_has_exactly_one_winner(
    shared_url: str, spawn: Callable[..., Any]
) -> None:
    store = open_store(shared_url)
    try:
        for i in range(20):
            claim(store, rk(i), f"r{i}")
        run_ids = json.dumps([f"r{i}" for i in range(20)])
        workers = [spawn("start", shared_url) for _ in range(3)]
        for proc in workers:
            assert proc.readline() == "ready"
        for proc in workers:
            proc.send(run_ids)
        results = [json.loads(proc.finish()) for proc in workers]
        for i in range(20):
            assert sum(flags[i] for flags in results) == 1
        assert store.count_runs(RUNNING) == 20
    finally:
        store.close()


def _acquire_eventually(store: RunStore, owner: str, timeout: float = 15.0) -> None:
    """Take and release the lock, retrying while the server notices a dead holder."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with store.scheduler_lock(owner):
                return
        except StoreLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_lock_held_by_another_process_is_refused_and_freed_by_sigkill(
    shared_url: str, spawn: Callable[..., Any]
) -> None:
    store = open_store(shared_url)
    if store.shared():
        store.close()
        pytest.skip("a shared store's daemons hold the lock together (see test_fleet.py)")
    try:
        holder = spawn("lock", shared_url, "daemon-in-child")
        assert holder.readline() == "locked"
        message = refused(store, "me")
        assert "daemon-in-child" in message
        if shared_url.startswith("sqlite"):
            assert f"pid {holder.popen.pid}" in message
            assert ".lock" in message
        holder.kill()  # SIGKILL: no clean-up code runs in the holder
        assert holder.popen.returncode == -9
        _acquire_eventually(store, "me")
    finally:
        store.close()


def test_forked_child_does_not_keep_the_lock_of_a_dead_parent(
    shared_url: str, spawn: Callable[..., Any]
) -> None:
    store = open_store(shared_url)
    parent = spawn("lock-fork", shared_url, "forking-daemon")
    child_pid = int(parent.readline())
    try:
        parent.popen.wait(timeout=30)
        assert parent.popen.returncode == -9
        _acquire_eventually(store, "next-daemon")
    finally:
        parent.kill()  # closes the pipes: the orphaned child reads EOF and exits
        store.close()
    assert child_pid > 0


def test_a_kept_run_log_reads_back_and_is_replaced(store: RunStore) -> None:
    assert store.run_log("r-none") is None
    store.save_log("r-1", '{"message": "first"}\n')
    store.save_log("r-1", '{"message": "a"}\n{"message": "b \u00e9"}\n')
    assert store.run_log("r-1") == '{"message": "a"}\n{"message": "b \u00e9"}\n'
    assert store.run_log("r-2") is None
