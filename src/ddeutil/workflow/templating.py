"""Public import path ``ddeutil.workflow.templating``: the built-in template filters.

``WORKFLOW_CORE_REGISTRY_FILTER`` names this module by default, and the registry
collects the ``@custom_filter`` functions it finds here; the template language
itself lives in :mod:`ddeutil.workflow.engine.templating`.
"""

from .engine.templating import (
    BUILTIN_FILTERS,
    filter_abs,
    filter_coalesce,
    filter_fmt,
    filter_int,
    filter_lower,
    filter_str,
    filter_upper,
)

__all__ = [
    "BUILTIN_FILTERS",
    "filter_abs",
    "filter_coalesce",
    "filter_fmt",
    "filter_int",
    "filter_lower",
    "filter_str",
    "filter_upper",
]
