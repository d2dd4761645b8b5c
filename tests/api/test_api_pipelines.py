"""Listing and showing pipelines: params with types, schedules with next fire times."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from _apitest import AUTH, TestClient
from ddeutil.workflow.api.catalog import Catalog
from ddeutil.workflow.api.errors import ApiError
from ddeutil.workflow.api.models import PipelineDetail, PipelineList
from ddeutil.workflow.settings import Settings


def test_list_shows_usable_pipelines_with_params_and_next_fire_times(client: TestClient) -> None:
    response = client.get("/api/v1/pipelines", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    PipelineList.model_validate(body)
    names = [p["name"] for p in body["items"]]
    assert names == ["cooperative", "echo-secret", "gated", "quick", "typed"]
    assert body["total"] == 5
    quick = next(p for p in body["items"] if p["name"] == "quick")
    assert quick["desc"] == "three quick stages"
    assert quick["params"] == [
        {
            "name": "who",
            "type": "str",
            "required": False,
            "default": "world",
            "desc": None,
            "options": None,
        }
    ]
    # The fake clock reads 2024-01-01 00:02:30 UTC.
    assert quick["schedules"] == [
        {
            "name": "on_every_5_min",
            "cron": "*/5 * * * *",
            "written": None,
            "timezone": "UTC",
            "next": ["2024-01-01T00:05:00Z"],
            "jitter": 0,
            "starts": ["2024-01-01T00:05:00Z"],
        }
    ]
    assert quick["scheduled"] is True


def test_list_reports_broken_templates_as_problems(client: TestClient) -> None:
    body = client.get("/api/v1/pipelines", headers=AUTH).json()
    problems = body["problems"]
    assert [p["template"] for p in problems] == ["broken"]
    assert problems[0]["file"] == "pipelines.yml"
    assert "bogus" in problems[0]["message"]


def test_next_count_asks_for_more_fire_times(client: TestClient) -> None:
    body = client.get("/api/v1/pipelines", params={"next": 3}, headers=AUTH).json()
    quick = next(p for p in body["items"] if p["name"] == "quick")
    assert quick["schedules"][0]["next"] == [
        "2024-01-01T00:05:00Z",
        "2024-01-01T00:10:00Z",
        "2024-01-01T00:15:00Z",
    ]
    too_many = client.get("/api/v1/pipelines", params={"next": 51}, headers=AUTH)
    assert too_many.status_code == 422


def test_show_one_pipeline_with_its_params_schema(client: TestClient) -> None:
    response = client.get("/api/v1/pipelines/typed", headers=AUTH)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    PipelineDetail.model_validate(body)
    params = {p["name"]: p for p in body["params"]}
    assert {n: p["type"] for n, p in params.items()} == {
        "count": "int",
        "run-date": "datetime",
        "mode": "choice",
        "dry": "bool",
        "label": "str",
    }
    assert params["mode"]["options"] == ["full", "delta"]
    assert params["count"]["required"] is True
    assert params["label"]["required"] is False
    schema = body["params_schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["count", "run-date", "mode", "dry"]
    assert schema["properties"]["run-date"] == {"type": "string", "format": "date-time"}
    assert body["jobs"] == ["main"]
    assert body["schedules"] == []
    assert body["scheduled"] is False


def test_show_defaults_to_five_fire_times(client: TestClient) -> None:
    body = client.get("/api/v1/pipelines/quick", headers=AUTH).json()
    assert len(body["schedules"][0]["next"]) == 5
    assert body["schedules"][0]["next"][-1] == "2024-01-01T00:25:00Z"


def test_show_unknown_is_404_and_broken_is_422(client: TestClient) -> None:
    missing = client.get("/api/v1/pipelines/nope", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    broken = client.get("/api/v1/pipelines/broken", headers=AUTH)
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "invalid_pipeline"
    not_a_pipeline = client.get("/api/v1/pipelines/on_every_5_min", headers=AUTH)
    assert not_a_pipeline.status_code == 404


def test_the_catalog_picks_up_conf_changes(
    write_conf: Callable[[str, str], Any], api_settings: Settings
) -> None:
    catalog = Catalog(api_settings, refresh_seconds=0)
    first = catalog.get("quick")
    assert catalog.get("quick") is first  # validated once per conf version
    with pytest.raises(ApiError) as missing:
        catalog.get("later")
    assert missing.value.status == 404
    write_conf(
        "later.yml",
        """
        later:
          type: Pipeline
          desc: added while the API runs
        """,
    )
    assert catalog.get("later").pipeline is not None
    assert catalog.get("later").pipeline.desc == "added while the API runs"  # type: ignore[union-attr]
    pipelines, _ = catalog.all()
    assert "later" in [p.name for p in pipelines]


def test_a_duplicate_template_name_is_reported(
    write_conf: Callable[[str, str], Any], make_client: Callable[..., TestClient]
) -> None:
    write_conf(
        "more.yml",
        """
        quick:
          type: Pipeline
        """,
    )
    client = make_client()
    response = client.get("/api/v1/pipelines/quick", headers=AUTH)
    assert response.status_code == 422
    assert "more than once" in response.json()["error"]["message"]
    listed = client.get("/api/v1/pipelines", headers=AUTH).json()
    assert "quick" not in [p["name"] for p in listed["items"]]
    assert any("more than once" in p["message"] for p in listed["problems"])
