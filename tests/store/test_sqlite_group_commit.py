"""SQLite group commit of run updates: shared transactions, own outcomes, durable returns."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.errors import StoreError
from ddeutil.workflow.result import Status
from ddeutil.workflow.store import ReleaseKey, SqliteRunStore
from ddeutil.workflow.store.sqlite import _Update

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
THREADS = 12


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteRunStore]:
    opened = SqliteRunStore(tmp_path / "runs.db")
    yield opened
    opened.close()


def pending(store: SqliteRunStore, count: int) -> list[str]:
    ids = [f"run-{n}" for n in range(count)]
    for n, run_id in enumerate(ids):
        key = ReleaseKey("p", "* * * * *@UTC", T0 + timedelta(minutes=n))
        assert store.claim(key, run_id=run_id, params={}, logical_date=key.at, now=T0)
    return ids


class _Queued(list[Any]):
    """The store's update queue, telling the test each time an update is queued."""

    def __init__(self, cond: threading.Condition) -> None:
        super().__init__()
        self._cond = cond

    def append(self, item: Any) -> None:
        with self._cond:
            super().append(item)
            self._cond.notify_all()


def run_queued_together(
    store: SqliteRunStore, calls: list[Callable[[], Any]]
) -> tuple[list[Any], int]:
    """Run ``calls`` on threads while the connection is busy, so all queue first.

    Returns each call's result (or exception) and the number of write
    transactions the store opened meanwhile.
    """
    cond = threading.Condition()
    store._queued = _Queued(cond)
    writes = 0
    original = store._write

    def counting() -> AbstractContextManager[Any]:
        nonlocal writes
        writes += 1
        return original()

    store._write = counting  # type: ignore[method-assign, assignment]
    results: list[Any] = [None] * len(calls)

    def call(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    with store._mutex:  # the connection is busy: every update queues behind it
        for thread in threads:
            thread.start()
        with cond:
            assert cond.wait_for(lambda: len(store._queued) == len(calls), timeout=10)
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    return results, writes


def test_updates_queued_together_commit_in_one_transaction(store: SqliteRunStore) -> None:
    ids = pending(store, THREADS)
    calls: list[Callable[[], Any]] = [
        functools.partial(store.mark_running, run_id, now=T0) for run_id in ids
    ]
    results, writes = run_queued_together(store, calls)
    assert results == [True] * THREADS
    assert writes == 1
    assert {store.get_run(r).status for r in ids} == {Status.RUNNING}  # type: ignore[union-attr]


def test_each_update_keeps_its_own_outcome_in_a_shared_transaction(
    store: SqliteRunStore,
) -> None:
    ids = pending(store, 4)
    assert store.mark_running(ids[0], now=T0)
    assert store.finish(ids[1], status=Status.SUCCESS, now=T0)
    calls: list[Callable[[], Any]] = [
        lambda: store.mark_running(ids[0], now=T0),  # already RUNNING: refused
        lambda: store.finish(ids[1], status=Status.FAILED, now=T0),  # already closed
        lambda: store.mark_running(ids[2], now=T0),
        lambda: store.finish(ids[3], status=Status.SUCCESS, now=T0, context={"k": 1}),
    ]
    results, writes = run_queued_together(store, calls)
    assert results == [False, False, True, True]
    assert writes == 1
    record = store.get_run(ids[3])
    assert record is not None
    assert record.status is Status.SUCCESS
    assert record.context == {"k": 1}
    assert store.get_run(ids[1]).status is Status.SUCCESS  # type: ignore[union-attr]


def test_a_failing_update_fails_alone_and_the_others_commit(store: SqliteRunStore) -> None:
    ids = pending(store, 3)
    calls: list[Callable[[], Any]] = [
        lambda: store.mark_running(ids[0], now=T0),
        lambda: store._update_one("UPDATE no_such_table SET x = 1", ()),
        lambda: store.mark_running(ids[1], now=T0),
        lambda: store.mark_running(ids[2], now=T0),
    ]
    results, _ = run_queued_together(store, calls)
    assert results[0] is True
    assert isinstance(results[1], StoreError)
    assert "no_such_table" in str(results[1])
    assert results[2:] == [True, True]
    assert {store.get_run(r).status for r in ids} == {Status.RUNNING}  # type: ignore[union-attr]


def test_an_update_is_committed_when_the_call_returns(
    store: SqliteRunStore, tmp_path: Path
) -> None:
    ids = pending(store, THREADS)
    done = threading.Barrier(THREADS)
    seen: list[Status | None] = []
    other = SqliteRunStore(tmp_path / "runs.db")  # another connection, as another process
    guard = threading.Lock()

    def finish(run_id: str) -> None:
        assert store.finish(run_id, status=Status.SUCCESS, now=T0)
        record = other.get_run(run_id)
        with guard:
            seen.append(None if record is None else record.status)
        done.wait(10)

    threads = [threading.Thread(target=finish, args=(r,)) for r in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    other.close()
    assert seen == [Status.SUCCESS] * THREADS


def test_an_interrupted_shared_transaction_fails_every_update_it_held(
    store: SqliteRunStore,
) -> None:
    ids = pending(store, 2)
    original = store._write
    calls = 0

    def interrupted() -> AbstractContextManager[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyboardInterrupt
        return original()

    store._write = interrupted  # type: ignore[method-assign, assignment]
    update = _Update("UPDATE workflow_runs SET started = started WHERE run_id = ?", (ids[1],))
    store._queued.append(update)  # another thread's update, queued before ours
    with pytest.raises(KeyboardInterrupt):
        store.mark_running(ids[0], now=T0)
    assert isinstance(update.error, StoreError)
    assert "interrupted" in str(update.error)
    assert store.mark_running(ids[0], now=T0)  # the store still works
