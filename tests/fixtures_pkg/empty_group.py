"""A module without any @tag function."""

from __future__ import annotations


def helper() -> None:
    return None
