"""Shared fixtures: isolated settings, a temporary conf folder, an engine, a fake clock.

PostgreSQL tests run against ``postgresql://<user>@127.0.0.1:5432/test`` (user from
``PGUSER``, else ``root``, else ``postgres``; or the whole URL from
``WORKFLOW_TEST_POSTGRES_URL``) and skip with the reason when no server answers
within 2 seconds. Each test gets its own schema (``postgres_url``), dropped
afterwards, so test runs never see each other's rows.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.settings import Settings


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An application root with an empty ``conf/`` folder."""
    (tmp_path / "conf").mkdir()
    return tmp_path


@pytest.fixture
def make_settings(root: Path) -> Callable[..., Settings]:
    """Build settings rooted at ``root`` from ``WORKFLOW_*`` overrides (no process env)."""

    def _make(**env: str) -> Settings:
        base = {"WORKFLOW_ROOT_PATH": str(root), "WORKFLOW_CORE_TIMEZONE": "UTC"}
        base.update(env)
        return Settings.from_env(base)

    return _make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def write_conf(root: Path) -> Callable[[str, str], Path]:
    """Write a YAML file (dedented) under ``conf/`` and return its path."""

    def _write(relpath: str, text: str) -> Path:
        path = root / "conf" / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def engine(
    write_conf: Callable[[str, str], Path],
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """An :class:`hooks_pkg.engine.Engine` over the test's conf folder and default settings."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from hooks_pkg.engine import Engine

    return Engine(write_conf, make_settings())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2024, 1, 1, tzinfo=timezone.utc))


def _postgres_base() -> tuple[str | None, str]:
    """Return (base URL, "") for a reachable server or (None, why not)."""
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (extra `postgres`)"
    explicit = os.environ.get("WORKFLOW_TEST_POSTGRES_URL")
    if explicit:
        candidates = [explicit]
    else:
        users = [os.environ["PGUSER"]] if os.environ.get("PGUSER") else ["root", "postgres"]
        candidates = [f"postgresql://{user}@127.0.0.1:5432/test" for user in users]
    reasons = []
    for url in candidates:
        try:
            psycopg.connect(url, connect_timeout=2).close()
        except psycopg.Error as exc:
            reasons.append(f"{url}: {str(exc).strip().splitlines()[0]}")
        else:
            return url, ""
    return None, "PostgreSQL not reachable: " + "; ".join(reasons)


@pytest.fixture(scope="session")
def postgres_base() -> str:
    url, why = _postgres_base()
    if url is None:
        pytest.skip(why)
    return url


@pytest.fixture
def postgres_url(postgres_base: str) -> Iterator[str]:
    """A PostgreSQL store URL with a fresh schema, dropped after the test."""
    import psycopg

    schema = f"wf_test_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in postgres_base else "?"
    yield f"{postgres_base}{sep}schema={schema}&connect_timeout=2"
    with psycopg.connect(postgres_base, autocommit=True, connect_timeout=2) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run ``slow`` (wall-clock) tests first, one per xdist worker, so they overlap the rest.

    pytest-xdist's ``load`` scheduling hands each worker a first chunk of consecutive
    tests (a quarter of its share of the collection). Each slow test goes to the head
    of a different chunk: two slow tests side by side would both land on the first
    worker and wait for each other. Every worker collects in the same order (the
    controller checks it).
    """
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    rest = [item for item in items if item.get_closest_marker("slow") is None]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2 or not slow:
        items[:] = slow + rest
        return
    chunk = max(len(items) // workers // 4, 2)
    heads: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for n, item in enumerate(slow):
        heads[n % workers].append(item)
    ordered: list[pytest.Item] = []
    for head in heads:
        take = max(chunk - len(head), 0)
        ordered += head + rest[:take]
        rest = rest[take:]
    items[:] = ordered + rest
