"""A second ``on.On`` under another prefix (for prefix order)."""

from __future__ import annotations


class On:
    """Shadows fixtures_pkg.on.On when this prefix comes first."""
