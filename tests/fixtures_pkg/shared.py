"""A hook defined in one module and re-exported by a group module."""

from __future__ import annotations

from typing import Any

from ddeutil.workflow.registry import tag


@tag("local")
def shared_hook() -> dict[str, Any]:
    return {"shared": True}
