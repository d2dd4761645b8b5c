"""Importable test helpers: fake template classes, hooks and filters.

Tests put ``tests/`` on ``sys.path`` (``monkeypatch.syspath_prepend``) and use
``fixtures_pkg`` as a registry prefix. ``Pipeline`` is exported here so the bare
spelling ``type: Pipeline`` resolves through the package; ``On`` is not, so
``type: On`` exercises the lower-cased module fallback (``fixtures_pkg.on.On``).
"""

from .pipeline import Pipeline

__all__ = ["Pipeline"]
