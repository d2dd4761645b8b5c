"""Two functions claim one filter name."""

from __future__ import annotations

from ddeutil.workflow.registry import custom_filter


@custom_filter("same")
def one(value: object) -> object:
    return value


@custom_filter("same")
def two(value: object) -> object:
    return value
