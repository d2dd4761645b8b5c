"""Pipeline params: declaration, validation at load, coercion at run time.

A pipeline declares its params in YAML, in a short form (the type name only) or a
long form::

    params:
      author-run: str                 # short form: required, no default
      run-date:
        type: datetime
        default: "2024-01-01"         # validated (and coerced) when the pipeline loads
        desc: logical date
      mode:
        type: choice
        options: [full, delta]

Types: ``str``, ``int``, ``float``, ``bool``, ``date``, ``datetime``, ``choice``
(``options``), ``list``, ``map``. Keys of the long form: ``type``, ``default``,
``required``, ``desc`` (and ``options`` for ``choice``); any other key is a load
error.

Policy:
    * ``required`` defaults to true unless a default is given. A missing value (or
      an explicit ``None``) takes the default when there is one, whatever
      ``required`` says; without a default a required param is a problem and an
      optional one resolves to ``None`` (so ``${{ params.x | coalesce('y') }}``
      works). :meth:`ParamSet.required_without_default` lists the params a caller
      must pass, e.g. to tell whether a scheduled run (no params) can start.
    * Values are coerced from the strings a CLI passes (``-p key=value``): ``"5"``
      to ``5``; ``"true"/"false"/"1"/"0"/"yes"/"no"`` (any case) to a bool;
      ISO 8601 ``"2024-01-01"`` / ``"2024-01-01T10:00:00+07:00"`` to a datetime (a
      value without an offset stays naive, one with an offset keeps it; a trailing
      ``Z`` is UTC); ``date`` takes the date part of a date-time given at midnight;
      ``list`` / ``map`` parse JSON text. Parsing is version-independent (Python
      3.10 and later accept exactly the same strings).
    * Every problem of one :meth:`ParamSet.resolve` call is collected into one
      :class:`~ddeutil.workflow.errors.ParamError` naming each param.
    * Undeclared params: rejected with ``strict=True`` (the API), otherwise logged
      as a warning and passed through unchanged (``execute``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, ParamError, ParamProblem

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema
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
    "ParamSet",
    "StrParam",
    "parse_params",
    "yaml_params_schema",
]

logger = logging.getLogger(__name__)

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)


def _kind(value: Any) -> str:
    return type(value).__name__


def _parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time string the same way on every Python."""
    m = _ISO.fullmatch(text.strip())
    if m is None:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or date-time (e.g. 2024-01-01, 2024-01-01T10:30:00+07:00)"
        )
    year, month, day, hour, minute, second, frac, offset = m.groups()
    tz: timezone | None = None
    if offset is not None:
        if offset.upper() == "Z":
            tz = timezone.utc
        else:
            digits = offset[1:].replace(":", "")
            delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            if delta >= timedelta(hours=24):
                raise ValueError(f"{text!r} has an out-of-range UTC offset")
            tz = timezone(-delta if offset[0] == "-" else delta)
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}") from None


class Param(BaseModel):
    """Base of every param declaration (frozen, discriminated by ``type``).

    Subclasses implement :meth:`coerce`, which turns a given value into the
    param's Python type or raises :class:`ValueError` with a message that does
    not repeat the param name (the caller adds it).
    """

    # Each kind builds its validator on first use (building all nine at import
    # cost ~3 ms of every cold start, whatever params the pipeline declares).
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
                raise ValueError(f"default {self.default!r} is invalid: {exc}") from None
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
        raise ValueError(f"expected a string, got {_kind(value)} {value!r}")


class IntParam(Param):
    """Whole number: an int, a whole float, or its decimal text (``"5"``)."""

    type: Literal["int"] = "int"
    json_type: ClassVar[dict[str, Any]] = {"type": "integer"}

    def coerce(self, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number, got bool {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip(), 10)
            except ValueError:
                pass
        raise ValueError(f"expected a whole number, got {_kind(value)} {value!r}")


class FloatParam(Param):
    """Number: an int, a float or its text (``"2.5"``)."""

    type: Literal["float"] = "float"
    json_type: ClassVar[dict[str, Any]] = {"type": "number"}

    def coerce(self, value: Any) -> Any:
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                result = float(value.strip())
            except ValueError:
                pass
            else:
                if math.isfinite(result):
                    return result
        raise ValueError(f"expected a finite number, got {_kind(value)} {value!r}")


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
            f"expected a boolean (true/false, yes/no, 1/0), got {_kind(value)} {value!r}"
        )


class DateParam(Param):
    """Calendar date: a date, ``"2024-01-01"``, or a date-time exactly at midnight."""

    type: Literal["date"] = "date"
    json_type: ClassVar[dict[str, Any]] = {"type": "string", "format": "date"}

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            value = _parse_iso(value)
        if isinstance(value, datetime):
            if value.timetz().replace(tzinfo=None) != time(0):
                raise ValueError(
                    f"expected a date, got a date-time with a time of day: {value.isoformat()}"
                )
            return value.date()
        if isinstance(value, date):
            return value
        raise ValueError(f"expected a date (YYYY-MM-DD), got {_kind(value)} {value!r}")


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
            return _parse_iso(value)
        raise ValueError(f"expected an ISO 8601 date-time, got {_kind(value)} {value!r}")


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
        raise ValueError(f"{value!r} is not one of the options: {allowed}")

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
        raise ValueError(f"expected a list (or JSON array text), got {_kind(value)} {value!r}")


class MapParam(Param):
    """Mapping: a dict, or JSON text of an object (``'{"a": 1}'``)."""

    type: Literal["map"] = "map"
    json_type: ClassVar[dict[str, Any]] = {"type": "object"}

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str):
            value = _parse_json(value, "object")
        if isinstance(value, Mapping):
            return dict(value)
        raise ValueError(f"expected a mapping (or JSON object text), got {_kind(value)} {value!r}")


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"expected JSON {what} text, got {text!r} ({exc})") from None


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

_ALLOWED_TYPES = ", ".join(PARAM_TYPES)


def _describe_validation(exc: ValidationError, cls: type[Param]) -> tuple[str, str | None]:
    """Turn a pydantic error into (message, sub-key) in YAML terms."""
    messages: list[str] = []
    sub_key: str | None = None
    allowed_keys = ", ".join(k for k in cls.model_fields)
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"])
        if sub_key is None and loc:
            sub_key = loc
        if err["type"] == "extra_forbidden":
            messages.append(
                f"unknown key {loc!r} for a {cls.model_fields['type'].default} param; allowed keys: {allowed_keys}"
            )
        else:
            msg = err["msg"].removeprefix("Value error, ")
            messages.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(messages), sub_key


def parse_params(raw: Mapping[str, Any] | None) -> dict[str, Param]:
    """Build param declarations from the ``params`` mapping of a pipeline template.

    Args:
        raw: ``{name: "type"}`` (short form) or ``{name: {type: ..., ...}}`` (long
            form); ``None`` means no params.

    Returns:
        Declarations in the order written, defaults already coerced.

    Raises:
        ConfigError: with ``key`` = ``params.<name>`` (plus the inner key, e.g.
            ``params.run-date.default``) for an unknown type (the message lists
            the allowed types), an unknown key, a bad default or choice options.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"params must be a mapping of name to type, got {_kind(raw)}", key="params"
        )
    result: dict[str, Param] = {}
    for name, spec in raw.items():
        key = f"params.{name}"
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a param name must be a non-empty string, got {name!r}", key=key)
        if isinstance(spec, str):
            data: dict[str, Any] = {"type": spec}
        elif isinstance(spec, Mapping):
            data = dict(spec)
        else:
            raise ConfigError(
                f"expected a type name ({_ALLOWED_TYPES}) or a mapping with `type`, got {_kind(spec)} {spec!r}",
                key=key,
            )
        type_name = data.get("type")
        cls = PARAM_TYPES.get(type_name) if isinstance(type_name, str) else None
        if cls is None:
            what = (
                "missing param type" if type_name is None else f"unknown param type {type_name!r}"
            )
            raise ConfigError(f"{what}; allowed types: {_ALLOWED_TYPES}", key=key)
        try:
            result[name] = cls.model_validate(data)
        except ValidationError as exc:
            message, sub_key = _describe_validation(exc, cls)
            raise ConfigError(message, key=f"{key}.{sub_key}" if sub_key else key) from exc
    return result


_MISSING: Any = object()


@dataclass(frozen=True)
class ParamSet:
    """The declared params of one pipeline; resolves the values of one run.

    Usable as a pydantic field type: a raw ``params`` mapping (short or long form)
    validates through :func:`parse_params` (a :class:`ConfigError` propagates as
    is, with its key), and a ``ParamSet`` passes through.
    """

    params: Mapping[str, Param] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any] | None) -> ParamSet:
        """Parse a raw ``params`` mapping (see :func:`parse_params`)."""
        return cls(MappingProxyType(parse_params(raw)))

    def __len__(self) -> int:
        return len(self.params)

    def __contains__(self, name: object) -> bool:
        return name in self.params

    def __hash__(self) -> int:
        # Param defaults may be lists or dicts; the names are enough for a hash
        # consistent with equality, and keep frozen pydantic owners hashable.
        return hash(tuple(self.params))

    def resolve(
        self,
        values: Mapping[str, Any] | None,
        *,
        strict: bool = False,
        pipeline: str | None = None,
    ) -> dict[str, Any]:
        """Coerce ``values``, fill defaults, and return the params of one run.

        Args:
            values: given values (strings from the CLI, JSON from the API, Python
                values from ``execute``); ``None`` counts as not given.
            strict: reject undeclared names (the API) instead of warning.
            pipeline: name used in the error and the log line.

        Returns:
            Every declared param (in declaration order), then any undeclared
            ones passed through unchanged when not ``strict``.

        Raises:
            ParamError: listing every problem of this call at once.
        """
        given: Mapping[str, Any] = values or {}
        problems: list[ParamProblem] = []
        resolved: dict[str, Any] = {}
        for name, param in self.params.items():
            value = given.get(name, _MISSING)
            if value is _MISSING or value is None:
                if param.default is not None:
                    resolved[name] = param.default_value()
                elif param.required:
                    problems.append(ParamProblem(name, f"is required ({param.type})"))
                else:
                    resolved[name] = None
                continue
            try:
                resolved[name] = param.coerce(value)
            except ValueError as exc:
                problems.append(ParamProblem(name, str(exc)))
        for name, value in given.items():
            if name in self.params:
                continue
            if strict:
                declared = ", ".join(self.params) or "none"
                problems.append(
                    ParamProblem(str(name), f"is not a declared param; declared: {declared}")
                )
            else:
                logger.warning(
                    "param %r is not declared%s; passed through as given",
                    name,
                    f" by pipeline {pipeline!r}" if pipeline else "",
                    extra={"pipeline": pipeline},
                )
                resolved[name] = value
        if problems:
            raise ParamError(problems, pipeline=pipeline)
        return resolved

    def required_without_default(self) -> list[str]:
        """Names a caller must pass: required and without a default (declaration order)."""
        return [n for n, p in self.params.items() if p.required and p.default is None]

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of the params object a caller sends (types, required, defaults, enums).

        Undeclared properties are not allowed, matching ``resolve(strict=True)``.
        """
        return {
            "type": "object",
            "properties": {name: p.json_schema() for name, p in self.params.items()},
            "required": self.required_without_default(),
            "additionalProperties": False,
        }

    # -- pydantic integration -------------------------------------------------

    @classmethod
    def _validate(cls, value: Any) -> ParamSet:
        if isinstance(value, ParamSet):
            return value
        return cls.from_raw(value)

    def to_raw(self) -> dict[str, Any]:
        """The long-form mapping (JSON-able) this set was parsed from, defaults coerced."""
        return {
            name: p.model_dump(mode="json", exclude_none=True) for name, p in self.params.items()
        }

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda s: s.to_raw()),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return yaml_params_schema()


def yaml_params_schema() -> dict[str, Any]:
    """JSON Schema of the YAML ``params`` mapping (short and long forms), for editors."""
    long_forms = []
    for name, cls in PARAM_TYPES.items():
        props: dict[str, Any] = {
            "type": {"const": name},
            "desc": {"type": "string"},
            "required": {"type": "boolean"},
            "default": cls.json_type or {},
        }
        required = ["type"]
        if cls is ChoiceParam:
            props["options"] = {"type": "array", "minItems": 1}
            required.append("options")
        long_forms.append(
            {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            }
        )
    return {
        "type": "object",
        "additionalProperties": {"anyOf": [{"enum": list(PARAM_TYPES)}, *long_forms]},
    }
