"""Property-based: malformed requests to every route of the OpenAPI document never 5xx.

For each operation in ``app.openapi()``, hypothesis draws path params (random
text, traversal-ish strings, real names), query params (random text, numbers out
of range, odd date-times), headers (random, missing or right tokens, idempotency
keys) and bodies (random JSON, random bytes, valid params). Every answer must be
below 500, and every error must have the one error shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from _apitest import TOKEN, TestClient
from ddeutil.workflow.api.models import ErrorResponse

NAMES = ["quick", "typed", "broken", "echo-secret", "on_every_5_min", "nope"]
TRAVERSAL = [
    "..",
    ".",
    "../etc/passwd",
    "..%2F..%2Fetc",
    "%2e%2e",
    "a/b",
    "a\\b",
    "a..b",
    "x" * 300,
    "\u00e4\u00f6",
    "%00",
    "20240101T000000-deadbeef",
]
ODD_VALUES = [
    "",
    "-1",
    "0",
    "1e309",
    "nan",
    "inf",
    "99999999999999999999999999",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "2024-13-45",
    "PENDING",
    "FAILED",
    "api",
    "\x00",
]

text = st.text(max_size=30)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)
params_bodies = st.fixed_dictionaries(
    {"params": st.dictionaries(st.sampled_from(["who", "count", "dry", "mode", "x"]), json_values)}
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@st.composite
def requests(draw: st.DrawFn, path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    url = path
    query: dict[str, Any] = {}
    headers: dict[str, str] = {}
    for param in operation.get("parameters", []):
        where, name = param["in"], param["name"]
        if where == "path":
            value = draw(st.one_of(st.sampled_from(NAMES + TRAVERSAL), text))
            safe = draw(st.sampled_from(["", "/", "/%.\\"]))
            url = url.replace("{" + name + "}", quote(value, safe=safe))
        elif where == "query" and draw(st.booleans()):
            query[name] = draw(
                st.one_of(
                    st.sampled_from(ODD_VALUES),
                    st.sampled_from(ODD_VALUES),
                    text,
                    st.integers(min_value=-(10**20), max_value=10**20).map(str),
                    st.lists(st.sampled_from(ODD_VALUES), max_size=3),
                )
            )
        elif where == "header" and draw(st.booleans()):
            headers[name] = draw(header_text)
    if draw(st.booleans()):
        query[draw(st.sampled_from(["junk", "limit", "wait"]))] = draw(text)
    auth = draw(st.sampled_from(["right", "right", "right", "right", "wrong", "none", "random"]))
    if auth == "right":
        headers["Authorization"] = f"Bearer {TOKEN}"
    elif auth == "wrong":
        headers["Authorization"] = f"Bearer {TOKEN}-not"
    elif auth == "random":
        headers["Authorization"] = draw(header_text)
    body_kind = draw(st.sampled_from(["none", "json", "params", "bytes"]))
    content: bytes | None = None
    if body_kind == "json":
        content = json.dumps(draw(json_values)).encode()
    elif body_kind == "params":
        content = json.dumps(draw(params_bodies)).encode()
    elif body_kind == "bytes":
        content = draw(st.binary(max_size=64))
    if content is not None:
        headers["Content-Type"] = draw(
            st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"])
        )
    return {
        "method": method.upper(),
        "url": url,
        "params": query,
        "headers": headers,
        "content": content,
    }


@pytest.mark.timeout(240)  # 14 operations x 250 requests: about 45 s on one idle core
def test_no_request_makes_the_api_answer_5xx(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    spec = client.app.openapi()  # type: ignore[attr-defined]
    operations = [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) == 14
    seen: set[int] = set()

    def send(request: dict[str, Any]) -> None:
        try:
            response = client.request(**request)
        except (httpx.InvalidURL, UnicodeEncodeError):
            assume(False)
            return
        seen.add(response.status_code)
        assert response.status_code < 500, (request, response.status_code, response.text)
        if response.status_code >= 400:
            ErrorResponse.model_validate(response.json())

    for path, method, operation in operations:
        check = settings(
            max_examples=250,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            derandomize=True,
            database=None,
        )(given(request=requests(path, method, operation))(send))
        check()
    assert {200, 202, 401, 404, 422} <= seen, seen
