"""Template classes that are neither schedules nor pipelines, and broken ones."""

from __future__ import annotations

from typing import Any

from ddeutil.workflow.errors import ConditionError


class Thing:
    """A valid template of another kind."""

    def __init__(self, data: Any) -> None:
        self.data = data

    @classmethod
    def from_template(cls, template: Any, *, loader: Any, settings: Any) -> Thing:
        return cls(template.data)


class NotATemplate:
    """A class without from_template."""


class Buggy:
    """from_template fails with a plain exception (a bug in a template class)."""

    @classmethod
    def from_template(cls, template: Any, *, loader: Any, settings: Any) -> Buggy:
        raise ZeroDivisionError("division by zero")


class Conditional:
    """from_template raises a library error that is not a ConfigError."""

    @classmethod
    def from_template(cls, template: Any, *, loader: Any, settings: Any) -> Conditional:
        raise ConditionError("calls are not allowed", expr="os.system('x')")
