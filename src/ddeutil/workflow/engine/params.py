"""Pipeline params: declaration and validation at load, the values of one run.

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
(``options``), ``list``, ``map``; each is a class of :mod:`.param_types`, which says
how values are coerced. Keys of the long form: ``type``, ``default``, ``required``,
``desc`` (and ``options`` for ``choice``); any other key is a load error. A pipeline
without params never loads :mod:`.param_types` (the kinds are re-exported here,
imported on first use).

Policy:
    * ``required`` defaults to true unless a default is given. A missing value (or
      an explicit ``None``) takes the default when there is one, whatever
      ``required`` says; without a default a required param is a problem and an
      optional one resolves to ``None`` (so ``${{ params.x | coalesce('y') }}``
      works). :meth:`ParamSet.required_without_default` lists the params a caller
      must pass, e.g. to tell whether a scheduled run (no params) can start.
    * Values are coerced from the strings a CLI passes (``-p key=value``), see
      :mod:`.param_types`; parsing is version-independent (Python 3.10 and later
      accept exactly the same strings).
    * A value holding a lone surrogate (JSON ``"\\ud800"``; not Unicode text, see
      :mod:`.unicode_text`) is a problem of its param, whatever its type.
    * Every problem of one :meth:`ParamSet.resolve` call is collected into one
      :class:`~ddeutil.workflow.errors.ParamError` naming each param.
    * Undeclared params: rejected with ``strict=True`` (the API), otherwise logged
      as a warning and passed through unchanged (``execute``).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import ConfigError, ParamError, ParamProblem, brief
from ..unicode_text import escape_lone_surrogates, find_lone_surrogate

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

    from .param_types import (
        PARAM_TYPES,
        AnyParam,
        BoolParam,
        ChoiceParam,
        DateParam,
        DatetimeParam,
        FloatParam,
        IntParam,
        ListParam,
        MapParam,
        Param,
        StrParam,
    )

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


def __getattr__(name: str) -> Any:
    """The param kinds, re-exported from :mod:`.param_types` and imported on first use."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".param_types", __package__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
            f"params must be a mapping of name to type, got {type(raw).__name__}", key="params"
        )
    if not raw:
        return {}
    from .param_types import PARAM_TYPES  # only pipelines with params load the kinds

    allowed_types = ", ".join(PARAM_TYPES)
    result: dict[str, Param] = {}
    for name, spec in raw.items():
        key = f"params.{name}"
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"a param name must be a non-empty string, got {brief(name)}", key=key
            )
        if isinstance(spec, str):
            data: dict[str, Any] = {"type": spec}
        elif isinstance(spec, Mapping):
            data = dict(spec)
        else:
            raise ConfigError(
                f"expected a type name ({allowed_types}) or a mapping with `type`, got {type(spec).__name__} {brief(spec)}",
                key=key,
            )
        type_name = data.get("type")
        cls = PARAM_TYPES.get(type_name) if isinstance(type_name, str) else None
        if cls is None:
            what = (
                "missing param type"
                if type_name is None
                else f"unknown param type {brief(type_name)}"
            )
            raise ConfigError(f"{what}; allowed types: {allowed_types}", key=key)
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
            surrogate = find_lone_surrogate(value)
            if surrogate is not None:
                problems.append(
                    ParamProblem(name, f"is not valid Unicode text: lone surrogate {surrogate}")
                )
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
                    ParamProblem(
                        escape_lone_surrogates(str(name)),
                        f"is not a declared param; declared: {declared}",
                    )
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
    from .param_types import PARAM_TYPES, ChoiceParam

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
