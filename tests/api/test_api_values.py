"""A value posted to the API is data in the bodies it reaches, never code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from _apitest import TestClient, trigger, wait_terminal
from hooks_pkg.hostile import INJECT_CONF, hostile


def test_an_api_trigger_value_cannot_inject_code(
    write_conf: Callable[[str, str], Any],
    make_client: Callable[..., TestClient],
    tmp_path: Path,
) -> None:
    write_conf("inject.yml", INJECT_CONF)
    client = make_client()
    marker = tmp_path / "owned-through-api"
    for value in hostile(marker):
        response = trigger(client, "inject", {"name": value})
        assert response.status_code == 202, response.text
        body = wait_terminal(client, response.json()["run_id"])
        assert body["status"] == "SUCCESS", body["errors"]
        stages = body["context"]["jobs"]["j"]["stages"]
        assert stages["sh"]["outputs"]["stdout"] == f"hello {value}".rstrip("\n")
        assert stages["py"]["outputs"]["msg"] == f"hello {value}"
    assert not marker.exists()
