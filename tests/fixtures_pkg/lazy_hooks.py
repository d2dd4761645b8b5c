"""Hooks used to check that group modules are imported lazily, once."""

from __future__ import annotations

from ddeutil.workflow.registry import tag


@tag("v1")
def ping() -> dict[str, str]:
    return {"pong": "yes"}
