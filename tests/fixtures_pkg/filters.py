"""Custom filters."""

from __future__ import annotations

from ddeutil.workflow.registry import custom_filter


@custom_filter("shout")
def shout(value: object) -> str:
    return f"{value}!".upper()


@custom_filter("twice")
def twice(value: int) -> int:
    return value * 2


def not_a_filter(value: object) -> object:
    return value
