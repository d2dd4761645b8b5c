"""Shared fixtures: isolated settings, a temporary conf folder, an engine, a fake clock."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run ``slow`` (wall-clock) tests first, so under xdist they overlap the rest."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
