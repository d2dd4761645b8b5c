"""The exception tree of ddeutil-workflow, drawn once.

Every error the library raises on purpose derives from :class:`WorkflowError`, so
an application can catch the whole family with one ``except``. Each class carries
structured fields (file, template, key, stage id, ...) besides its message, so a
caller can report or route an error without parsing text::

    WorkflowError
    ├── ConfigError            a template or file on disk is wrong (file, template, key)
    │   ├── ConfLimitError     a file or template is over a conf limit (setting, limit)
    │   ├── SettingsError      an environment variable has a bad value (variable, value)
    │   ├── TemplateNotFound   no template has that name (name)
    │   └── ScheduleError      a cron expression, timezone or interval is invalid
    ├── ParamError             params of one call are wrong; lists every problem
    ├── TemplateError          a ``${{ }}`` / ``${VAR}`` expression cannot render (expr, stage)
    ├── ConditionError         an ``if`` expression is not allowed or cannot evaluate
    ├── StageError             a stage failed while running (stage, job)
    │   └── StageCancelled     a stage was stopped by cancellation or timeout
    ├── PipelineError          a pipeline cannot run as asked (pipeline)
    │   └── RerunError         a run cannot be rerun as asked; lists every problem
    └── StoreError             the run store cannot be used (url)
        └── StoreLockedError   another daemon holds the store's scheduler lock

"Template" alone means a named YAML template on disk; ``${{ }}`` expressions are
"template expressions" and fail with :class:`TemplateError`.

Messages stay small whatever the input: a :class:`ConfigError` keeps at most
:data:`MAX_MESSAGE_CHARS` of its message (and of its key), and values quoted in
messages go through :func:`brief`, which never renders more than a few levels and
items of a value (a conf value may be huge, or shared many times over by aliases).
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_MESSAGE_CHARS",
    "ConditionError",
    "ConfLimitError",
    "ConfigError",
    "ParamError",
    "ParamProblem",
    "PipelineError",
    "RerunError",
    "ScheduleError",
    "SettingsError",
    "StageCancelled",
    "StageError",
    "StoreError",
    "StoreLockedError",
    "TemplateError",
    "TemplateNotFound",
    "WorkflowError",
    "brief",
]

MAX_MESSAGE_CHARS = 2000
"""A ConfigError's message (and key) is cut to this many characters."""

_BRIEF = reprlib.Repr()
_BRIEF.maxlevel = 3
_BRIEF.maxlist = _BRIEF.maxtuple = _BRIEF.maxset = _BRIEF.maxdict = 6
_BRIEF.maxstring = _BRIEF.maxlong = 80
_BRIEF.maxother = 120


def brief(value: Any) -> str:
    """A short ``repr`` of ``value`` for a message, built without rendering it whole.

    Containers show their first items and levels only, long strings and numbers are
    cut in the middle; the cost is bounded whatever the size of ``value``.
    """
    return _BRIEF.repr(value)


def _cap(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    cut = len(text) - MAX_MESSAGE_CHARS
    return f"{text[:MAX_MESSAGE_CHARS]}... ({cut} more characters)"


class WorkflowError(Exception):
    """Root of every error raised by ddeutil-workflow on purpose."""


class ConfigError(WorkflowError):
    """A template or file on disk is invalid.

    Args:
        message: What is wrong, in words a data engineer can act on.
        file: The YAML file, as given to the loader (relative paths stay relative).
        template: The top-level template name inside ``file``.
        key: A dotted key path inside the template, e.g. ``jobs.load.stages[2].bash``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        template: str | None = None,
        key: str | None = None,
    ) -> None:
        message = _cap(message)
        self.message = message
        self.file = file
        self.template = template
        self.key = key if key is None else _cap(key)
        super().__init__(message)

    def located(
        self,
        *,
        file: str | None = None,
        template: str | None = None,
        key_prefix: str | None = None,
    ) -> ConfigError:
        """Return a copy of this error with missing location fields filled in.

        The copy keeps the original class, so callers can add the file and
        template name an inner validator did not know about.
        """
        clone = self.__class__.__new__(self.__class__)
        clone.__dict__.update(self.__dict__)
        clone.args = self.args
        if clone.file is None:
            clone.file = file
        if clone.template is None:
            clone.template = template
        if key_prefix:
            clone.key = _cap(f"{key_prefix}.{clone.key}" if clone.key else key_prefix)
        return clone

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.template:
            where.append(f"template {self.template!r}")
        if self.key:
            where.append(f"key {self.key!r}")
        return f"{': '.join(where)}: {self.message}" if where else self.message


class ConfLimitError(ConfigError):
    """A conf file or template is over one of the limits of reading conf.

    Args:
        message: What is over which limit.
        setting: The ``WORKFLOW_*`` variable that sets the limit.
        limit: The limit in force.
    """

    def __init__(
        self,
        message: str,
        *,
        setting: str,
        limit: int,
        file: str | None = None,
        template: str | None = None,
        key: str | None = None,
    ) -> None:
        self.setting = setting
        self.limit = limit
        super().__init__(message, file=file, template=template, key=key)


class SettingsError(ConfigError):
    """An environment variable holds a value the settings cannot use."""

    def __init__(self, variable: str, value: str, reason: str) -> None:
        self.variable = variable
        self.value = value
        super().__init__(f"{variable}={value!r}: {reason}")


class TemplateNotFound(ConfigError):  # noqa: N818 - reads better than ...Error
    """No template with this name exists in the conf folder."""

    def __init__(self, name: str, *, kind: str | None = None) -> None:
        self.name = name
        self.kind = kind
        what = f"{kind} template" if kind else "template"
        super().__init__(f"no {what} named {name!r} in the conf folder", template=name)


class ScheduleError(ConfigError):
    """A cron expression, timezone or interval shorthand is invalid."""


@dataclass(frozen=True)
class ParamProblem:
    """One problem with one param of a call."""

    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


class ParamError(WorkflowError):
    """The params given to a run are wrong. ``problems`` lists all of them."""

    def __init__(self, problems: Sequence[ParamProblem], *, pipeline: str | None = None):
        self.problems = tuple(problems)
        self.pipeline = pipeline
        head = f"invalid params for pipeline {pipeline!r}" if pipeline else "invalid params"
        super().__init__(f"{head}: " + "; ".join(str(p) for p in self.problems))


class TemplateError(WorkflowError):
    """A template expression (``${{ ... }}`` or ``${VAR}``) cannot be rendered."""

    def __init__(self, message: str, *, expr: str | None = None, stage: str | None = None):
        self.message = message
        self.expr = expr
        self.stage = stage
        super().__init__(message)

    def __str__(self) -> str:
        where = f"stage {self.stage!r}: " if self.stage else ""
        expr = f" in {self.expr!r}" if self.expr else ""
        return f"{where}{self.message}{expr}"


class ConditionError(WorkflowError):
    """An ``if`` expression uses something the restricted evaluator forbids."""

    def __init__(self, message: str, *, expr: str | None = None) -> None:
        self.expr = expr
        super().__init__(f"{message} in condition {expr!r}" if expr else message)


class StageError(WorkflowError):
    """A stage failed while running."""

    def __init__(self, message: str, *, stage: str | None = None, job: str | None = None):
        self.message = message
        self.stage = stage
        self.job = job
        super().__init__(message)


class StageCancelled(StageError):  # noqa: N818 - a state, not a failure
    """A stage was stopped by cancellation or by its timeout."""


class PipelineError(WorkflowError):
    """A pipeline cannot run as asked (e.g. a trigger loop)."""

    def __init__(self, message: str, *, pipeline: str | None = None) -> None:
        self.pipeline = pipeline
        super().__init__(message)


class RerunError(PipelineError):
    """A stored run cannot be rerun as asked. ``problems`` lists all of them.

    ``unsafe`` tells the two kinds apart: ``True`` when the template changed since
    the run in a way that makes reusing its outputs unsafe (a caller may rerun
    anyway when asked to force it); ``False`` when the request itself cannot be
    met (an unknown job to rerun from, nothing to rerun), which no force changes.
    """

    def __init__(
        self,
        problems: Sequence[str],
        *,
        run_id: str,
        pipeline: str | None = None,
        unsafe: bool = False,
    ) -> None:
        self.problems = tuple(problems)
        self.run_id = run_id
        self.unsafe = unsafe
        if unsafe:
            head = f"cannot reuse the outputs of run {run_id}: the template changed"
            tail = "; force a rerun to run anyway"
        else:
            head, tail = f"cannot rerun run {run_id}", ""
        super().__init__(f"{head}: " + "; ".join(self.problems) + tail, pipeline=pipeline)


class StoreError(WorkflowError):
    """The run store cannot be opened or written."""


class StoreLockedError(StoreError):
    """Another scheduler daemon holds the run store's lock."""
