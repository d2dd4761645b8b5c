"""The fleet part of the run store contract: owners, takeover, fences, rounds, slots.

Runs against the shared in-memory store, SQLite and PostgreSQL (skipped with
the reason when no server answers).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.result import Status
from ddeutil.workflow.runs import ReleaseKey, TriggerKind
from ddeutil.workflow.store import MemoryRunStore, RunStore, _sql, open_store
from ddeutil.workflow.store._sqlbase import SqlRunStore
from ddeutil.workflow.store.base import Claim
from ddeutil.workflow.store.fleet import (
    ClaimState,
    Decision,
    OwnerLost,
    OwnerRecord,
    OwnerState,
    RoundClaim,
    RoundView,
)

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)
CRON = "* * * * * UTC"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    if request.param == "memory":
        opened: RunStore = MemoryRunStore(shared=True)
    elif request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    else:
        opened = open_store(str(request.getfixturevalue("postgres_url")))
    yield opened
    opened.close()


def reason(owner: OwnerRecord) -> str:
    return f"interrupted: owner {owner.owner or '?'} lost"


def join(store: RunStore, *owners: str, now: datetime = T0) -> None:
    for owner in owners:
        assert store.join(owner, now=now, host="host", pid=1)


def round_claim(pipeline: str, minute: int, state: ClaimState, run_id: str) -> RoundClaim:
    at = T0 + timedelta(minutes=minute)
    release = ReleaseKey(pipeline, CRON, at)
    return RoundClaim(
        Claim(release, run_id, {}, at), state, "skip" if state is ClaimState.SKIPPED else None
    )


def claim_all(
    store: RunStore, owner: str, minute: int, states: dict[str, ClaimState]
) -> list[tuple[RoundClaim, bool]]:
    """One round at ``T0 + minute`` claiming one release of each pipeline in ``states``."""

    def decide(view: RoundView) -> Decision:
        return Decision(
            tuple(
                round_claim(name, minute, states[name], f"{name}-{minute}-{owner}")
                for name in sorted(view.watermarks)
            )
        )

    at = T0 + timedelta(minutes=minute)
    return store.claim_round(list(states), owner=owner, at=at, init=T0, now=at, decide=decide)


# -- owners ----------------------------------------------------------------------


def test_owners_join_beat_and_leave(store: RunStore) -> None:
    join(store, "a", "b")
    assert not store.join("a", now=T0, host="other", pid=2)  # an id is never live twice
    assert store.heartbeat(now=T0 + timedelta(seconds=10), owner="a")
    store.leave("b", now=T0 + timedelta(seconds=20))
    assert not store.heartbeat(now=T0 + timedelta(seconds=30), owner="b")
    owners = {o.owner: o for o in store.owners()}
    assert owners["a"].state is OwnerState.LIVE
    assert owners["a"].heartbeat == T0 + timedelta(seconds=10)
    assert (owners["a"].host, owners["a"].pid) == ("host", 1)
    assert owners["b"].state is OwnerState.STOPPED
    assert owners["b"].ended == T0 + timedelta(seconds=20)
    assert [o.owner for o in store.owners()] == ["a", "b"]  # newest heartbeat first


def test_take_over_moves_pending_fails_running_and_fences_the_lost_owner(
    store: RunStore,
) -> None:
    join(store, "a", "b")
    claim_all(store, "a", 1, {"p": ClaimState.ADMITTED, "q": ClaimState.WAITING})
    assert store.mark_running("p-1-a", now=T0 + timedelta(minutes=1), owner="a")
    later = T0 + LEASE + timedelta(seconds=1)
    assert store.heartbeat(now=later, owner="b")

    early = store.take_over("b", now=T0 + timedelta(seconds=20), lease=LEASE, reason=reason)
    assert early.owners == ()  # a's lease has not run out
    taken = store.take_over("b", now=later, lease=LEASE, reason=reason)
    assert [o.owner for o in taken.owners] == ["a"]
    assert [r.run_id for r in taken.adopted] == ["q-1-a"]
    assert taken.adopted[0].owner == "b"
    assert taken.failed == ("p-1-a",)
    failed = store.get_run("p-1-a")
    assert failed is not None
    assert failed.status is Status.FAILED
    assert failed.error == "interrupted: owner a lost"
    assert failed.errors[0].kind == "Interrupted"
    # Exactly once: nothing left to take, by anyone.
    assert store.take_over("b", now=later, lease=LEASE, reason=reason) == type(taken)()

    # The fence: a cannot beat, start, finish, claim or admit any more.
    assert not store.heartbeat(now=later, owner="a")
    assert not store.mark_running("q-1-a", now=later, owner="a")
    assert not store.finish("p-1-a", status=Status.SUCCESS, now=later, owner="a")
    with pytest.raises(OwnerLost, match="owner a"):
        claim_all(store, "a", 2, {"p": ClaimState.ADMITTED})
    with pytest.raises(OwnerLost):
        store.take_over("a", now=later, lease=LEASE, reason=reason)
    assert store.admit({"q": 1}, owner="a", now=later) == []
    # b owns what it adopted.
    assert store.admit({"q": 1}, owner="b", now=later) == ["q-1-a"]
    assert store.mark_running("q-1-a", now=later, owner="b")
    assert store.finish("q-1-a", status=Status.SUCCESS, now=later, owner="b")
    owner_a = {o.owner: o for o in store.owners()}["a"]
    assert (owner_a.state, owner_a.taken_by) == (OwnerState.LOST, "b")


def test_a_live_owner_is_never_taken_over_but_everyone_takes_all(store: RunStore) -> None:
    join(store, "a", "b")
    claim_all(store, "a", 1, {"p": ClaimState.ADMITTED})
    assert (
        store.take_over("b", now=T0 + timedelta(seconds=5), lease=LEASE, reason=reason).owners == ()
    )
    taken = store.take_over(
        "b", now=T0 + timedelta(seconds=5), lease=LEASE, everyone=True, reason=reason
    )
    assert [r.run_id for r in taken.adopted] == ["p-1-a"]


def test_runs_without_an_owner_are_adopted_only_when_asked(store: RunStore) -> None:
    join(store, "b")
    release = ReleaseKey("p", CRON, T0)
    assert store.claim(release, run_id="old", params={}, logical_date=T0, now=T0)
    assert store.claim(
        ReleaseKey("p", CRON, T0 + timedelta(minutes=1)),
        run_id="older-running",
        params={},
        logical_date=T0,
        now=T0,
    )
    store.mark_running("older-running", now=T0)
    assert store.take_over("b", now=T0, lease=LEASE, reason=reason).adopted == ()
    taken = store.take_over("b", now=T0, lease=LEASE, unowned=True, reason=reason)
    assert [r.run_id for r in taken.adopted] == ["old"]
    assert taken.failed == ("older-running",)
    assert store.get_run("older-running").error == "interrupted: owner ? lost"  # type: ignore[union-attr]


def test_concurrent_takers_split_nothing_one_wins(store: RunStore) -> None:
    join(store, "dead", "b", "c")
    claim_all(store, "dead", 1, {f"p{n}": ClaimState.WAITING for n in range(20)})
    later = T0 + LEASE + timedelta(minutes=2)
    for owner in ("b", "c"):
        assert store.heartbeat(now=later, owner=owner)
    results: dict[str, int] = {}
    barrier = threading.Barrier(2)

    def take(owner: str) -> None:
        barrier.wait(timeout=10)
        results[owner] = len(store.take_over(owner, now=later, lease=LEASE, reason=reason).adopted)

    threads = [threading.Thread(target=take, args=(o,)) for o in ("b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results.values()) == [0, 20]


# -- claim rounds ------------------------------------------------------------------


def test_a_round_claims_once_moves_watermarks_and_records_states(store: RunStore) -> None:
    join(store, "a", "b")
    won = claim_all(
        store,
        "a",
        1,
        {
            "admitted": ClaimState.ADMITTED,
            "waiting": ClaimState.WAITING,
            "skip": ClaimState.SKIPPED,
        },
    )
    assert [ok for _, ok in won] == [True, True, True]
    skipped = store.get_run("skip-1-a")
    assert skipped is not None
    assert (skipped.status, skipped.error) == (Status.SKIPPED, "skip")
    assert store.get_watermark() == T0 + timedelta(minutes=1)
    load = store.load(["admitted", "waiting", "skip"])
    assert (load["admitted"].running, load["admitted"].waiting) == (1, 0)
    assert (load["waiting"].running, load["waiting"].waiting) == (0, 1)
    assert "skip" not in load
    # The same boundary again, by anyone: every watermark is there already.
    assert claim_all(store, "b", 1, {"admitted": ClaimState.ADMITTED}) == []
    # An older boundary (a clock stepped back) plans nothing and moves nothing back.
    assert claim_all(store, "b", 0, {"admitted": ClaimState.ADMITTED}) == []
    assert store.get_watermark() == T0 + timedelta(minutes=1)


def test_a_release_claimed_before_is_refused_in_a_round(store: RunStore) -> None:
    join(store, "a")
    at = T0 + timedelta(minutes=1)
    assert store.claim(ReleaseKey("p", CRON, at), run_id="x", params={}, logical_date=at, now=at)
    won = claim_all(store, "a", 1, {"p": ClaimState.ADMITTED})
    assert [ok for _, ok in won] == [False]
    assert store.get_run("p-1-a") is None


def test_pipelines_new_to_the_store_start_at_init(store: RunStore) -> None:
    join(store, "a")
    seen: list[dict[str, datetime]] = []

    def decide(view: RoundView) -> Decision:
        seen.append(dict(view.watermarks))
        return Decision()

    at = T0 + timedelta(minutes=5)
    store.claim_round(["p", "q"], owner="a", at=at, init=T0, now=at, decide=decide)
    assert seen == [{"p": T0, "q": T0}]


def test_a_quiet_pipeline_is_not_shown_to_decide_and_its_watermark_moves(
    store: RunStore,
) -> None:
    join(store, "a")
    seen: list[dict[str, datetime]] = []
    asked: list[tuple[str, datetime]] = []

    def decide(view: RoundView) -> Decision:
        seen.append(dict(view.watermarks))
        return Decision()

    def quiet(name: str, mark: datetime) -> bool:
        asked.append((name, mark))
        return name == "q"

    at = T0 + timedelta(minutes=5)
    store.claim_round(["p", "q"], owner="a", at=at, init=T0, now=at, decide=decide, quiet=quiet)
    assert seen == [{"p": T0}]
    assert sorted(asked) == [("p", T0), ("q", T0)]  # asked with the stored watermark
    later = at + timedelta(minutes=1)
    store.claim_round(["p", "q"], owner="a", at=later, init=T0, now=later, decide=decide)
    assert seen[-1] == {"p": at, "q": at}  # both moved to the first round's boundary


# -- slots -------------------------------------------------------------------------


def test_admit_gives_slots_oldest_release_first_to_their_owners(store: RunStore) -> None:
    join(store, "a", "b")
    claim_all(store, "a", 1, {"p": ClaimState.ADMITTED})
    claim_all(store, "b", 2, {"p": ClaimState.WAITING})
    claim_all(store, "a", 3, {"p": ClaimState.WAITING})
    now = T0 + timedelta(minutes=3)
    assert store.admit({"p": 1}, owner="a", now=now) == []  # the slot is taken
    assert store.admit({"p": 2}, owner="a", now=now) == []  # b's older release is next
    assert store.admit({"p": 2}, owner="b", now=now) == ["p-2-b"]
    assert store.admit({"p": 2}, owner="a", now=now) == []
    assert store.finish("p-1-a", status=Status.SUCCESS, now=now, owner="a")
    assert store.admit({"p": 2}, owner="a", now=now) == ["p-3-a"]


def test_admit_serves_several_pipelines_in_one_call(store: RunStore) -> None:
    join(store, "a", "b")
    claim_all(store, "a", 1, {"p": ClaimState.WAITING, "q": ClaimState.WAITING})
    claim_all(store, "b", 1, {"r": ClaimState.WAITING})
    claim_all(store, "a", 2, {"p": ClaimState.WAITING, "q": ClaimState.WAITING})
    now = T0 + timedelta(minutes=2)
    admitted = store.admit({"p": 1, "q": 2, "r": 1}, owner="a", now=now)
    assert sorted(admitted) == ["p-1-a", "q-1-a", "q-2-a"]  # r's head is b's
    assert store.admit({}, owner="a", now=now) == []


# -- schema ------------------------------------------------------------------------


def test_a_version_1_sqlite_store_is_migrated_and_its_runs_adopted(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    with sqlite3.connect(db) as raw:
        raw.executescript(
            """
            CREATE TABLE workflow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO workflow_meta VALUES ('schema_version', '1');
            CREATE TABLE workflow_runs (
                run_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, trigger_kind TEXT NOT NULL,
                status TEXT NOT NULL, release_schedule TEXT, release_at TEXT,
                logical_date TEXT, params TEXT NOT NULL, context TEXT, errors TEXT NOT NULL,
                created TEXT NOT NULL, started TEXT, ended TEXT, error TEXT,
                idempotency_key TEXT,
                CONSTRAINT workflow_runs_release_uq UNIQUE (pipeline, release_schedule, release_at),
                CONSTRAINT workflow_runs_idempotency_uq UNIQUE (idempotency_key));
            CREATE TABLE workflow_state (name TEXT PRIMARY KEY, at TEXT NOT NULL,
                owner TEXT NOT NULL);
            INSERT INTO workflow_runs VALUES ('r1', 'p', 'schedule', 'PENDING', 'k',
                '2024-01-01T00:01:00.000000+00:00', NULL, '{}', NULL, '[]',
                '2024-01-01T00:01:00.000000+00:00', NULL, NULL, NULL, NULL);
            INSERT INTO workflow_state VALUES ('heartbeat',
                '2024-01-01T00:01:00.000000+00:00', 'old-daemon');
            """
        )
    raw.close()
    store = open_store(f"sqlite:///{db}")
    try:
        run = store.get_run("r1")
        assert run is not None
        assert run.owner is None
        assert store.last_heartbeat() is None  # heartbeats are per daemon now
        join(store, "new")
        taken = store.take_over(
            "new", now=T0, lease=LEASE, everyone=True, unowned=True, reason=reason
        )
        assert [r.run_id for r in taken.adopted] == ["r1"]
    finally:
        store.close()


def _back_to_version_3(conn: Any) -> None:
    conn.execute("ALTER TABLE workflow_runs DROP COLUMN rerun_of")
    conn.execute("ALTER TABLE workflow_runs DROP COLUMN cancel_requested")
    conn.execute("DROP TABLE workflow_pauses")
    conn.execute("UPDATE workflow_meta SET value = '3' WHERE key = 'schema_version'")


def test_a_version_3_store_is_migrated_and_keeps_its_runs(shared_url: str) -> None:
    v3 = open_store(shared_url)
    assert isinstance(v3, SqlRunStore)
    v3.create_run(run_id="r1", pipeline="p", trigger=TriggerKind.MANUAL, params={"a": 1}, now=T0)
    with v3._transaction() as conn:
        _back_to_version_3(conn)
    v3.close()
    store = open_store(shared_url)
    try:
        run = store.get_run("r1")
        assert run is not None
        assert (run.params, run.rerun_of, run.cancel_requested) == ({"a": 1}, None, None)
        assert store.pause("p", now=T0)
        assert store.paused() == {"p": T0}
    finally:
        store.close()


def test_a_version_2_store_is_migrated_and_its_owners_are_schedulers(shared_url: str) -> None:
    v2 = open_store(shared_url)
    assert isinstance(v2, SqlRunStore)
    join(v2, "old")
    with v2._transaction() as conn:  # back to the version 2 schema
        _back_to_version_3(conn)
        conn.execute("ALTER TABLE workflow_owners DROP COLUMN kind")
        conn.execute("UPDATE workflow_meta SET value = '2' WHERE key = 'schema_version'")
    v2.close()
    store = open_store(shared_url)
    assert isinstance(store, SqlRunStore)
    try:
        assert [(o.owner, o.kind) for o in store.owners()] == [("old", "scheduler")]
        assert store.join("w", now=T0 + timedelta(seconds=1), host="h", pid=2, kind="worker")
        assert [(o.owner, o.kind) for o in store.owners()] == [
            ("w", "worker"),
            ("old", "scheduler"),
        ]
        with store._read() as conn:
            assert conn.execute(_sql.GET_VERSION).fetchone()[0] == str(_sql.SCHEMA_VERSION)
    finally:
        store.close()


# -- workers ---------------------------------------------------------------------


def test_owners_record_their_kind(store: RunStore) -> None:
    join(store, "a")
    assert store.join("w", now=T0, host="h", pid=2, kind="worker")
    assert {o.owner: o.kind for o in store.owners()} == {"a": "scheduler", "w": "worker"}
    with pytest.raises(ValueError, match="kind"):
        store.join("x", now=T0, host="h", pid=3, kind="daemon")  # type: ignore[arg-type]
    assert "x" not in {o.owner for o in store.owners()}


def test_a_runner_starting_a_run_makes_it_its_own(store: RunStore) -> None:
    join(store, "a")
    assert store.join("w", now=T0, host="h", pid=2, kind="worker")
    claim_all(store, "a", 1, {"p": ClaimState.ADMITTED, "q": ClaimState.ADMITTED})
    api = store.create_run(
        run_id="api", pipeline="p", trigger=TriggerKind.API, params={}, now=T0
    ).run_id
    at = T0 + timedelta(minutes=1)
    assert not store.mark_running("p-1-a", now=at, owner="b", runner="w")  # the fence holds
    assert store.get_run("p-1-a").owner == "a"  # type: ignore[union-attr]
    assert store.mark_running("p-1-a", now=at, owner="a", runner="w")
    assert store.mark_running(api, now=at, runner="w")
    assert not store.mark_running("p-1-a", now=at, runner="other")  # started once
    for run_id in ("p-1-a", api):
        run = store.get_run(run_id)
        assert run is not None
        assert (run.status, run.started, run.owner) == (Status.RUNNING, at, "w")
    assert store.mark_running("q-1-a", now=at, owner="a")  # no runner: the owner stays
    assert store.get_run("q-1-a").owner == "a"  # type: ignore[union-attr]
    # Its end is fenced on the worker now.
    assert not store.finish("p-1-a", status=Status.SUCCESS, now=at, owner="a")
    assert store.finish("p-1-a", status=Status.SUCCESS, now=at, owner="w")


def test_taking_over_a_dead_daemon_leaves_the_runs_of_live_workers(store: RunStore) -> None:
    join(store, "a", "b")
    assert store.join("w", now=T0, host="h", pid=2, kind="worker")
    claim_all(store, "a", 1, {"p": ClaimState.ADMITTED, "q": ClaimState.ADMITTED})
    start = T0 + timedelta(minutes=1)
    assert store.mark_running("p-1-a", now=start, owner="a", runner="w")
    assert store.mark_running("q-1-a", now=start, owner="a")
    later = start + LEASE
    for owner in ("b", "w"):
        assert store.heartbeat(now=later, owner=owner)
    taken = store.take_over("b", now=later, lease=LEASE, reason=reason)
    assert [o.owner for o in taken.owners] == ["a"]
    assert taken.failed == ("q-1-a",)
    run = store.get_run("p-1-a")
    assert run is not None
    assert (run.status, run.owner) == (Status.RUNNING, "w")


def test_a_dead_worker_has_its_running_runs_of_any_trigger_failed_once(store: RunStore) -> None:
    join(store, "b")
    assert store.join("w", now=T0, host="h", pid=2, kind="worker")
    claim_all(store, "b", 1, {"p": ClaimState.ADMITTED, "q": ClaimState.ADMITTED})
    for run_id, trigger in (("api", TriggerKind.API), ("local", TriggerKind.MANUAL)):
        store.create_run(run_id=run_id, pipeline="p", trigger=trigger, params={}, now=T0)
    start = T0 + timedelta(minutes=1)
    assert store.mark_running("p-1-b", now=start, owner="b", runner="w")
    assert store.mark_running("api", now=start, runner="w")
    assert store.mark_running("local", now=start)  # nobody holds it
    later = start + LEASE + timedelta(seconds=1)
    assert store.heartbeat(now=later, owner="b")

    taken = store.take_over("b", now=later, lease=LEASE, unowned=True, reason=reason)
    assert [(o.owner, o.kind) for o in taken.owners] == [("w", "worker")]
    assert taken.adopted == ()
    assert sorted(taken.failed) == ["api", "p-1-b"]  # a manual run nobody holds is not ours
    for run_id in ("api", "p-1-b"):
        run = store.get_run(run_id)
        assert run is not None
        assert (run.status, run.error) == (Status.FAILED, "interrupted: owner w lost")
    assert store.get_run("local").status is Status.RUNNING  # type: ignore[union-attr]
    assert store.get_run("q-1-b").status is Status.PENDING  # type: ignore[union-attr]
    assert not store.heartbeat(now=later, owner="w")
    assert not store.finish("api", status=Status.SUCCESS, now=later, owner="w")
    # Exactly once.
    again = store.take_over("b", now=later, lease=LEASE, unowned=True, reason=reason)
    assert (again.owners, again.failed) == ((), ())


def test_everyone_takes_every_scheduler_but_only_the_workers_that_are_gone(
    store: RunStore,
) -> None:
    join(store, "a", "b")
    for worker in ("w-live", "w-silent", "w-left"):
        assert store.join(worker, now=T0, host="h", pid=2, kind="worker")
    claim_all(store, "a", 1, {"p": ClaimState.ADMITTED, "q": ClaimState.WAITING})
    now = T0 + LEASE + timedelta(seconds=1)
    assert store.mark_running("p-1-a", now=now, owner="a", runner="w-live")
    for owner in ("a", "b", "w-live"):
        assert store.heartbeat(now=now, owner=owner)
    store.leave("w-left", now=now)

    taken = store.take_over("b", now=now, lease=LEASE, everyone=True, reason=reason)
    assert sorted(o.owner for o in taken.owners) == ["a", "w-left", "w-silent"]
    assert [r.run_id for r in taken.adopted] == ["q-1-a"]
    assert taken.failed == ()
    assert store.get_run("p-1-a").status is Status.RUNNING  # type: ignore[union-attr]
    assert store.heartbeat(now=now, owner="w-live")
    assert not store.heartbeat(now=now, owner="w-silent")
