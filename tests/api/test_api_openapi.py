"""The OpenAPI document: every route declares its pydantic models and the one error shape."""

from __future__ import annotations

from typing import Any

from _apitest import TestClient
from ddeutil.workflow.prometheus import CONTENT_TYPE


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, item in spec["paths"].items() for m, op in item.items()]


def ref(response: dict[str, Any]) -> str:
    schema = response["content"]["application/json"]["schema"]
    return str(schema["$ref"]).rsplit("/", 1)[-1]


def test_every_route_documents_its_response_model(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    models = {
        (m.upper(), p): ref(op["responses"][next(c for c in op["responses"] if c < "300")])
        for p, m, op in operations(spec)
        if p != "/metrics"
    }
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == [CONTENT_TYPE]
    assert models == {
        ("GET", "/health"): "HealthResponse",
        ("GET", "/api/v1/pipelines"): "PipelineList",
        ("GET", "/api/v1/pipelines/{name}"): "PipelineDetail",
        ("POST", "/api/v1/pipelines/{name}/pause"): "PauseResponse",
        ("POST", "/api/v1/pipelines/{name}/unpause"): "PauseResponse",
        ("POST", "/api/v1/pipelines/{name}/runs"): "TriggerResponse",
        ("POST", "/api/v1/pipelines/{name}/backfill"): "BackfillAccepted",
        ("GET", "/api/v1/runs"): "RunPage",
        ("GET", "/api/v1/runs/{run_id}"): "RunDetail",
        ("POST", "/api/v1/runs/{run_id}/rerun"): "TriggerResponse",
        ("GET", "/api/v1/runs/{run_id}/logs"): "RunLogs",
        ("POST", "/api/v1/prune"): "PruneResponse",
        ("POST", "/api/v1/runs/{run_id}/cancel"): "CancelResponse",
    }


def test_every_v1_error_is_the_one_error_shape_and_needs_the_token(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, method, op in operations(spec):
        if path in ("/health", "/metrics"):
            assert "security" not in op
            continue
        assert op["security"] == [{"bearer": []}], (method, path)
        errors = {code: ref(r) for code, r in op["responses"].items() if code >= "400"}
        assert {"401", "422", "503"} <= set(errors), (method, path)
        assert set(errors.values()) == {"ErrorResponse"}, (method, path)
    trigger = spec["paths"]["/api/v1/pipelines/{name}/runs"]["post"]
    assert {"404", "409", "413"} <= set(trigger["responses"])
    assert trigger["responses"]["202"]
