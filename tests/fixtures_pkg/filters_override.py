"""Overrides ``shout`` from ``fixtures_pkg.filters``."""

from __future__ import annotations

from ddeutil.workflow.registry import custom_filter


@custom_filter("shout")
def whisper(value: object) -> str:
    return f"{value}".lower()
