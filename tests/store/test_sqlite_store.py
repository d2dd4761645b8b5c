"""SQLite specifics: WAL, schema versioning, lock file, busy handling."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.errors import StoreError, StoreLockedError
from ddeutil.workflow.store import ReleaseKey, RunStore, SqliteRunStore, open_store
from ddeutil.workflow.store._sql import SCHEMA_VERSION
from ddeutil.workflow.store.outbox import Notice

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteRunStore]:
    opened = SqliteRunStore(db)
    yield opened
    opened.close()


def claim(store: RunStore, minutes: int, run_id: str) -> bool:
    key = ReleaseKey("p", "* * * * *@UTC", T0 + timedelta(minutes=minutes))
    return store.claim(key, run_id=run_id, params={}, logical_date=key.at, now=T0)


def test_database_is_in_wal_mode_with_a_versioned_schema(store: SqliteRunStore, db: Path) -> None:
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        version = raw.execute(
            "SELECT value FROM workflow_meta WHERE key = 'schema_version'"
        ).fetchone()
        indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    raw.close()
    assert version == (str(SCHEMA_VERSION),) == ("5",)
    assert {"workflow_runs_pipeline_ix", "workflow_runs_status_ix"} <= indexes


def test_reopening_keeps_the_schema_and_rows(store: SqliteRunStore, db: Path) -> None:
    assert claim(store, 0, "r1")
    store.close()
    again = SqliteRunStore(db)
    try:
        assert again.get_run("r1") is not None
    finally:
        again.close()


def test_a_version_4_store_gains_the_outbox_and_keeps_its_runs(
    store: SqliteRunStore, db: Path
) -> None:
    assert claim(store, 0, "r1")
    store.close()
    with sqlite3.connect(db) as raw:  # the store as version 4 left it
        raw.execute("DROP TABLE workflow_outbox")
        raw.execute("UPDATE workflow_meta SET value = '4' WHERE key = 'schema_version'")
    raw.close()
    reopened = SqliteRunStore(db)
    try:
        assert reopened.get_run("r1") is not None
        assert reopened.add_notices([_notice("k")], now=T0) == [True]
        assert [n.key for n in reopened.notices()] == ["k"]
    finally:
        reopened.close()
    with sqlite3.connect(db) as raw:
        version = raw.execute(
            "SELECT value FROM workflow_meta WHERE key = 'schema_version'"
        ).fetchone()
    raw.close()
    assert version == ("5",)


def _notice(key: str) -> Notice:
    return Notice(key, "p", "missed", "webhook", "http://127.0.0.1:1/", "{}")


def test_a_newer_schema_is_refused(store: SqliteRunStore, db: Path) -> None:
    store.close()
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE workflow_meta SET value = '99' WHERE key = 'schema_version'")
    raw.close()
    with pytest.raises(StoreError, match="schema version 99, newer"):
        SqliteRunStore(db)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=str(path)):
        SqliteRunStore(path)


def test_a_folder_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot open"):
        SqliteRunStore(tmp_path / "file" / "runs.db")


def test_lock_file_names_the_holder_while_held(store: SqliteRunStore) -> None:
    assert store.lock_path is not None
    lock = Path(store.lock_path)
    with store.scheduler_lock("daemon@vm"):
        content = lock.read_text()
        assert "owner daemon@vm" in content
        assert "pid " in content
        with pytest.raises(StoreLockedError) as info, store.scheduler_lock("other"):
            pytest.fail("lock granted twice")
        assert store.lock_path in str(info.value)
        assert "owner daemon@vm" in str(info.value)
    assert lock.read_text() == ""


def test_a_write_blocked_past_the_busy_timeout_fails_cleanly(db: Path) -> None:
    store = open_store(f"sqlite:///{db}?timeout=0.2")
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked"):
            claim(store, 0, "r1")
        blocker.execute("ROLLBACK")
        # nothing half-done is left behind: the same claim now succeeds
        assert claim(store, 0, "r1")
    finally:
        blocker.close()
        store.close()


def test_readers_are_not_blocked_by_another_process_writing(
    store: SqliteRunStore, db: Path
) -> None:
    assert claim(store, 0, "r1")
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM workflow_runs")
        assert store.get_run("r1") is not None  # WAL: the committed state is readable
        assert store.count_runs() == 1
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def _open_when_released(path: str, gate: Any, out: Any) -> None:
    gate.wait()
    try:
        SqliteRunStore(path).close()
        out.put("ok")
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_store_together_all_succeed(tmp_path: Path) -> None:
    """A daemon and its workers may create the same store at once (journal mode, schema)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    results: list[str] = []
    for round_ in range(25):
        gate, out = ctx.Barrier(6), ctx.Queue()
        path = str(tmp_path / f"new-{round_}.db")
        procs = [ctx.Process(target=_open_when_released, args=(path, gate, out)) for _ in range(6)]
        for proc in procs:
            proc.start()
        results += [out.get(timeout=30) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
    assert [r for r in results if r != "ok"] == []
