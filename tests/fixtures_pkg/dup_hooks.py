"""Two different functions claim the same hook name and tag."""

from __future__ import annotations

from ddeutil.workflow.registry import tag


@tag("v1", alias="same")
def first() -> None:
    return None


@tag("v1", alias="same")
def second() -> None:
    return None
