"""ddeutil-workflow: YAML-driven pipelines and the scheduler daemon that runs them."""

from .__about__ import __version__
from .clock import Clock, FakeClock, SystemClock
from .errors import (
    ConditionError,
    ConfigError,
    JobError,
    ParamError,
    PipelineError,
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
from .result import ErrorRecord, Result, Status
from .settings import Settings

__all__ = [
    "Clock",
    "ConditionError",
    "ConfigError",
    "ErrorRecord",
    "FakeClock",
    "JobError",
    "ParamError",
    "PipelineError",
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
]
