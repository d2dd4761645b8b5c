"""Bearer token, the insecure flag, body size limit, name validation and the error shape."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from _apitest import AUTH, TOKEN, TestClient, trigger
from ddeutil.workflow.api import create_app
from ddeutil.workflow.api.models import ErrorResponse
from ddeutil.workflow.errors import SettingsError
from ddeutil.workflow.settings import Settings

PROTECTED = [
    ("GET", "/api/v1/pipelines"),
    ("GET", "/api/v1/pipelines/quick"),
    ("POST", "/api/v1/pipelines/quick/runs"),
    ("GET", "/api/v1/runs"),
    ("GET", "/api/v1/runs/20240101T000000-00000000"),
    ("GET", "/api/v1/runs/20240101T000000-00000000/logs"),
]


def error_of(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    ErrorResponse.model_validate(body)
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_v1_route_needs_the_token(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert error_of(response)["code"] == "unauthorized"


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer ",
        f"Basic {TOKEN}",
        f"bearer{TOKEN}",
        "Bearer t\u00e9st".encode("latin-1"),
    ],
)
def test_a_wrong_token_is_401_not_403(client: TestClient, header: str | bytes) -> None:
    response = client.get("/api/v1/pipelines", headers={"Authorization": header})
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


def test_the_right_token_is_accepted_whatever_the_scheme_case(client: TestClient) -> None:
    assert client.get("/api/v1/pipelines", headers=AUTH).status_code == 200
    lower = {"Authorization": f"bearer {TOKEN}"}
    assert client.get("/api/v1/pipelines", headers=lower).status_code == 200


def test_health_and_docs_need_no_token(client: TestClient) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["store"] == {"reachable": True}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/pipelines/{name}/runs" in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_no_token_refuses_to_create_the_app(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError, match="WORKFLOW_API_TOKEN") as info:
        create_app(make_settings())
    assert "WORKFLOW_API_INSECURE" in str(info.value)


def test_insecure_flag_starts_without_auth_and_warns_loudly(
    make_settings: Callable[..., Settings],
    make_client: Callable[..., TestClient],
    caplog: pytest.LogCaptureFixture,
    conf: None,
) -> None:
    settings = make_settings(WORKFLOW_API_INSECURE="true")
    with caplog.at_level(logging.WARNING, logger="ddeutil.workflow.api"):
        client = make_client(settings)
    assert any("WITHOUT AUTHENTICATION" in r.getMessage() for r in caplog.records)
    assert client.get("/api/v1/pipelines").status_code == 200


def test_a_token_wins_over_the_insecure_flag(
    make_settings: Callable[..., Settings], make_client: Callable[..., TestClient]
) -> None:
    settings = make_settings(WORKFLOW_API_TOKEN=TOKEN, WORKFLOW_API_INSECURE="true")
    client = make_client(settings)
    assert client.get("/api/v1/pipelines").status_code == 401


def test_the_token_itself_is_masked_in_responses(client: TestClient) -> None:
    response = trigger(client, "typed", {"label": TOKEN, "count": 1})
    assert response.status_code == 422
    assert TOKEN not in response.text


def test_a_body_over_the_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=1000)
    big = {"params": {"who": "x" * 2000}}
    response = client.post("/api/v1/pipelines/quick/runs", json=big, headers=AUTH)
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_a_streamed_body_over_the_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=1000)

    def chunks() -> object:
        yield b'{"params": {"who": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}}'

    response = client.post(
        "/api/v1/pipelines/quick/runs",
        content=chunks(),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_a_body_under_the_limit_is_accepted(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=1000)
    assert trigger(client, "quick", {"who": "x" * 100}).status_code == 202


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/pipelines/..",
        "/api/v1/pipelines/a..b",
        "/api/v1/pipelines/.hidden",
        "/api/v1/pipelines/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/pipelines/quick%2F..",
        "/api/v1/pipelines/%2e%2e",
        "/api/v1/pipelines/a%5Cb",
        "/api/v1/pipelines/a%00b",
        "/api/v1/pipelines/" + "x" * 200,
        "/api/v1/pipelines/..%2F..%2Fetc/runs",
        "/api/v1/runs/..%2F..%2Fetc%2Fpasswd/logs",
        "/api/v1/runs/%2e%2e/logs",
    ],
)
def test_traversal_like_names_are_404_or_422_never_500(client: TestClient, path: str) -> None:
    method = "POST" if path.endswith("/runs") else "GET"
    response = client.request(method, path, headers=AUTH)
    assert response.status_code in (404, 422), response.text
    assert error_of(response)["code"] in ("not_found", "validation_error")


def test_unknown_routes_and_methods_use_the_error_shape(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here", headers=AUTH)
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    wrong = client.delete("/api/v1/pipelines", headers=AUTH)
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "method_not_allowed"


def test_malformed_json_is_422_in_the_error_shape(client: TestClient) -> None:
    response = client.post(
        "/api/v1/pipelines/quick/runs",
        content=b"{not json",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert error["details"][0]["location"] == "body"  # type: ignore[index]
