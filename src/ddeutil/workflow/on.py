"""Public import path ``ddeutil.workflow.on`` (also a YAML ``type`` name).

Schedules live in :mod:`ddeutil.workflow.schedules.on`; this module re-exports them.
"""

from .schedules.on import On

__all__ = ["On"]
