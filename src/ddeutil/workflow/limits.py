"""How much conf one process agrees to read: the loader's and the matrix's limits.

A conf folder is input from people (and from whatever wrote into it), so reading
it is bounded before anything is built from it:

* **bytes** (``WORKFLOW_CORE_CONF_MAX_BYTES``): a larger YAML file is not parsed;
* **nodes** (``WORKFLOW_CORE_CONF_MAX_NODES``): the YAML nodes one file expands
  to, every alias counted at the size of what it points to - so a "billion
  laughs" file of a few hundred bytes is refused in milliseconds, in constant
  memory, before any value is built;
* **depth** (``WORKFLOW_CORE_CONF_MAX_DEPTH``): how deep mappings and lists may
  nest (aliases included);
* **matrix combinations** (``WORKFLOW_CORE_MATRIX_MAX_COMBINATIONS``): a job's
  cross product is counted arithmetically before it is expanded, and the final
  list (``include`` added) is bounded as well;
* **include / exclude entries** (``WORKFLOW_CORE_MATRIX_MAX_INCLUDE``) of one job.

:class:`ConfLimits` carries them; :attr:`Settings.conf_limits
<ddeutil.workflow.settings.Settings.conf_limits>` builds it from the settings. The
loader takes it as an argument; the pipeline builder passes it to the job models
in the pydantic validation context (:func:`limits_of` reads it back). A limit that is exceeded is a
:class:`~ddeutil.workflow.errors.ConfLimitError` naming the file, template, key
and the setting to raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONTEXT_KEY",
    "DEFAULT_LIMITS",
    "MAX_DEPTH_CEILING",
    "ConfLimits",
    "LimitExceeded",
    "limits_of",
]

MAX_DEPTH_CEILING = 100
"""The nesting depth setting cannot go above this (Python recursion builds values)."""


@dataclass(frozen=True)
class ConfLimits:
    """Upper bounds on what reading the conf folder may cost.

    Attributes:
        max_bytes: Largest YAML file read, in bytes.
        max_nodes: Most YAML nodes one file expands to (aliases at their expanded
            size; every scalar, list and mapping is one node).
        max_depth: Deepest nesting of lists and mappings in one file.
        max_combinations: Most matrix combinations of one job (the cross product
            before ``exclude``, and the final list).
        max_include: Most ``include`` entries, and most ``exclude`` entries, of
            one job's strategy.
    """

    max_bytes: int = 4 * 1024 * 1024
    max_nodes: int = 200_000
    max_depth: int = 64
    max_combinations: int = 4096
    max_include: int = 1024


DEFAULT_LIMITS = ConfLimits()
"""The limits when no settings are given (the defaults of the settings)."""


class LimitExceeded(ValueError):  # noqa: N818 - raised inside pydantic validators
    """A limit crossed inside a pydantic validator (becomes a ConfLimitError).

    A ``ValueError`` so that pydantic locates it at the key being validated;
    :func:`ddeutil.workflow.engine.schema.config_error` turns it into a
    :class:`~ddeutil.workflow.errors.ConfLimitError`.
    """

    def __init__(self, message: str, *, setting: str, limit: int) -> None:
        self.setting = setting
        self.limit = limit
        super().__init__(message)


CONTEXT_KEY = "conf_limits"
"""Key of the limits in a pydantic validation context (``model_validate(context=)``)."""


def limits_of(context: Any) -> ConfLimits:
    """The limits a validation context carries (the defaults when it carries none)."""
    if isinstance(context, dict):
        found = context.get(CONTEXT_KEY)
        if isinstance(found, ConfLimits):
            return found
    return DEFAULT_LIMITS
