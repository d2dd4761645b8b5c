"""The run store contract for day-to-day operations: cancel requests, pauses, retention,
reruns, backfill claims and client owners. Every implementation passes the same tests
(memory, SQLite in memory, SQLite on disk, PostgreSQL; see conftest.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ddeutil.workflow.result import Status
from ddeutil.workflow.store import Claim, ReleaseKey, RunStore, TriggerKind

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)


def _manual(store: RunStore, run_id: str, minutes: int = 0, pipeline: str = "p") -> None:
    store.create_run(
        run_id=run_id,
        pipeline=pipeline,
        trigger=TriggerKind.MANUAL,
        params={},
        now=T0 + timedelta(minutes=minutes),
    )


def _ended(store: RunStore, run_id: str, minutes: int = 0, pipeline: str = "p") -> None:
    _manual(store, run_id, minutes, pipeline)
    assert store.finish(run_id, status=Status.SUCCESS, now=T0 + timedelta(minutes=minutes))


# -- cancel requests -------------------------------------------------------------------


def test_cancel_of_a_pending_run_records_it_cancelled_and_nobody_starts_it(
    store: RunStore,
) -> None:
    _manual(store, "r1")
    assert store.request_cancel("r1", now=T0, reason="cancelled by alice") is Status.CANCELLED
    record = store.get_run("r1")
    assert record is not None
    assert record.status is Status.CANCELLED
    assert record.error == "cancelled by alice"
    assert record.ended == T0
    assert not store.mark_running("r1", now=T0)


def test_cancel_of_a_running_run_is_asked_of_its_holder(store: RunStore) -> None:
    assert store.join("c1", now=T0, host="h", pid=1, kind="client")
    store.create_run(
        run_id="r1", pipeline="p", trigger=TriggerKind.MANUAL, params={}, now=T0, owner="c1"
    )
    _manual(store, "r2")
    assert store.mark_running("r1", now=T0)
    assert store.mark_running("r2", now=T0)
    assert store.cancel_requests("c1") == []
    later = T0 + timedelta(seconds=5)
    assert store.request_cancel("r1", now=later, reason="x") is Status.RUNNING
    assert store.request_cancel("r2", now=later, reason="x") is Status.RUNNING
    assert store.request_cancel("r1", now=later + LEASE, reason="x") is Status.RUNNING
    assert store.cancel_requests("c1") == ["r1"]
    assert store.cancel_requests(None) == ["r2"]
    record = store.get_run("r1")
    assert record is not None
    assert record.status is Status.RUNNING
    assert record.cancel_requested == later  # the first ask is kept
    assert record.to_dict()["cancel_requested"] == later.isoformat()
    assert store.finish("r1", status=Status.CANCELLED, now=later, owner="c1")
    assert store.cancel_requests("c1") == []


def test_cancel_of_an_ended_or_unknown_run_changes_nothing(store: RunStore) -> None:
    _ended(store, "r1")
    assert store.request_cancel("r1", now=T0, reason="x") is Status.SUCCESS
    record = store.get_run("r1")
    assert record is not None
    assert record.cancel_requested is None
    assert store.request_cancel("nope", now=T0, reason="x") is None


# -- pauses ----------------------------------------------------------------------------


def test_pause_and_unpause_are_recorded_once(store: RunStore) -> None:
    assert store.paused() == {}
    assert store.pause("b", now=T0)
    assert store.pause("a", now=T0 + LEASE)
    assert not store.pause("a", now=T0 + 2 * LEASE)  # already paused: kept as it was
    assert store.paused() == {"a": T0 + LEASE, "b": T0}
    assert store.unpause("a") == T0 + LEASE
    assert store.unpause("a") is None
    assert store.paused() == {"b": T0}


# -- retention -------------------------------------------------------------------------


def test_prune_deletes_ended_runs_before_the_cutoff_in_batches(store: RunStore) -> None:
    for i in range(5):
        _ended(store, f"old{i}", minutes=i)
    _manual(store, "pending", minutes=1)
    _manual(store, "running", minutes=2)
    assert store.mark_running("running", now=T0)
    _ended(store, "new", minutes=100)
    store.save_log("old0", '{"msg": "x"}\n')
    cutoff = T0 + timedelta(minutes=50)
    assert store.prune_runs(cutoff, limit=2) == ["old0", "old1"]
    assert store.run_log("old0") is None
    assert store.prune_runs(cutoff, limit=2, keep={"old2"}) == ["old3", "old4"]
    assert store.prune_runs(cutoff, limit=2, keep={"old2"}) == []
    left = {r.run_id for r in store.list_runs(limit=100)}
    assert left == {"old2", "pending", "running", "new"}


def test_prune_frees_the_release_claim_and_the_idempotency_key(store: RunStore) -> None:
    key = ReleaseKey("p", "* * * * *@UTC", T0)
    assert store.claim(key, run_id="s1", params={}, logical_date=T0, now=T0)
    assert store.finish("s1", status=Status.SUCCESS, now=T0)
    store.create_run(
        run_id="m1", pipeline="p", trigger=TriggerKind.API, params={}, now=T0, idempotency_key="k"
    )
    assert store.finish("m1", status=Status.FAILED, now=T0)
    assert sorted(store.prune_runs(T0 + LEASE, limit=10)) == ["m1", "s1"]
    assert store.claim(key, run_id="s2", params={}, logical_date=T0, now=T0)
    store.create_run(
        run_id="m2", pipeline="p", trigger=TriggerKind.API, params={}, now=T0, idempotency_key="k"
    )


def test_newest_runs_names_each_pipelines_newest_run(store: RunStore) -> None:
    assert store.newest_runs() == {}
    _ended(store, "a1", minutes=1, pipeline="a")
    _ended(store, "a2", minutes=2, pipeline="a")
    _ended(store, "b1", minutes=1, pipeline="b")
    _ended(store, "b2", minutes=1, pipeline="b")  # same instant: the greater id
    assert store.newest_runs() == {"a": "a2", "b": "b2"}


def test_prune_refuses_a_limit_below_one(store: RunStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.prune_runs(T0, limit=0)


# -- reruns, backfill claims, clients -----------------------------------------------------


def test_a_rerun_is_linked_to_the_run_it_reruns(store: RunStore) -> None:
    _ended(store, "r1")
    record = store.create_run(
        run_id="r2", pipeline="p", trigger=TriggerKind.MANUAL, params={}, now=T0, rerun_of="r1"
    )
    assert record.rerun_of == "r1"
    got = store.get_run("r2")
    assert got is not None
    assert got.rerun_of == "r1"
    assert got.to_dict()["rerun_of"] == "r1"


def test_a_backfill_claim_is_the_release_claim(store: RunStore) -> None:
    key = ReleaseKey("p", "* * * * *@UTC", T0)
    assert store.claim_many(
        [Claim(key, "b1", {}, T0, TriggerKind.BACKFILL)], now=T0, owner=None
    ) == [True]
    assert not store.claim(key, run_id="s1", params={}, logical_date=T0, now=T0)
    record = store.get_run("b1")
    assert record is not None
    assert record.trigger is TriggerKind.BACKFILL
    assert record.release == key


def test_a_client_is_taken_over_only_when_its_lease_ran_out(store: RunStore) -> None:
    assert store.join("d1", now=T0, host="h", pid=1)
    assert store.join("c1", now=T0, host="h", pid=2, kind="client")
    key = ReleaseKey("p", "* * * * *@UTC", T0)
    store.claim_many([Claim(key, "b1", {}, T0, TriggerKind.BACKFILL)], now=T0, owner="c1")
    store.create_run(
        run_id="m1", pipeline="p", trigger=TriggerKind.MANUAL, params={}, now=T0, owner="c1"
    )
    assert store.mark_running("m1", now=T0, owner="c1")
    # A daemon holding an unshared store's lock takes every scheduler over, not a client.
    spared = store.take_over("d1", now=T0, lease=LEASE, everyone=True, reason=lambda o: "x")
    assert spared.owners == ()
    late = T0 + 2 * LEASE
    assert store.heartbeat(now=late, owner="d1")
    took = store.take_over("d1", now=late, lease=LEASE, reason=lambda o: f"{o.owner} lost")
    assert [o.owner for o in took.owners] == ["c1"]
    assert took.adopted == ()  # a backfill's unstarted run is not the daemon's to start
    assert sorted(took.failed) == ["b1", "m1"]
    for run_id in ("b1", "m1"):
        record = store.get_run(run_id)
        assert record is not None
        assert record.status is Status.FAILED
        assert record.error == "c1 lost"


def test_skipped_releases_are_reclaimed_once_and_atomically(store: RunStore) -> None:
    from ddeutil.workflow.store.fleet import ClaimState, Decision, RoundClaim, RoundView

    assert store.join("d1", now=T0, host="h", pid=1)
    keys = [ReleaseKey("p", "* * * * *@UTC", T0 + timedelta(minutes=m)) for m in range(4)]

    def decide(view: RoundView) -> Decision:
        claims = [
            RoundClaim(Claim(k, f"s{i}", {}, k.at), ClaimState.SKIPPED, "paused" if i else "other")
            for i, k in enumerate(keys)
        ]
        return Decision(tuple(claims))

    store.claim_round(["p"], owner="d1", at=T0 + LEASE, init=T0, now=T0, decide=decide)
    until = T0 + timedelta(minutes=3)
    found = store.skipped_releases("p", reason="paused", since=T0, until=until, limit=10)
    assert found == keys[1:3]  # "other" is not a pause's, the 4th is past `until`
    assert store.skipped_releases("p", reason="paused", since=T0, until=until, limit=1) == [keys[1]]
    claims = [Claim(k, f"b{i}", {}, k.at, TriggerKind.BACKFILL) for i, k in enumerate(keys)]
    won = store.reclaim_skipped(claims, reason="paused", now=T0, owner=None)
    assert won == [False, True, True, True]
    assert store.get_run("s1") is None
    again = store.reclaim_skipped(claims[1:2], reason="paused", now=T0)
    assert again == [False]  # reclaimed once, never twice
    record = store.get_run("b1")
    assert record is not None
    assert (record.status, record.trigger, record.release) == (
        Status.PENDING,
        TriggerKind.BACKFILL,
        keys[1],
    )
    other = store.get_run("s0")
    assert other is not None
    assert other.status is Status.SKIPPED
    assert store.skipped_releases("p", reason="paused", since=T0, until=until, limit=10) == []
