"""A second prefix defining ``tasks`` hooks: one clashes with fixtures_pkg.tasks."""

from __future__ import annotations

from typing import Any

from ddeutil.workflow.registry import tag


@tag("requests", alias="get-api")
def shadowed(url: str) -> dict[str, Any]:
    return {"lib": "extra", "url": url}


@tag("extra")
def only_here() -> dict[str, Any]:
    return {}
