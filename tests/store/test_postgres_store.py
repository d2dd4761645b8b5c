"""PostgreSQL specifics: schemas, session recovery, the advisory lock holder."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ddeutil.workflow.errors import StoreError
from ddeutil.workflow.store import PostgresRunStore, ReleaseKey, open_store

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
KEY = ReleaseKey("p", "* * * * *@UTC", T0)


def _terminate_sessions(base: str, application_name: str) -> int:
    """Kill the server sessions of one store (as a database restart would)."""
    import psycopg

    with psycopg.connect(base, autocommit=True, connect_timeout=2) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


def _named(url: str) -> tuple[str, str]:
    """Give the store's sessions a unique application_name; return (url, name)."""
    name = "wf_" + url.split("schema=", 1)[1].split("&", 1)[0]
    return f"{url}&application_name={name}", name


def test_schemas_keep_stores_apart(postgres_url: str, postgres_base: str) -> None:
    import psycopg

    other_url = postgres_url.replace("schema=wf_test_", "schema=wf_other_")
    a, b = open_store(postgres_url), open_store(other_url)
    try:
        assert a.claim(KEY, run_id="a", params={}, logical_date=T0, now=T0)
        assert b.claim(KEY, run_id="b", params={}, logical_date=T0, now=T0)
        with a.scheduler_lock("a"), b.scheduler_lock("b"):
            pass  # one lock per schema
        assert [r.run_id for r in b.list_runs()] == ["b"]
    finally:
        a.close()
        b.close()
        schema = other_url.split("schema=", 1)[1].split("&", 1)[0]
        with psycopg.connect(postgres_base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_idle_sessions_dropped_by_the_server_are_replaced(
    postgres_url: str, postgres_base: str
) -> None:
    url, name = _named(postgres_url)
    store = open_store(url)
    assert isinstance(store, PostgresRunStore)
    try:
        assert store.claim(KEY, run_id="r1", params={}, logical_date=T0, now=T0)
        store._pool.check_after = 0.0  # ping every idle session before use
        assert _terminate_sessions(postgres_base, name) >= 1
        assert store.get_run("r1") is not None
        assert store.ping()
    finally:
        store.close()


def test_a_dropped_session_in_use_fails_with_a_store_error_once(
    postgres_url: str, postgres_base: str
) -> None:
    url, name = _named(postgres_url)
    store = open_store(url)
    assert isinstance(store, PostgresRunStore)
    try:
        store._pool.check_after = 3600.0  # no ping: the statement meets the dead session
        assert store.get_run("none") is None
        assert _terminate_sessions(postgres_base, name) >= 1
        with pytest.raises(StoreError, match="PostgreSQL run store"):
            store.get_run("none")
        assert store.get_run("none") is None  # the broken session was discarded
    finally:
        store.close()


def test_a_server_restart_fails_one_operation_not_one_per_pooled_session(
    postgres_url: str, postgres_base: str
) -> None:
    import threading

    url, name = _named(postgres_url)
    store = open_store(url)
    assert isinstance(store, PostgresRunStore)
    try:
        store._pool.check_after = 3600.0  # no ping: the statement meets the dead session
        barrier = threading.Barrier(3)

        def use() -> None:  # three sessions in use at once, then idle in the pool
            with store._pool.connection() as conn:
                barrier.wait(timeout=10)
                conn.execute("SELECT 1")

        threads = [threading.Thread(target=use) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert _terminate_sessions(postgres_base, name) >= 3
        with pytest.raises(StoreError):
            store.get_run("none")
        assert [store.get_run("none") for _ in range(3)] == [None, None, None]
    finally:
        store.close()


def test_sessions_free_their_locks_when_a_client_stops_in_a_transaction(
    postgres_url: str,
) -> None:
    store = open_store(postgres_url)
    assert isinstance(store, PostgresRunStore)
    try:
        with store._pool.connection() as conn:
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("statement_timeout", "idle_in_transaction_session_timeout")
            }
        assert settings == {
            "statement_timeout": "30s",
            "idle_in_transaction_session_timeout": "5s",
        }
    finally:
        store.close()


def test_daemons_share_the_lock_and_an_older_exclusive_holder_keeps_them_out(
    postgres_url: str, postgres_base: str
) -> None:
    import psycopg

    from ddeutil.workflow.errors import StoreLockedError
    from ddeutil.workflow.store.postgres import _key

    a, b = open_store(postgres_url), open_store(postgres_url)
    schema = postgres_url.split("schema=", 1)[1].split("&", 1)[0]
    try:
        with a.scheduler_lock("a"), b.scheduler_lock("b"):
            pass  # any number of daemons of this version at once
        with psycopg.connect(postgres_base, autocommit=True) as old:  # a pre-fleet daemon
            row = old.execute(
                "SELECT pg_try_advisory_lock(%s)", (_key("scheduler", schema),)
            ).fetchone()
            assert row is not None
            assert row[0]
            with (
                pytest.raises(StoreLockedError, match="older ddeutil-workflow version"),
                a.scheduler_lock("a"),
            ):
                pass
        with a.scheduler_lock("a"):  # it stopped: the store is ours again
            pass
    finally:
        a.close()
        b.close()


def test_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="PostgreSQL run store"):
        open_store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")


def test_admission_passes_over_a_pipeline_another_session_holds(
    postgres_url: str, postgres_base: str
) -> None:
    import time

    import psycopg

    from ddeutil.workflow.store.base import Claim
    from ddeutil.workflow.store.fleet import ClaimState, Decision, RoundClaim, RoundView

    store = open_store(postgres_url)
    schema = postgres_url.split("schema=", 1)[1].split("&", 1)[0]
    try:
        assert store.join("a", now=T0, host="h", pid=1)

        def decide(view: RoundView) -> Decision:
            claim = Claim(ReleaseKey("p", "k", T0), "p-1", {}, T0)
            return Decision((RoundClaim(claim, ClaimState.WAITING),))

        store.claim_round(
            ["p"], owner="a", at=T0, init=T0.replace(year=2023), now=T0, decide=decide
        )
        with psycopg.connect(postgres_base) as paused:  # a daemon stopped mid-transaction
            paused.execute(f"SET search_path TO {schema}")
            paused.execute("SELECT at FROM workflow_watermarks WHERE pipeline = 'p' FOR UPDATE")
            started = time.monotonic()
            assert store.admit({"p": 1}, owner="a", now=T0) == []
            assert time.monotonic() - started < 1.0  # passed over, not waited for
            paused.rollback()
        assert store.admit({"p": 1}, owner="a", now=T0) == ["p-1"]
    finally:
        store.close()
