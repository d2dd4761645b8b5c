"""``/docs`` (Swagger UI) from assets shipped in the package, never from a CDN.

FastAPI's default ``/docs`` page loads Swagger UI's JavaScript and CSS from a
public CDN (and its favicon from FastAPI's site), so it is blank on a machine
without internet access. Policies:

* **Offline**: the page references only this app's own URLs: the assets are
  served from ``docs_static/`` (Swagger UI 5, Apache-2.0, its license and notice
  next to it) under :data:`ASSETS_PREFIX`; the spec validator badge (which
  calls validator.swagger.io) is off.
* **No ReDoc**: ``/redoc`` is turned off rather than served from a CDN or
  shipped as a second megabyte-sized bundle; ``/docs`` covers the same spec.
* **Open like the spec**: ``/docs``, its assets and ``/openapi.json`` need no
  token (the spec lists routes, never data); the calls made from the page do.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["ASSETS", "ASSETS_PREFIX", "DOCS_URL", "mount_docs"]

DOCS_URL = "/docs"
ASSETS_PREFIX = "/docs-assets"
ASSETS = Path(__file__).parent / "docs_static"
"""Swagger UI's bundle, stylesheet and favicon, with their licenses (see README.txt there)."""


def mount_docs(app: FastAPI) -> None:
    """Serve Swagger UI at :data:`DOCS_URL` from :data:`ASSETS`.

    ``app`` must be built with ``docs_url=None, redoc_url=None`` (this adds the
    page, its OAuth2 redirect helper and the static assets).
    """
    app.mount(ASSETS_PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} - API docs"
    redirect = f"{DOCS_URL}/oauth2-redirect"

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PREFIX}/favicon-32x32.png",
            oauth2_redirect_url=redirect,
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
