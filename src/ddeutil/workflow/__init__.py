"""ddeutil-workflow: YAML-driven pipelines and the scheduler daemon that runs them.

The names below are the public API. They are imported lazily on first use, so
``import ddeutil.workflow`` (and every ``workflow`` CLI verb) stays cheap::

    from ddeutil.workflow import Pipeline

    result = Pipeline.from_loader("ingest-sales-daily").execute({"mode": "full"})
    assert result.status is Status.SUCCESS
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .__about__ import __version__

if TYPE_CHECKING:
    from .cancellation import CancelToken
    from .clock import Clock, FakeClock, SystemClock
    from .engine.job import Job
    from .engine.pipeline import Pipeline
    from .errors import (
        ConditionError,
        ConfigError,
        ConfLimitError,
        ParamError,
        ParamProblem,
        PipelineError,
        RerunError,
        ScheduleError,
        SettingsError,
        StageCancelled,
        StageError,
        StoreError,
        StoreLockedError,
        TemplateError,
        TemplateNotFound,
        WorkflowError,
    )
    from .loader import Loader
    from .masking import Masker
    from .registry import custom_filter, tag
    from .result import ErrorRecord, Result, Status
    from .schedules.on import On
    from .settings import Settings

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "CancelToken": "cancellation",
    "Clock": "clock",
    "FakeClock": "clock",
    "SystemClock": "clock",
    "ConditionError": "errors",
    "ConfigError": "errors",
    "ConfLimitError": "errors",
    "ParamError": "errors",
    "ParamProblem": "errors",
    "PipelineError": "errors",
    "RerunError": "errors",
    "ScheduleError": "errors",
    "SettingsError": "errors",
    "StageCancelled": "errors",
    "StageError": "errors",
    "StoreError": "errors",
    "StoreLockedError": "errors",
    "TemplateError": "errors",
    "TemplateNotFound": "errors",
    "WorkflowError": "errors",
    "Job": "engine.job",
    "Loader": "loader",
    "Masker": "masking",
    "On": "schedules.on",
    "Pipeline": "engine.pipeline",
    "custom_filter": "registry",
    "tag": "registry",
    "ErrorRecord": "result",
    "Result": "result",
    "Status": "result",
    "Settings": "settings",
}

__all__ = [
    "CancelToken",
    "Clock",
    "ConditionError",
    "ConfLimitError",
    "ConfigError",
    "ErrorRecord",
    "FakeClock",
    "Job",
    "Loader",
    "Masker",
    "On",
    "ParamError",
    "ParamProblem",
    "Pipeline",
    "PipelineError",
    "RerunError",
    "Result",
    "ScheduleError",
    "Settings",
    "SettingsError",
    "StageCancelled",
    "StageError",
    "Status",
    "StoreError",
    "StoreLockedError",
    "SystemClock",
    "TemplateError",
    "TemplateNotFound",
    "WorkflowError",
    "__version__",
    "custom_filter",
    "tag",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
