"""The hook stage: call a function registered with ``@tag``.

```yaml
- name: "Extract"
  id: extract
  uses: tasks/postgres-to-delta@polars     # <group>/<name>@<tag>
  with:
    source: {conn: pg, table: "${{ params.table }}"}
    sink: {path: /data/delta}
```

Resolution: a ``uses`` without templates is looked up in the hook registry when
the pipeline loads; an unknown group, name or tag, a ``with`` missing a required
argument, or a ``with`` key the function does not take, is a load error naming
it. A templated ``uses`` is looked up (and checked the same way) for each matrix
combination when it runs.

Arguments: ``with`` is rendered and passed by keyword. A parameter spelled with a
leading underscore may be given without it (``def f(_exec: str)`` takes
``exec:``), so hooks can use names that are Python keywords or builtins. A
parameter named ``cancel_token`` receives the stage's
:class:`~ddeutil.workflow.cancellation.CancelToken`.

Outputs: the dict the function returns; any other return value fails the stage
naming its type, and an exception fails it with its type and message.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from ...cancellation import is_process_stop
from ...errors import ConfigError
from ...registry import Hook, HookRegistry, parse_uses
from ..context import RunContext
from .base import BaseStage, StageCall, StagePlan, needs_render, stage_error

__all__ = ["BoundHook", "HookSignature", "HookStage", "hook_registry"]

TOKEN_PARAM = "cancel_token"  # noqa: S105 - a parameter name, not a secret


@functools.lru_cache(maxsize=64)
def hook_registry(prefixes: tuple[str, ...], paths: tuple[Path, ...] = ()) -> HookRegistry:
    """One shared registry per prefixes and hook folders, so group modules are imported once."""
    return HookRegistry(prefixes, paths)


@dataclass(frozen=True)
class HookSignature:
    """How ``with`` keys map onto a hook function's parameters."""

    names: frozenset[str]
    required: frozenset[str]
    var_keyword: bool
    aliases: Mapping[str, str]
    wants_token: bool

    @classmethod
    @functools.lru_cache(maxsize=1024)
    def of(cls, func: Callable[..., Any]) -> HookSignature:
        """Inspect ``func`` once (cached)."""
        names: set[str] = set()
        required: set[str] = set()
        var_keyword = False
        for param in inspect.signature(func).parameters.values():
            if param.kind is param.VAR_KEYWORD:
                var_keyword = True
                continue
            if param.kind is param.VAR_POSITIONAL:
                continue
            names.add(param.name)
            if param.default is param.empty and param.name != TOKEN_PARAM:
                required.add(param.name)
        aliases = {
            n[1:]: n for n in names if n.startswith("_") and len(n) > 1 and n[1:] not in names
        }
        return cls(
            frozenset(names), frozenset(required), var_keyword, aliases, TOKEN_PARAM in names
        )

    def map_keys(self, keys: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
        """Return ``(with key -> parameter, unknown keys, missing required parameters)``."""
        mapping: dict[str, str] = {}
        unknown: list[str] = []
        for key in keys:
            if key in self.names:
                mapping[key] = key
            elif key in self.aliases:
                mapping[key] = self.aliases[key]
            elif self.var_keyword:
                mapping[key] = key
            else:
                unknown.append(key)
        given = set(mapping.values())
        missing = sorted(self.required - given)
        return mapping, unknown, missing


def check_arguments(hook: Hook, keys: list[str]) -> dict[str, str]:
    """Check ``with`` keys against ``hook``'s signature; return key -> parameter.

    Raises:
        ConfigError: a required argument is missing or a key is not a parameter.
    """
    sig = HookSignature.of(hook.func)
    mapping, unknown, missing = sig.map_keys(keys)
    if missing:
        shown = ", ".join(
            m[1:] if m.startswith("_") and m[1:] in sig.aliases else m for m in missing
        )
        raise ConfigError(f"hook {hook.uses} is missing required argument(s): {shown}", key="with")
    if unknown:
        accepted = ", ".join(sorted({*sig.names, *sig.aliases} - {TOKEN_PARAM})) or "(none)"
        raise ConfigError(
            f"hook {hook.uses} takes no argument(s) {', '.join(map(repr, unknown))}; it accepts: {accepted}",
            key=f"with.{unknown[0]}",
        )
    return mapping


@dataclass(frozen=True, slots=True)
class BoundHook:
    """A hook stage's resolved function and its ``with`` key -> parameter mapping."""

    hook: Hook
    args: dict[str, str]


class HookStage(BaseStage):
    """``uses``: ``<group>/<name>@<tag>``; ``with``: its arguments."""

    kind: ClassVar[str] = "hook"

    uses: str = Field(description="<group>/<name>@<tag>; may use ${{ matrix.* }}")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="arguments")

    @field_validator("uses")
    @classmethod
    def _shape(cls, uses: str) -> str:
        if not needs_render(uses, env=True):
            try:
                parse_uses(uses)
            except ConfigError as exc:
                raise ValueError(exc.message) from None
        elif "${{" in uses.partition("/")[0]:
            # the group names the module that is imported: a value must never choose it
            raise ValueError(
                f"the hook group of uses {uses!r} must be written literally (a value must "
                "not choose which module is imported); template the name or the tag instead"
            )
        return uses

    def templated_values(self) -> list[tuple[str, Any, bool]]:
        return [*super().templated_values(), ("uses", self.uses, True), ("with", self.with_, True)]

    def _kind_templates(self) -> dict[str, Any]:
        return {"uses": self.uses, "with": self.with_}

    def _body(self, hooks: HookRegistry) -> BoundHook | None:
        """Resolve a static ``uses`` and check ``with`` against the function.

        A templated ``uses`` is resolved per combination when the stage runs.

        Raises:
            ConfigError: keyed ``uses`` or ``with.<key>`` relative to the stage.
        """
        if needs_render(self.uses, env=True):
            return None
        hook = hooks.find(self.uses)
        return BoundHook(hook, check_arguments(hook, list(self.with_)))

    def _run(
        self, plan: StagePlan, ctx: Mapping[str, Any], rc: RunContext, call: StageCall
    ) -> dict[str, Any]:
        bound: BoundHook | None = plan.body
        if bound is None:
            uses = str(self.render(self.uses, ctx, rc, call.label))
            hook = rc.hooks.find(uses)
            bound = BoundHook(hook, check_arguments(hook, list(self.with_)))
        hook, args = bound.hook, bound.args
        values = (
            self.render(self.with_, ctx, rc, call.label) if "with" in plan.templated else self.with_
        )
        kwargs = {args[k]: v for k, v in values.items()}
        if HookSignature.of(hook.func).wants_token and TOKEN_PARAM not in kwargs:
            kwargs[TOKEN_PARAM] = call.token
        try:
            result = hook.func(**kwargs)
        except BaseException as exc:  # KeyboardInterrupt, CancelledError, ... fail the stage too
            if is_process_stop(exc):
                raise
            raise stage_error(
                f"hook {hook.uses} raised {type(exc).__name__}: {exc}", call, rc
            ) from exc
        if not isinstance(result, dict):
            raise stage_error(
                f"hook {hook.uses} returned {type(result).__name__}, expected a dict of outputs",
                call,
                rc,
            )
        return result
