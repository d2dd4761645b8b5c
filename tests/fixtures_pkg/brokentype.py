"""A module of template classes that fails while importing."""

from __future__ import annotations

raise RuntimeError("boom while importing brokentype")
