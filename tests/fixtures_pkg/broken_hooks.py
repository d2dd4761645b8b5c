"""A group module whose own import fails (a missing dependency)."""

from __future__ import annotations

import fixtures_pkg_missing_dependency  # type: ignore[import-not-found]  # noqa: F401
