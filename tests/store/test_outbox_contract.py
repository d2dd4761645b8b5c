"""The run store contract for the notification outbox (see store/outbox.py).

Every implementation passes the same tests (memory, SQLite in memory, SQLite on
disk, PostgreSQL; see conftest.py).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from ddeutil.workflow.result import Status
from ddeutil.workflow.store import RunStore, TriggerKind
from ddeutil.workflow.store.outbox import Notice, NoticeState

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
LEASE = timedelta(seconds=60)


def _notice(key: str, *, run_id: str | None = None, after_failure: bool = False) -> Notice:
    return Notice(
        key=key,
        pipeline="p",
        event="recovered" if after_failure else "failure",
        channel="webhook",
        target="http://127.0.0.1:1/hook",
        payload=json.dumps({"id": key}),
        run_id=run_id,
        after_failure=after_failure,
    )


def _run(store: RunStore, run_id: str, minutes: int = 0) -> None:
    store.create_run(
        run_id=run_id,
        pipeline="p",
        trigger=TriggerKind.MANUAL,
        params={},
        now=T0 + timedelta(minutes=minutes),
    )


def _end(store: RunStore, run_id: str, status: Status, minutes: int, *notices: Notice) -> bool:
    return store.finish(run_id, status=status, now=T0 + timedelta(minutes=minutes), notices=notices)


def test_finish_writes_its_notices_once_and_a_replayed_finish_writes_nothing(
    store: RunStore,
) -> None:
    _run(store, "r1")
    assert _end(store, "r1", Status.FAILED, 1, _notice("r1:failure:webhook", run_id="r1"))
    # The end replayed (e.g. from the run-end journal): the run is closed, nothing added.
    assert not _end(store, "r1", Status.FAILED, 2, _notice("r1:failure:webhook#2", run_id="r1"))
    items = store.notices()
    assert [(i.key, i.state, i.attempts, i.run_id) for i in items] == [
        ("r1:failure:webhook", NoticeState.PENDING, 0, "r1")
    ]
    assert items[0].created == items[0].due == T0 + timedelta(minutes=1)


def test_a_finish_refused_by_its_fence_writes_no_notice(store: RunStore) -> None:
    _run(store, "r1")
    refused = store.finish(
        "r1", status=Status.FAILED, now=T0, owner="someone-else", notices=[_notice("k")]
    )
    assert not refused
    assert store.notices() == []


def test_recovered_is_written_only_after_a_failed_previous_run(store: RunStore) -> None:
    recovered = _notice("recovered", after_failure=True)
    _run(store, "r1", 0)
    assert _end(store, "r1", Status.SUCCESS, 1, _notice("r1:recovered", after_failure=True))
    _run(store, "r2", 2)
    assert _end(store, "r2", Status.FAILED, 3)
    _run(store, "r3", 4)
    assert store.request_cancel("r3", now=T0 + timedelta(minutes=5), reason="x")  # not counted
    _run(store, "r4", 6)
    assert _end(store, "r4", Status.SUCCESS, 7, recovered, _notice("always"))
    _run(store, "r5", 8)
    assert _end(store, "r5", Status.SUCCESS, 9, _notice("r5:recovered", after_failure=True))
    assert sorted(i.key for i in store.notices()) == ["always", "recovered"]


def test_add_notices_dedupes_by_key(store: RunStore) -> None:
    assert store.add_notices([_notice("m1"), _notice("m2"), _notice("m1")], now=T0) == [
        True,
        True,
        False,
    ]
    assert store.add_notices([_notice("m1")], now=T0) == [False]
    assert len(store.notices()) == 2


def test_claim_leases_due_rows_to_one_sender_until_the_lease_runs_out(store: RunStore) -> None:
    store.add_notices([_notice("a"), _notice("b")], now=T0)
    first = store.claim_notices("s1", now=T0, lease=LEASE, limit=1)
    assert [(i.key, i.attempts) for i in first] == [("a", 1)]
    second = store.claim_notices("s2", now=T0, lease=LEASE, limit=10)
    assert [i.key for i in second] == ["b"]
    assert store.claim_notices("s3", now=T0 + timedelta(seconds=59), lease=LEASE, limit=10) == []
    # s1 and s2 died: once their leases ran out both rows go to another sender.
    again = store.claim_notices("s3", now=T0 + LEASE, lease=LEASE, limit=10)
    assert [(i.key, i.attempts) for i in again] == [("a", 2), ("b", 2)]


def test_sent_rows_are_never_claimed_again(store: RunStore) -> None:
    store.add_notices([_notice("a")], now=T0)
    assert store.claim_notices("s1", now=T0, lease=LEASE, limit=5)
    assert store.notice_sent("a", now=T0 + timedelta(seconds=1))
    assert not store.notice_sent("a", now=T0 + timedelta(seconds=2))
    assert store.claim_notices("s1", now=T0 + timedelta(hours=1), lease=LEASE, limit=5) == []
    (item,) = store.notices()
    assert item.state is NoticeState.SENT
    assert item.done == T0 + timedelta(seconds=1)


def test_a_failed_attempt_is_due_again_at_its_retry_time_or_given_up(store: RunStore) -> None:
    store.add_notices([_notice("a"), _notice("b")], now=T0)
    assert len(store.claim_notices("s1", now=T0, lease=LEASE, limit=5)) == 2
    retry = T0 + timedelta(seconds=10)
    assert store.notice_failed("a", now=T0, retry_at=retry, error="HTTP 500")
    assert store.notice_failed("b", now=T0, retry_at=None, error="HTTP 410")
    assert store.claim_notices("s1", now=retry - timedelta(seconds=1), lease=LEASE, limit=5) == []
    (again,) = store.claim_notices("s1", now=retry, lease=LEASE, limit=5)
    assert (again.key, again.attempts, again.last_error) == ("a", 2, "HTTP 500")
    dead = {i.key: i for i in store.notices()}["b"]
    assert dead.state is NoticeState.DEAD
    assert dead.last_error == "HTTP 410"
    assert not store.notice_failed("b", now=T0, retry_at=retry, error="x")


def test_prune_notices_deletes_done_rows_only(store: RunStore) -> None:
    store.add_notices([_notice("sent"), _notice("dead"), _notice("pending")], now=T0)
    store.claim_notices("s", now=T0, lease=LEASE, limit=5)
    store.notice_sent("sent", now=T0)
    store.notice_failed("dead", now=T0, retry_at=None, error="x")
    assert store.prune_notices(T0, limit=10) == 0  # created before T0 only
    assert store.prune_notices(T0 + timedelta(seconds=1), limit=1) == 1
    assert store.prune_notices(T0 + timedelta(seconds=1), limit=10) == 1
    assert [i.key for i in store.notices()] == ["pending"]
    with pytest.raises(ValueError, match="limit"):
        store.prune_notices(T0, limit=0)
    with pytest.raises(ValueError, match="lease"):
        store.claim_notices("s", now=T0, lease=timedelta(0), limit=1)


def test_concurrent_senders_on_their_own_store_objects_split_the_rows(shared_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ddeutil.workflow.store import open_store

    stores = [open_store(shared_url) for _ in range(3)]
    try:
        stores[0].add_notices([_notice(f"k{i:02d}") for i in range(60)], now=T0)

        def drain(index: int) -> list[str]:
            got: list[str] = []
            while items := stores[index].claim_notices(f"s{index}", now=T0, lease=LEASE, limit=4):
                got.extend(item.key for item in items)
            return got

        with ThreadPoolExecutor(3) as pool:
            claimed = [key for keys in pool.map(drain, range(3)) for key in keys]
        assert sorted(claimed) == [f"k{i:02d}" for i in range(60)]  # each row once
    finally:
        for opened in stores:
            opened.close()
