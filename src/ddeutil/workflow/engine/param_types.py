"""The param kinds: one class per YAML ``type``, each coercing the values of a run.

Kinds: ``str``, ``int``, ``float``, ``bool``, ``date``, ``datetime``, ``choice``
(``options``), ``list``, ``map`` (:data:`PARAM_TYPES`). Declaring them, resolving
the values of one run and the YAML schema live in :mod:`.params`, which loads this
module only for a pipeline that declares params.

Coercion (:meth:`Param.coerce`) accepts the strings a CLI passes (``-p key=value``):
``"5"`` to ``5``; ``"true"/"false"/"1"/"0"/"yes"/"no"`` (any case) to a bool;
ISO 8601 ``"2024-01-01"`` / ``"2024-01-01T10:00:00+07:00"`` to a datetime (a value
without an offset stays naive, one with an offset keeps it; a trailing ``Z`` is UTC,
see :mod:`.dates`); ``date`` takes the date part of a date-time given at midnight;
``list`` / ``map`` parse JSON text. A value that cannot be coerced is a
:class:`ValueError` whose message does not name the param (the caller adds it).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import brief
from .dates import parse_iso
from .schema import LocatesErrors

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "PARAM_TYPES",
    "AnyParam",
    "BoolParam",
    "ChoiceParam",
    "DateParam",
    "DatetimeParam",
    "FloatParam",
    "IntParam",
    "ListParam",
    "MapParam",
    "Param",
    "StrParam",
]

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


def _kind(value: Any) -> str:
    return type(value).__name__


class Param(LocatesErrors, BaseModel):
    """Base of every param declaration (frozen, discriminated by ``type``).

    Subclasses implement :meth:`coerce`, which turns a given value into the
    param's Python type or raises :class:`ValueError` with a message that does
    not repeat the param name (the caller adds it).
    """

    # Each kind builds its validator on first use (building all nine at import
    # costs ~3 ms, whatever params the pipeline declares).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    type: str
    desc: str | None = None
    default: Any = None
    required: bool = True

    json_type: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="before")
    @classmethod
    def _default_makes_optional(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "required" not in data:
            data = dict(data)
            data["required"] = data.get("default") is None
        return data

    @model_validator(mode="after")
    def _validate_default(self) -> Self:
        if self.default is not None:
            try:
                coerced = self.coerce(self.default)
            except ValueError as exc:
                raise ValueError(f"default {brief(self.default)} is invalid: {exc}") from None
            # Frozen model: store the coerced default once, at load.
            object.__setattr__(self, "default", coerced)
        return self

    def coerce(self, value: Any) -> Any:  # pragma: no cover - every subclass overrides
        """Return ``value`` as this param's type; raise ValueError when it cannot be."""
        raise NotImplementedError

    def default_value(self) -> Any:
        """The default for one run; list and map defaults are copied per run."""
        if isinstance(self.default, (list, dict)):
            return copy.deepcopy(self.default)
        return self.default

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of a value of this param (for the API and its docs)."""
        schema: dict[str, Any] = dict(self.json_type)
        if self.desc:
            schema["description"] = self.desc
        if self.default is not None:
            schema["default"] = _jsonable(self.default)
        return schema


def _jsonable(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


class StrParam(Param):
    """Text. Numbers are accepted and converted with ``str()``; bools and containers are not."""

    type: Literal["str"] = "str"
    json_type: ClassVar[dict[str, Any]] = {"type": "string"}

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
            return str(value)
        raise ValueError(f"expected a string, got {_kind(value)} {brief(value)}")


class IntParam(Param):
    """Whole number: an int, a whole float, or its decimal text (``"5"``)."""

    type: Literal["int"] = "int"
    json_type: ClassVar[dict[str, Any]] = {"type": "integer"}

    def coerce(self, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got bool {brief(value)}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip(), 10)
            except ValueError:
                pass
        raise ValueError(f"expected a whole number, got {_kind(value)} {brief(value)}")


class FloatParam(Param):
    """Number: an int, a float or its text (``"2.5"``)."""

    type: Literal["float"] = "float"
    json_type: ClassVar[dict[str, Any]] = {"type": "number"}

    def coerce(self, value: Any) -> Any:
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an int beyond the float range
                raise ValueError(
                    f"expected a number within the float range, got {_kind(value)} {brief(value)}"
                ) from None
        if isinstance(value, str):
            try:
                result = float(value.strip())
            except ValueError:
                pass
            else:
                if math.isfinite(result):
                    return result
        raise ValueError(f"expected a finite number, got {_kind(value)} {brief(value)}")


class BoolParam(Param):
    """Boolean: a bool, ``0``/``1``, or ``true/false/yes/no/on/off/1/0`` (any case)."""

    type: Literal["bool"] = "bool"
    json_type: ClassVar[dict[str, Any]] = {"type": "boolean"}

    def coerce(self, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
        raise ValueError(
            f"expected a boolean (true/false, yes/no, 1/0), got {_kind(value)} {brief(value)}"
        )


class DateParam(Param):
    """Calendar date: a date, ``"2024-01-01"``, or a date-time exactly at midnight."""

    type: Literal["date"] = "date"
    json_type: ClassVar[dict[str, Any]] = {"type": "string", "format": "date"}

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            value = parse_iso(value)
        if isinstance(value, datetime):
            if value.timetz().replace(tzinfo=None) != time(0):
                raise ValueError(
                    f"expected a date, got a date-time with a time of day: {value.isoformat()}"
                )
            return value.date()
        if isinstance(value, date):
            return value
        raise ValueError(f"expected a date (YYYY-MM-DD), got {_kind(value)} {brief(value)}")


class DatetimeParam(Param):
    """Date-time: a datetime, a date (midnight) or ISO 8601 text; naive stays naive."""

    type: Literal["datetime"] = "datetime"
    json_type: ClassVar[dict[str, Any]] = {"type": "string", "format": "date-time"}

    def coerce(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        if isinstance(value, str):
            return parse_iso(value)
        raise ValueError(f"expected an ISO 8601 date-time, got {_kind(value)} {brief(value)}")


class ChoiceParam(Param):
    """One of ``options``. Text matching an option's text is accepted (``"2"`` for ``2``)."""

    type: Literal["choice"] = "choice"
    options: tuple[str | int | float | bool, ...]

    @field_validator("options")
    @classmethod
    def _options_not_empty(cls, options: tuple[Any, ...]) -> tuple[Any, ...]:
        if not options:
            raise ValueError("a choice param needs at least one option")
        return options

    def coerce(self, value: Any) -> Any:
        for option in self.options:
            if value == option and type(value) is type(option):
                return option
        if isinstance(value, (str, int, float)):
            text = str(value).strip()
            for option in self.options:
                if str(option) == text:
                    return option
        allowed = ", ".join(str(o) for o in self.options)
        raise ValueError(f"{brief(value)} is not one of the options: {allowed}")

    def json_schema(self) -> dict[str, Any]:
        schema = super().json_schema()
        schema["enum"] = list(self.options)
        return schema


class ListParam(Param):
    """List: a list/tuple, or JSON text of an array (``'["a", "b"]'``)."""

    type: Literal["list"] = "list"
    json_type: ClassVar[dict[str, Any]] = {"type": "array"}

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            value = _parse_json(value, "array")
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ValueError(f"expected a list (or JSON array text), got {_kind(value)} {brief(value)}")


class MapParam(Param):
    """Mapping: a dict, or JSON text of an object (``'{"a": 1}'``)."""

    type: Literal["map"] = "map"
    json_type: ClassVar[dict[str, Any]] = {"type": "object"}

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            value = _parse_json(value, "object")
        if isinstance(value, Mapping):
            return dict(value)
        raise ValueError(
            f"expected a mapping (or JSON object text), got {_kind(value)} {brief(value)}"
        )


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"expected JSON {what} text, got {brief(text)} ({exc})") from None


AnyParam = Annotated[
    StrParam
    | IntParam
    | FloatParam
    | BoolParam
    | DateParam
    | DatetimeParam
    | ChoiceParam
    | ListParam
    | MapParam,
    Field(discriminator="type"),
]
"""Any concrete param, for pydantic fields (discriminated by ``type``)."""

PARAM_TYPES: Mapping[str, type[Param]] = MappingProxyType(
    {
        "str": StrParam,
        "int": IntParam,
        "float": FloatParam,
        "bool": BoolParam,
        "date": DateParam,
        "datetime": DatetimeParam,
        "choice": ChoiceParam,
        "list": ListParam,
        "map": MapParam,
    }
)
"""Param type name (as written in YAML) to its class."""
