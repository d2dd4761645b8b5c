"""Public import path ``ddeutil.workflow.pipeline`` (also a YAML ``type`` name).

The pipeline lives in :mod:`ddeutil.workflow.engine.pipeline`; this module re-exports it.
"""

from .engine.pipeline import Pipeline

__all__ = ["Pipeline"]
