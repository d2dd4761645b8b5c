"""open_store: which URL opens which store, and the errors for bad URLs."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import ddeutil.workflow.store as store_pkg
from ddeutil.workflow.errors import StoreError
from ddeutil.workflow.store import (
    MemoryRunStore,
    PostgresRunStore,
    RunStore,
    SqliteRunStore,
    open_store,
)


@pytest.mark.parametrize("slashes", ["/", "//"])
def test_sqlite_url_names_an_absolute_path_and_creates_its_folders(
    tmp_path: Path, slashes: str
) -> None:
    target = tmp_path / "a" / "b" / "runs.db"
    store = open_store(f"sqlite://{slashes}{str(target).lstrip('/')}")
    try:
        assert isinstance(store, SqliteRunStore)
        assert store.path == str(target)
        assert target.is_file()
        assert store.lock_path == f"{target}.lock"
        assert (store.synchronous, store.busy_timeout) == ("NORMAL", 30.0)
    finally:
        store.close()


def test_sqlite_url_options_are_applied(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/runs.db?timeout=2.5&synchronous=full")
    try:
        assert isinstance(store, SqliteRunStore)
        assert (store.synchronous, store.busy_timeout) == ("FULL", 2.5)
    finally:
        store.close()


def test_sqlite_url_path_is_percent_decoded(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/with%20space/runs.db")
    try:
        assert (tmp_path / "with space" / "runs.db").is_file()
    finally:
        store.close()


@pytest.mark.parametrize("url", ["sqlite://:memory:", "sqlite:///:memory:"])
def test_sqlite_memory_url_opens_a_private_database(url: str) -> None:
    store = open_store(url)
    try:
        assert isinstance(store, SqliteRunStore)
        assert store.lock_path is None
        assert store.ping()
    finally:
        store.close()


def test_each_memory_url_opens_a_fresh_store() -> None:
    a, b = open_store("memory://"), open_store("MEMORY://")
    assert isinstance(a, MemoryRunStore)
    a.set_watermark(datetime(2024, 1, 1, tzinfo=timezone.utc))
    assert b.get_watermark() is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("runs.db", "no scheme"),
        ("mysql://host/db", "unknown run store scheme 'mysql'"),
        ("memory://named", "plain memory://"),
        ("sqlite://relative/runs.db", "absolute file path"),
        ("sqlite://", "absolute file path"),
        ("sqlite:///", "absolute file path"),
        ("sqlite:////tmp/x.db?journal=off", "unknown option(s) journal"),
        ("sqlite:////tmp/x.db?timeout=soon", "timeout='soon'"),
        ("sqlite:////tmp/x.db?timeout=0", "must be positive"),
        ("sqlite:////tmp/x.db?synchronous=sometimes", "synchronous must be one of"),
        ("postgresql://h/db?schema=bad-name", "not a plain SQL identifier"),
        ("postgresql://h/db?schema=1abc", "not a plain SQL identifier"),
        ("postgresql://h/db?pool_size=many", "pool_size='many'"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(StoreError) as info:
        open_store(url)
    assert message in str(info.value)


class _FakePostgres:
    def __init__(self, conninfo: str, **kwargs: Any) -> None:
        self.conninfo = conninfo
        self.kwargs = kwargs


@pytest.mark.parametrize(
    "scheme", ["postgresql", "postgres", "postgresql+psycopg", "postgresql+asyncpg", "POSTGRESQL"]
)
def test_postgres_urls_are_normalised_for_psycopg(
    monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    monkeypatch.setattr(store_pkg, "PostgresRunStore", _FakePostgres)
    fake: Any = open_store(
        f"{scheme}://u:p%40ss@db.example:5433/runs?sslmode=require&schema=wf&pool_size=3"
    )
    assert fake.conninfo == "postgresql://u:p%40ss@db.example:5433/runs?sslmode=require"
    assert fake.kwargs == {"schema": "wf", "pool_size": 3}


def test_postgres_store_without_psycopg_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError, match=r"ddeutil-workflow\[postgres\]"):
        PostgresRunStore("postgresql://127.0.0.1/test")


def test_every_store_satisfies_the_protocol(tmp_path: Path) -> None:
    for url in ("memory://", f"sqlite:///{tmp_path}/runs.db"):
        store = open_store(url)
        try:
            assert isinstance(store, RunStore)
        finally:
            store.close()
    assert issubclass(PostgresRunStore, RunStore)
