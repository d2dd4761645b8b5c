"""A template that cannot be read or built is a problem of the listing, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _apitest import AUTH, TestClient
from ddeutil.workflow.engine.pipeline import Pipeline

WriteConf = Callable[[str, str], Path]


def _level(n: int) -> str:
    items = ['"lol"'] * 10 if n == 0 else [f"*a{n - 1}"] * 10
    return "[" + ", ".join(items) + "]"


# The last anchor expands to a million items; the file is a few hundred bytes.
PARAM_BOMB = (
    "bomb:\n"
    "  type: Pipeline\n"
    "  params:\n"
    "    x:\n"
    "      type: list\n"
    "      default:\n" + "".join(f"        - &a{n} {_level(n)}\n" for n in range(6))
)

NEEDS_A_LIST = """\
odd-needs:
  type: Pipeline
  jobs:
    a: {stages: [{name: x}]}
    b: {needs: [[a]], stages: [{name: y}]}
"""


def listing(client: TestClient) -> tuple[list[str], dict[str, Any]]:
    response = client.get("/api/v1/pipelines", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    return [p["name"] for p in body["items"]], {p["template"]: p for p in body["problems"]}


def test_an_alias_bomb_param_default_is_a_problem_and_the_api_keeps_serving(
    write_conf: WriteConf, make_client: Callable[..., TestClient]
) -> None:
    write_conf("bomb.yml", PARAM_BOMB)
    client = make_client()
    names, problems = listing(client)
    assert "quick" in names
    assert "bomb" not in names
    assert problems["bomb"]["file"] == "bomb.yml"
    assert problems["bomb"]["key"] == "params.x.default[5]"  # the anchor that fans out
    assert "WORKFLOW_CORE_CONF_MAX_NODES" in problems["bomb"]["message"]
    shown = client.get("/api/v1/pipelines/bomb", headers=AUTH)
    assert shown.status_code == 422
    assert shown.json()["error"]["code"] == "invalid_pipeline"
    assert client.get("/health").status_code in {200, 503}  # answers (no scheduler runs)


def test_a_template_failing_with_a_type_error_is_a_problem_not_a_500(
    write_conf: WriteConf, make_client: Callable[..., TestClient]
) -> None:
    write_conf("odd.yml", NEEDS_A_LIST)
    names, problems = listing(make_client())
    assert "quick" in names
    assert problems["odd-needs"]["key"] == "jobs.b.needs[0]"


def test_any_exception_building_one_pipeline_leaves_the_others_listed(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Pipeline.from_template.__func__  # type: ignore[attr-defined]

    def failing(cls: type[Pipeline], /, template: Any, **kwargs: Any) -> Pipeline:
        if template.name == "typed":
            raise RecursionError("maximum recursion depth exceeded")
        return real(cls, template, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(Pipeline, "from_template", classmethod(failing))
    names, problems = listing(make_client())
    assert "quick" in names
    assert "typed" not in names
    assert "RecursionError" in problems["typed"]["message"]
