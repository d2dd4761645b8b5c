"""``/docs`` works offline: the page references only the app's own URLs, which are served."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from ddeutil.workflow.api.docs import ASSETS, ASSETS_PREFIX

URL = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")


def test_docs_page_references_no_external_url(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "http://" not in page.text
    assert "https://" not in page.text
    assert "cdn" not in page.text.lower()
    refs = set(URL.findall(page.text))
    assert {
        f"{ASSETS_PREFIX}/swagger-ui-bundle.js",
        f"{ASSETS_PREFIX}/swagger-ui.css",
        f"{ASSETS_PREFIX}/favicon-32x32.png",
        "/openapi.json",
    } <= refs
    assert '"validatorUrl": null' in page.text


def test_docs_assets_are_served_from_the_package(client: TestClient) -> None:
    page = client.get("/docs").text
    for ref in sorted(set(URL.findall(page)) - {"/openapi.json", "/docs/oauth2-redirect"}):
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.content == (ASSETS / ref.rsplit("/", 1)[1]).read_bytes()
    js = client.get(f"{ASSETS_PREFIX}/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"]
    assert b"SwaggerUIBundle" in js.content
    assert client.get("/openapi.json").status_code == 200


def test_the_assets_ship_with_their_license_and_redoc_is_off(client: TestClient) -> None:
    assert "Apache License" in (ASSETS / "swagger-ui.LICENSE").read_text(encoding="utf-8")
    assert client.get(f"{ASSETS_PREFIX}/swagger-ui.LICENSE").status_code == 200
    assert client.get("/redoc").status_code == 404
    assert client.get(f"{ASSETS_PREFIX}/../factory.py").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 200
