"""The YAML format seen from outside: its validation errors, and the schedule schemas.

:func:`config_error` turns a pydantic ``ValidationError`` into the
:class:`~ddeutil.workflow.errors.ConfigError` users see, keyed by the YAML path
(``jobs.load.stages[2].bsh``) and worded in YAML terms (``unknown key 'bsh'``).
A limit crossed inside a validator becomes a
:class:`~ddeutil.workflow.errors.ConfLimitError`. Models mixing in
:class:`LocatesErrors` turn any other exception raised while validating them (a
``TypeError`` from an odd value, a bug) into an error at their own key, so one
bad value never escapes as an unlocated crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ModelWrapValidatorHandler, ValidationError, model_validator

from ..errors import ConfigError, ConfLimitError, brief
from ..limits import LimitExceeded

__all__ = [
    "ON_SCHEMA",
    "SCHEDULE_SCHEMA",
    "LocatesErrors",
    "config_error",
    "yaml_key",
]

_CRON_TEXT = "^[\\t -~]*$"
"""Cron text is printable ASCII, spaces and tabs (what the parser accepts)."""

SCHEDULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "a cron schedule read in one time zone",
    "properties": {
        "cron": {
            "type": "string",
            "pattern": _CRON_TEXT,
            "maxLength": 1000,
            "description": "5-field cron expression or @hourly/@daily/... (ASCII only); "
            "day-of-month L, L-n, nW, LW; day-of-week 5L, MON#2; H, H(a-b), H/n: a value "
            "of its own per pipeline",
        },
        "cronjob": {
            "type": "string",
            "pattern": _CRON_TEXT,
            "maxLength": 1000,
            "description": "same as cron (give only one)",
        },
        "timezone": {"type": "string", "description": "IANA zone; default WORKFLOW_CORE_TIMEZONE"},
        "interval": {"enum": ["daily", "weekly", "monthly"], "description": "shorthand for cron"},
        "time": {"type": "string", "pattern": "^[0-9]{1,2}:[0-9]{2}$", "description": "HH:MM"},
        "day": {"type": ["string", "integer"], "description": "weekday (weekly) or day (monthly)"},
        "jitter": {
            "type": ["string", "integer"],
            "pattern": "^([0-9]+|[0-9]+h([0-9]+m)?([0-9]+s)?|[0-9]+m([0-9]+s)?|[0-9]+s)$",
            "minimum": 0,
            "maximum": 3600,
            "description": "start each release up to this long after its fire time "
            "(30s, 5m, 1h, 1m30s or seconds; at most 1h), the same delay every time",
        },
    },
    "additionalProperties": False,
}
"""An inline ``on`` mapping (and, with ``type``, an On template)."""

_ON_ENTRY: dict[str, Any] = {
    "anyOf": [{"type": "string", "description": "name of an On template"}, SCHEDULE_SCHEMA]
}
ON_SCHEMA: dict[str, Any] = {"anyOf": [_ON_ENTRY, {"type": "array", "items": _ON_ENTRY}]}
"""A pipeline's ``on``: a name, an inline mapping, or a list of those.

The JSON Schema of a whole conf file is :func:`~.conf_schema.yaml_schema`."""

_STAGE_TAGS = frozenset({"empty", "python", "bash", "hook", "trigger"})
_MORE_SHOWN = 3


def _is_tag(loc: Sequence[str | int], i: int) -> bool:
    """True when ``loc[i]`` is the kind tag pydantic puts after ``stages[<n>]``."""
    return (
        i >= 2 and loc[i] in _STAGE_TAGS and isinstance(loc[i - 1], int) and loc[i - 2] == "stages"
    )


def yaml_key(loc: Sequence[str | int]) -> str:
    """A pydantic error location as a YAML key path: ``jobs.load.stages[2].bash``.

    Union tags (the stage kind) and validator wrappers are left out.
    """
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            if parts:
                parts[-1] += f"[{part}]"
            else:
                parts.append(f"[{part}]")
        elif not _is_tag(loc, i) and not ("[" in part and part.endswith("]")):
            parts.append(part)
    return ".".join(parts)


def _stage_keys(loc: Sequence[str | int]) -> str | None:
    """``allowed keys: ...`` when ``loc`` points into a stage of a known kind."""
    from .stages import STAGE_CLASSES

    for i, part in enumerate(loc):
        if _is_tag(loc, i):
            fields = STAGE_CLASSES[str(part)].model_fields
            names = [f.alias or n for n, f in fields.items()]
            return f"a{'n' if part == 'empty' else ''} {part} stage takes: {', '.join(names)}"
    return None


def _message(error: Any) -> str:
    loc = error["loc"]
    last = next((p for p in reversed(loc) if isinstance(p, str)), "")
    kind = error["type"]
    if kind == "extra_forbidden":
        hint = _stage_keys(loc)
        return f"unknown key {last!r}" + (f"; {hint}" if hint else "")
    if kind == "missing":
        return f"missing required key {last!r}"
    message: str = error["msg"]
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


class LocatesErrors:
    """Mixin for conf models: any exception while validating one is located at its key.

    Pydantic locates only ``ValueError`` and ``AssertionError``; anything else a
    validator or ``model_post_init`` raises (``TypeError`` on an unhashable value,
    ``OverflowError``, a bug) would escape without a key. This wrap validator turns
    it into a ``ValueError`` naming the exception, so the error carries the key path
    of the model that failed.
    """

    @model_validator(mode="wrap")
    @classmethod
    def _locate_unexpected(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        try:
            return handler(data)
        except (ValueError, AssertionError):
            raise
        except Exception as exc:
            raise ValueError(f"cannot be read ({type(exc).__name__}: {brief(str(exc))})") from exc


def config_error(exc: ValidationError) -> ConfigError:
    """The :class:`ConfigError` for ``exc``: the first problem's key, every problem listed.

    A :class:`~ddeutil.workflow.limits.LimitExceeded` first problem gives a
    :class:`ConfLimitError` naming its setting.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    message = _message(first)
    rest = [f"{yaml_key(e['loc'])}: {_message(e)}" for e in errors[1 : 1 + _MORE_SHOWN]]
    if len(errors) > 1:
        more = len(errors) - 1 - len(rest)
        message += f" (also: {'; '.join(rest)}{f'; and {more} more' if more else ''})"
    key = yaml_key(first["loc"]) or None
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, LimitExceeded):
        return ConfLimitError(message, setting=cause.setting, limit=cause.limit, key=key)
    return ConfigError(message, key=key)
