"""Hooks of the ``tasks`` group."""

from __future__ import annotations

from typing import Any

from ddeutil.workflow.registry import tag

from .shared import shared_hook

__all__ = ["get_api_httpx", "get_api_requests", "load_parquet", "multi", "shared_hook", "untagged"]


@tag("requests", alias="get-api")
def get_api_requests(url: str) -> dict[str, Any]:
    return {"lib": "requests", "url": url}


@tag("httpx", alias="get-api")
def get_api_httpx(url: str) -> dict[str, Any]:
    return {"lib": "httpx", "url": url}


@tag("polars")
def load_parquet(path: str) -> dict[str, Any]:
    return {"path": path}


@tag("v1")
@tag("v2", alias="multi-tagged")
def multi() -> dict[str, Any]:
    return {}


def untagged() -> dict[str, Any]:
    return {}


alias_of_load_parquet = load_parquet
