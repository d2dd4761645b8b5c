"""The registry: how names written in YAML become Python objects.

Three kinds of names are resolved here, all through import prefixes taken from the
settings (``WORKFLOW_CORE_REGISTRY``, ``WORKFLOW_CORE_REGISTRY_FILTER``):

* **Template types** (:func:`resolve_type`): ``type: ddeutil.workflow.pipeline.Pipeline``,
  ``pipeline.Pipeline``, ``Pipeline`` and ``on.On`` all name a class. A dotted name is
  first tried as an absolute path, then under each registry prefix in order; a bare
  name is an attribute of a prefix package (``ddeutil.workflow.Pipeline``) or, failing
  that, of the prefix's module spelled in lower case (``ddeutil.workflow.pipeline``).
  :func:`resolve_kind` answers only "a pipeline, a schedule, or something else": it
  walks the same candidates, but a candidate that is one of the package's own classes
  (:data:`BUILTIN_TYPES`) is recognised by its path without importing it, so the
  scheduler daemon can list its pipelines without loading the engine.
* **Hooks** (:class:`HookRegistry`): a function marked ``@tag("requests", alias="get-api")``
  in module ``<prefix>.tasks`` is found by ``uses: tasks/get-api@requests``. Without an
  alias the function's own name is used; ``_`` and ``-`` match each other in hook
  names (``get-api`` finds ``get_api``). Group modules are imported lazily, on the first lookup
  that needs them, and remembered.
* **Filters** (:func:`load_filters`): functions marked ``@custom_filter("name")`` in the
  filter modules become template filters.

The decorators only set an attribute on the function: importing a module of hooks
registers nothing globally and costs nothing beyond the import itself. Every failure
is a :class:`~ddeutil.workflow.errors.ConfigError` that says which part of the name is
unknown and what was tried or is available.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ConfigError

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "BUILTIN_TYPES",
    "PIPELINE",
    "SCHEDULE",
    "Hook",
    "HookRegistry",
    "add_import_paths",
    "custom_filter",
    "kind_of_class",
    "load_filters",
    "parse_uses",
    "resolve_kind",
    "resolve_type",
    "tag",
]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

TAG_ATTR = "__workflow_tags__"
"""Attribute :func:`tag` sets on a hook function: a tuple of ``(tag, name)`` pairs."""

FILTER_ATTR = "__workflow_filter__"
"""Attribute :func:`custom_filter` sets on a filter function: the filter name."""

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
_USES = re.compile(
    rf"(?P<group>{_IDENT}(?:\.{_IDENT})*)/(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*)@(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*)"
)
_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


# --------------------------------------------------------------------------- imports


def _is_missing(exc: ModuleNotFoundError, module: str) -> bool:
    """True when ``exc`` says ``module`` itself (or a parent package) does not exist.

    A module that exists but fails on one of *its* imports is a broken module, not a
    missing one: that error must reach the user instead of reading "not found".
    """
    missing = exc.name or ""
    return missing == module or module.startswith(f"{missing}.")


def _import_optional(module: str) -> ModuleType | None:
    """Import ``module``; ``None`` if it does not exist, ConfigError if it is broken."""
    found = _import_or_missing(module)
    return None if isinstance(found, ModuleNotFoundError) else found


def _import_or_missing(module: str) -> ModuleType | ModuleNotFoundError:
    """Import ``module``; the error saying it does not exist, ConfigError if it is broken."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if _is_missing(exc, module):
            return exc
        raise ConfigError(f"module {module!r} exists but failed to import: {exc}") from exc
    except Exception as exc:
        raise ConfigError(
            f"module {module!r} exists but failed to import: {type(exc).__name__}: {exc}"
        ) from exc


# ------------------------------------------------------------------------------ types


def resolve_type(type_name: str, prefixes: Sequence[str]) -> type:
    """Return the class a template's ``type`` names.

    Candidates are tried in this order, the first class found wins:

    1. ``type_name`` as an absolute ``module.Class`` path (when it contains a dot);
    2. ``<prefix>.<type_name>`` for each prefix, in order (``on.On`` ->
       ``ddeutil.workflow.on.On``; ``Pipeline`` -> attribute of ``ddeutil.workflow``);
    3. for a bare name, ``<prefix>.<name lower-cased>.<name>`` for each prefix
       (``Pipeline`` -> ``ddeutil.workflow.pipeline.Pipeline``).

    Results are cached per (name, prefixes); failures are not.

    Raises:
        ConfigError: the name is malformed, names no class under any candidate (the
            message lists every candidate tried and the prefixes), names something
            that is not a class, or a candidate module exists but fails to import.
    """
    return _resolve_type(type_name, tuple(prefixes))


PIPELINE = "pipeline"
"""The kind of a template whose type is the engine's ``Pipeline`` (or a subclass)."""
SCHEDULE = "on"
"""The kind of a template whose type is ``On`` (or a subclass)."""

_PIPELINE_CLASS = ("ddeutil.workflow.engine.pipeline", "Pipeline")
_ON_CLASS = ("ddeutil.workflow.schedules.on", "On")
_KIND_CLASSES = ((PIPELINE, _PIPELINE_CLASS), (SCHEDULE, _ON_CLASS))

BUILTIN_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "ddeutil.workflow.Pipeline": PIPELINE,
        "ddeutil.workflow.pipeline.Pipeline": PIPELINE,
        "ddeutil.workflow.engine.pipeline.Pipeline": PIPELINE,
        "ddeutil.workflow.On": SCHEDULE,
        "ddeutil.workflow.on.On": SCHEDULE,
        "ddeutil.workflow.schedules.on.On": SCHEDULE,
    }
)
"""Full paths of the package's own template classes, and their kind.

A candidate of :func:`resolve_kind` with one of these paths is known without
importing it (importing ``ddeutil.workflow.pipeline`` loads the whole engine).
"""


def kind_of_class(cls: type) -> str | None:
    """:data:`PIPELINE`, :data:`SCHEDULE` or ``None`` for a class some ``type`` named.

    Imports nothing: a class can only subclass the engine's ``Pipeline`` (or
    ``On``) if its module imported that module already.
    """
    for kind, (module_name, attr) in _KIND_CLASSES:
        module = sys.modules.get(module_name)
        base = getattr(module, attr, None) if module is not None else None
        if isinstance(base, type) and issubclass(cls, base):
            return kind
    return None


def resolve_kind(type_name: str, prefixes: Sequence[str]) -> str | None:
    """What a template's ``type`` names: :data:`PIPELINE`, :data:`SCHEDULE` or ``None``.

    The candidates and their order are those of :func:`resolve_type`, and so are
    the errors; the first candidate that is a built-in path (:data:`BUILTIN_TYPES`)
    gives its kind without an import. Any other class found is classified by
    :func:`kind_of_class` (``None``: a class that is neither). Results are cached
    per (name, prefixes); failures are not.

    Raises:
        ConfigError: as :func:`resolve_type`.
    """
    return _resolve_kind(type_name, tuple(prefixes))


@functools.lru_cache(maxsize=512)
def _resolve_kind(type_name: str, prefixes: tuple[str, ...]) -> str | None:
    found = _walk(type_name, prefixes, builtins=True)
    return found if isinstance(found, str) else kind_of_class(found)


@functools.lru_cache(maxsize=512)
def _resolve_type(type_name: str, prefixes: tuple[str, ...]) -> type:
    found = _walk(type_name, prefixes, builtins=False)
    assert isinstance(found, type)
    return found


def _candidates(name: str, prefixes: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(module, attribute)`` pairs a type name may mean, in order, each once."""
    candidates: list[tuple[str, str]] = []
    if "." in name:
        head, _, attr = name.rpartition(".")
        candidates.append((head, attr))
        candidates.extend((f"{p}.{head}", attr) for p in prefixes)
    else:
        candidates.extend((p, name) for p in prefixes)
        candidates.extend((f"{p}.{name.lower()}", name) for p in prefixes)
    return list(dict.fromkeys(candidates))


def _walk(type_name: str, prefixes: tuple[str, ...], *, builtins: bool) -> type | str:
    """The class the name resolves to, or (``builtins``) the kind of a built-in path."""
    if not isinstance(type_name, str) or not _DOTTED.fullmatch(type_name.strip()):
        raise ConfigError(
            f"`type` must be a class name such as 'Pipeline', 'pipeline.Pipeline' or "
            f"'ddeutil.workflow.pipeline.Pipeline', got {type_name!r}",
            key="type",
        )
    name = type_name.strip()
    candidates = _candidates(name, prefixes)
    not_classes: list[str] = []
    for module_name, attr in candidates:
        if builtins:
            kind = BUILTIN_TYPES.get(f"{module_name}.{attr}")
            if kind is not None:
                return kind
        module = _import_optional(module_name)
        if module is None:
            continue
        found = getattr(module, attr, None)
        if found is None:
            continue
        if isinstance(found, type):
            return found
        not_classes.append(f"{module_name}.{attr} is a {type(found).__name__}, not a class")

    tried = ", ".join(f"{m}.{a}" for m, a in candidates)
    detail = f" ({'; '.join(not_classes)})" if not_classes else ""
    raise ConfigError(
        f"type {name!r} resolves to nothing{detail}: tried {tried} "
        f"(registry prefixes: {', '.join(prefixes) or 'none'})",
        key="type",
    )


# ------------------------------------------------------------------------------ hooks


def tag(name: str, alias: str | None = None) -> Callable[[F], F]:
    """Mark a function as a hook, found by ``uses: <group>/<alias or name>@<name>``.

    Args:
        name: The tag, e.g. the library the function is written with (``"polars"``).
        alias: The name ``uses`` spells; default the function's ``__name__``.

    A function may carry several tags (stack the decorator). The decorator only
    records ``(tag, name)`` on the function; nothing is registered globally.
    """
    if not isinstance(name, str) or not _LABEL.fullmatch(name):
        raise ValueError(f"hook tag must be letters, digits, '_', '-' or '.', got {name!r}")
    if alias is not None and (not isinstance(alias, str) or not _LABEL.fullmatch(alias)):
        raise ValueError(f"hook alias must be letters, digits, '_', '-' or '.', got {alias!r}")

    def mark(func: F) -> F:
        previous: tuple[tuple[str, str], ...] = getattr(func, TAG_ATTR, ())
        setattr(func, TAG_ATTR, (*previous, (name, alias or func.__name__)))
        return func

    return mark


@dataclass(frozen=True)
class Hook:
    """A hook function found for a ``uses`` string.

    Attributes:
        group: The group module's last part(s) as written in ``uses`` (``tasks``).
        name: The hook name (the alias, or the function name).
        tag: The tag it was marked with.
        func: The function itself.
        module: The module it was found in (``<prefix>.<group>``).
    """

    group: str
    name: str
    tag: str
    func: Callable[..., Any]
    module: str

    @property
    def uses(self) -> str:
        """The canonical ``uses`` spelling of this hook."""
        return f"{self.group}/{self.name}@{self.tag}"


def parse_uses(uses: str) -> tuple[str, str, str]:
    """Split ``"<group>/<name>@<tag>"`` into its three parts.

    Raises:
        ConfigError: the string is not of that shape (or still holds a ``${{ }}``
            template, which must be rendered before lookup).
    """
    text = uses.strip() if isinstance(uses, str) else uses
    if isinstance(text, str) and "${{" in text:
        raise ConfigError(
            f"uses {uses!r} still contains a template expression; render it before lookup",
            key="uses",
        )
    match = _USES.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(
            f"uses must look like '<group>/<name>@<tag>' (e.g. 'tasks/get-api@requests'), "
            f"got {uses!r}",
            key="uses",
        )
    return match["group"], match["name"], match["tag"]


_GroupIndex = dict[tuple[str, str], Hook]


class HookRegistry:
    """Finds hook functions by their ``uses`` string, across the registry prefixes.

    For a group, module ``<prefix>.<group>`` is imported for every prefix (lazily, on
    the first lookup of that group, then cached). Names match with ``_`` and ``-``
    treated alike. When two prefixes define the same name and tag, the earlier prefix
    wins, like a search path; two different functions with the same name and tag in
    one module are a ConfigError.

    Thread-safe: lookups may come from many worker threads.
    """

    def __init__(self, prefixes: Sequence[str], paths: Sequence[Path] = ()) -> None:
        self.prefixes: tuple[str, ...] = tuple(prefixes)
        self.paths: tuple[Path, ...] = tuple(paths)
        self._groups: dict[str, _GroupIndex] = {}
        self._missing: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> HookRegistry:
        """A registry over ``settings.registry`` and ``settings.hook_paths``."""
        return cls(settings.registry, settings.hook_paths)

    def __repr__(self) -> str:
        return f"HookRegistry(prefixes={self.prefixes!r}, paths={self.paths!r})"

    def find(self, uses: str) -> Hook:
        """Return the hook ``uses`` names.

        Raises:
            ConfigError: malformed ``uses``; unknown group (no prefix has a module for
                it; the modules tried are listed); unknown name (the group's hooks are
                listed); unknown tag (the name's tags are listed); or a group module
                that fails to import.
        """
        group, name, wanted = parse_uses(uses)
        index = self._group(group)
        if not index:
            raise ConfigError(self._no_group(group, uses), key="uses")
        key = _norm(name)
        hook = index.get((key, wanted))
        if hook is not None:
            return hook
        names = sorted({h.name for h in index.values()})
        tags = sorted(t for n, t in index if n == key)
        if not tags:
            raise ConfigError(
                f"unknown hook name {name!r} in group {group!r} (uses {uses!r}); "
                f"available: {', '.join(names)}",
                key="uses",
            )
        raise ConfigError(
            f"unknown tag {wanted!r} for hook {group}/{name} (uses {uses!r}); "
            f"available tags: {', '.join(tags)}",
            key="uses",
        )

    def hooks(self, group: str) -> list[Hook]:
        """Every hook of ``group`` across the prefixes, sorted by name then tag."""
        return sorted(self._group(group).values(), key=lambda h: (h.name, h.tag))

    def _no_group(self, group: str, uses: str) -> str:
        """Why ``group`` has no hooks: the imports that failed, or the modules without tags."""
        missing = self._missing.get(group, {})
        empty = [f"{p}.{group}" for p in self.prefixes if f"{p}.{group}" not in missing]
        parts = [f"cannot import {m}: ModuleNotFoundError: {why}" for m, why in missing.items()]
        if empty:
            parts.append(f"module(s) {', '.join(empty)} define no @tag functions")
        return (
            f"unknown hook group {group!r} in uses {uses!r}: {'; '.join(parts)} "
            f"(searched: {self._searched()}; registry prefixes: {', '.join(self.prefixes)})"
        )

    def _searched(self) -> str:
        """The hook folders as they stand, then the rest of the import path."""
        shown = [str(p) if p.is_dir() else f"{p} (absent)" for p in self.paths]
        return ", ".join([*shown, "sys.path"]) if shown else "sys.path (no hook folder)"

    def _group(self, group: str) -> _GroupIndex:
        with self._lock:
            cached = self._groups.get(group)
            if cached is None:
                add_import_paths(self.paths)
                cached = self._groups[group] = self._load_group(group)
            return cached

    def _load_group(self, group: str) -> _GroupIndex:
        index: _GroupIndex = {}
        missing: dict[str, str] = {}
        self._missing[group] = missing
        for prefix in self.prefixes:
            module_name = f"{prefix}.{group}"
            module = _import_or_missing(module_name)
            if isinstance(module, ModuleNotFoundError):
                missing[module_name] = str(module)
                continue
            found: _GroupIndex = {}
            for func in _marked(module, TAG_ATTR):
                for hook_tag, hook_name in getattr(func, TAG_ATTR):
                    key = (_norm(hook_name), hook_tag)
                    seen = found.get(key)
                    if seen is not None and seen.func is not func:
                        raise ConfigError(
                            f"hook {group}/{hook_name}@{hook_tag} is defined twice in "
                            f"module {module_name!r}: {_qualname(seen.func)} and "
                            f"{_qualname(func)}"
                        )
                    found[key] = Hook(group, hook_name, hook_tag, func, module_name)
            for key, hook in found.items():
                index.setdefault(key, hook)
            logger.debug("hook group %s: %d hooks in %s", group, len(found), module_name)
        return index


_PATH_LOCK = threading.Lock()


def add_import_paths(paths: Sequence[Path]) -> None:
    """Put the existing folders of ``paths`` first on ``sys.path``, in order, each once.

    Called before hook modules are imported (``WORKFLOW_CORE_PATH_HOOKS``). A folder
    already on the path is moved nowhere; an absent folder is skipped (settings refuse
    an absent folder the user named, so only the default ``hooks`` can be absent).
    """
    with _PATH_LOCK:
        wanted = [str(p) for p in paths if p.is_dir() and str(p) not in sys.path]
        if wanted:
            sys.path[0:0] = wanted
            importlib.invalidate_caches()
            logger.debug("hook folders put on the import path: %s", ", ".join(wanted))


def _norm(name: str) -> str:
    """Hook names match with ``_`` and ``-`` treated alike (``get_api`` is ``get-api``)."""
    return name.replace("_", "-")


def _marked(module: ModuleType, attr: str) -> list[Callable[..., Any]]:
    """Callables in ``module``'s namespace carrying ``attr``, each once, in order."""
    out: dict[int, Callable[..., Any]] = {}
    for value in vars(module).values():
        if callable(value) and not isinstance(value, type) and hasattr(value, attr):
            out.setdefault(id(value), value)
    return list(out.values())


def _qualname(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)!s}"


# ---------------------------------------------------------------------------- filters


def custom_filter(name: str) -> Callable[[F], F]:
    """Mark a function as the template filter ``name`` (``${{ x | name(arg) }}``).

    The function receives the value first, then the filter's literal arguments.
    Filters are collected from the modules of ``WORKFLOW_CORE_REGISTRY_FILTER`` by
    :func:`load_filters`; the decorator registers nothing by itself.
    """
    if not isinstance(name, str) or not re.fullmatch(_IDENT, name):
        raise ValueError(f"filter name must be an identifier, got {name!r}")

    def mark(func: F) -> F:
        setattr(func, FILTER_ATTR, name)
        return func

    return mark


def load_filters(modules: Sequence[str]) -> Mapping[str, Callable[..., Any]]:
    """Collect the ``@custom_filter`` functions of ``modules`` into a read-only mapping.

    A later module's filter replaces an earlier one of the same name (so an
    application module listed after ``ddeutil.workflow.templating`` can override a
    built-in); two different functions claiming one name in the same module are an
    error. The result is cached per tuple of module names.

    Raises:
        ConfigError: a module does not exist or fails to import, or defines one
            filter name twice.
    """
    return _load_filters(tuple(modules))


@functools.lru_cache(maxsize=32)
def _load_filters(modules: tuple[str, ...]) -> Mapping[str, Callable[..., Any]]:
    filters: dict[str, Callable[..., Any]] = {}
    for module_name in modules:
        module = _import_optional(module_name)
        if module is None:
            raise ConfigError(
                f"filter module {module_name!r} does not exist "
                f"(WORKFLOW_CORE_REGISTRY_FILTER: {', '.join(modules)})"
            )
        here: dict[str, Callable[..., Any]] = {}
        for func in _marked(module, FILTER_ATTR):
            filter_name: str = getattr(func, FILTER_ATTR)
            if filter_name in here and here[filter_name] is not func:
                raise ConfigError(
                    f"filter {filter_name!r} is defined twice in module {module_name!r}: "
                    f"{_qualname(here[filter_name])} and {_qualname(func)}"
                )
            here[filter_name] = func
        for filter_name in here:
            if filter_name in filters:
                logger.debug("filter %r from %s replaces an earlier one", filter_name, module_name)
        filters.update(here)
    return MappingProxyType(filters)
