"""Fixtures of the REST API tests: a conf folder, a SQLite run store, a started app."""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _apitest import GATE, PIPELINES, SECRET_VALUE, TOKEN, Gate, TestClient
from ddeutil.workflow.api import create_app
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.settings import Settings


@pytest.fixture(autouse=True)
def _run_logs_at_info() -> Iterator[None]:
    """Let INFO records of runs reach the per-run log files (no entry point configured logging)."""
    logger = logging.getLogger("ddeutil.workflow")
    before = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(before)


@pytest.fixture
def conf(write_conf: Callable[[str, str], Any]) -> None:
    write_conf("pipelines.yml", PIPELINES)


@pytest.fixture
def api_settings(make_settings: Callable[..., Settings], conf: None) -> Settings:
    return make_settings(WORKFLOW_API_TOKEN=TOKEN, WORKFLOW_API_RUN_WORKERS="2")


@pytest.fixture
def api_clock() -> FakeClock:
    from datetime import datetime, timezone

    return FakeClock(datetime(2024, 1, 1, 0, 2, 30, tzinfo=timezone.utc))


@pytest.fixture
def masker() -> Masker:
    return Masker.from_env({"DDW_API_TEST_TOKEN": SECRET_VALUE})


@pytest.fixture
def make_client(
    api_settings: Settings, api_clock: FakeClock, masker: Masker
) -> Iterator[Callable[..., TestClient]]:
    """Build a started app (lifespan entered); every client is closed at teardown."""
    stack: list[TestClient] = []

    def _make(settings: Settings | None = None, **kwargs: Any) -> TestClient:
        kwargs.setdefault("clock", api_clock)
        kwargs.setdefault("masker", masker)
        app = create_app(settings or api_settings, **kwargs)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        stack.append(client)
        return client

    yield _make
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def gate() -> Iterator[Gate]:
    state = Gate()
    module = types.ModuleType(GATE)
    module.entered = state.entered  # type: ignore[attr-defined]
    module.release = state.release  # type: ignore[attr-defined]
    sys.modules[GATE] = module
    yield state
    state.release.set()
    sys.modules.pop(GATE, None)
