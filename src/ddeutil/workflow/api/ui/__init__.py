"""The web dashboard under ``/ui/``: pipelines, run history, run pages and actions.

Server-rendered HTML (Jinja2 templates in ``templates/``) with htmx (vendored in
``static/``, with its license) for the polled fragments; no Node build step and
nothing fetched from a CDN. See :mod:`.pages` for the routes and
:mod:`.session` for login and CSRF.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from ...masking import Masker
from .pages import UI_PREFIX, build_ui_router
from .session import SessionPolicy

__all__ = ["STATIC", "UI_PREFIX", "mount_ui"]

STATIC = Path(__file__).parent / "static"


def mount_ui(app: FastAPI, *, token: str | None, masker: Masker) -> None:
    """Add the dashboard's routes and static files to ``app``."""
    app.include_router(build_ui_router(SessionPolicy(token=token), masker))
    app.mount(f"{UI_PREFIX}/static", StaticFiles(directory=STATIC), name="ui-static")
