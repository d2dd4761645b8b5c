"""The template loader: every top-level key of every YAML file in the conf folder.

A :class:`Loader` reads the conf folder once, when it is built: every ``*.yml`` /
``*.yaml`` file below it (recursively, sorted, hidden files and folders skipped) is
parsed a single time and each of its top-level keys is indexed as a template.
Lookups afterwards are dictionary hits. A loader never changes; :meth:`Loader.refreshed`
returns a new one when the files changed (the daemon's hot reload).

Policy for broken input: one bad file or template never stops the others. Each
problem becomes a :class:`~ddeutil.workflow.errors.ConfigError` carrying the file,
the template and the key, collected in :attr:`Loader.errors`; the broken template
is left out of :meth:`Loader.names`, and :meth:`Loader.get` on it raises
:class:`~ddeutil.workflow.errors.TemplateNotFound` that states why. Problems
reported this way:

* a YAML syntax error (file, line and column);
* a duplicate key inside any mapping (file and both lines);
* a file whose top level is not a mapping of template names;
* a template that is not a mapping, or has no string ``type``;
* a template name defined in two files (or twice in one): the name is unusable and
  the error names every file that defines it - never "last one wins";
* a file over a limit of :mod:`~ddeutil.workflow.limits` (a
  :class:`~ddeutil.workflow.errors.ConfLimitError`): larger than the byte limit
  (not parsed), or expanding to more YAML nodes than the node budget (every alias
  counted at the size of what it refers to), or nesting deeper than the depth
  limit, or holding a recursive alias. The budget is checked on the parsed node
  graph, where an alias is one shared node, before any value is built: a "billion
  laughs" file is refused in milliseconds and constant memory. The whole file is
  refused; the error names the template (and key) where the limit was crossed,
  and every template of the file is reported unusable with it.

YAML dialect: the safe loader, with YAML 1.1's surprises removed. Only ``true`` /
``false`` (any case) are booleans, so ``on:``, ``off``, ``yes``, ``no``, ``y``, ``n``
stay strings; ``01:30`` stays a string instead of the base-60 integer 90. The C
LibYAML parser is used when PyYAML was built with it, with the same rules.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode

from .errors import ConfigError, ConfLimitError, TemplateNotFound, brief
from .limits import DEFAULT_LIMITS, ConfLimits
from .registry import resolve_kind, resolve_type

try:  # the same function as hashlib's, without loading OpenSSL (megabytes) for it
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - CPython always has _blake2
    from hashlib import blake2b

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "Fingerprint",
    "Loader",
    "RawTemplate",
    "YamlLoader",
    "load_yaml",
    "template_version",
]

logger = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]
"""``(path, mtime_ns, size)`` of every YAML file, sorted by path."""

YAML_SUFFIXES = frozenset({".yml", ".yaml"})

# ------------------------------------------------------------------------------- YAML

_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"

# YAML 1.1 ints and floats without the base-60 forms (``1:30`` -> 90).
_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_BOOL = re.compile(r"^(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$")


def _resolvers(base: type[yaml.resolver.BaseResolver]) -> dict[Any, list[tuple[str, Any]]]:
    """The base resolvers with the bool, int and float rules replaced."""
    replaced = {_BOOL_TAG, _INT_TAG, _FLOAT_TAG}
    table: dict[Any, list[tuple[str, Any]]] = {}
    for first, rules in base.yaml_implicit_resolvers.items():
        kept = [(t, rx) for t, rx in rules if t not in replaced]
        if kept:
            table[first] = kept
    for tag, regexp, firsts in (
        (_BOOL_TAG, _BOOL, "tTfF"),
        (_INT_TAG, _INT, "-+0123456789"),
        (_FLOAT_TAG, _FLOAT, "-+0123456789."),
    ):
        for first in firsts:
            table.setdefault(first, []).append((tag, regexp))
    return table


class _StrictMappings:
    """Mixin: a key repeated inside one mapping is an error, not "last one wins"."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[tuple[str, str], Node] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                ident = (key_node.tag, key_node.value)
                if ident in seen:
                    first = seen[ident].start_mark.line + 1
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {key_node.value!r} (first at line {first})",
                        key_node.start_mark,
                    )
                seen[ident] = key_node
        return super().construct_mapping(node, deep)  # type: ignore[misc,no-any-return]


class _TooDeep(Exception):  # noqa: N818 - internal signal, never leaves this module
    """The pure-Python composer went deeper than ``max_depth`` (before recursing too far)."""

    def __init__(self, mark: Any) -> None:
        self.mark = mark
        super().__init__("too deep")


class _PySafeLoader(_StrictMappings, yaml.SafeLoader):
    yaml_implicit_resolvers = _resolvers(yaml.SafeLoader)
    max_depth = DEFAULT_LIMITS.max_depth
    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # The composer recurses once per level: stop at the limit, not at Python's
        # recursion limit (LibYAML stops by itself at 1000 levels).
        if self._depth > self.max_depth:
            raise _TooDeep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_CSafeLoader: type[Any] | None = None
if hasattr(yaml, "CSafeLoader"):  # pragma: no branch - PyYAML wheels ship LibYAML

    class _CSafeLoaderImpl(_StrictMappings, yaml.CSafeLoader):
        yaml_implicit_resolvers = _resolvers(yaml.CSafeLoader)

    _CSafeLoader = _CSafeLoaderImpl

YamlLoader: type[Any] = _CSafeLoader or _PySafeLoader
"""The loader class used for templates (LibYAML when available)."""


def load_yaml(text: str) -> Any:
    """Parse one YAML document with the template dialect (for tests and tools)."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass


# -------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class RawTemplate:
    """One template as read from disk, before any class validates it.

    Attributes:
        name: The top-level key.
        file: The YAML file it was read from.
        data: The mapping under the key, as parsed (``type`` included). Shared with
            the loader's index: treat it as read-only.
        type: The ``type`` value (always set for templates a :class:`Loader` returns).
    """

    name: str
    file: Path
    data: Mapping[str, Any] = field(hash=False)
    type: str | None = None

    def error(self, message: str, *, key: str | None = None) -> ConfigError:
        """A ConfigError located at this template (and ``key``)."""
        return ConfigError(message, file=str(self.file), template=self.name, key=key)


def template_version(template: RawTemplate) -> str:
    """A digest of a raw template's content: equal for equal templates.

    Two templates with the same name, file name, ``type`` and data (keys in the
    same order, as read from the same YAML) have the same version; any edit gives
    another one. The folder the file is in does not count, so a worker on another
    machine, whose conf folder has another path, computes the same version.
    Workers keep the plan they compiled by it; the scheduler sends it with each run.
    """
    raw = pickle.dumps(
        (template.name, template.file.name, template.type, template.data),
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    return blake2b(raw, digest_size=16).hexdigest()


@dataclass
class _Entry:
    """One definition of a template name: usable (``template``) or broken (``error``)."""

    name: str
    file: Path
    line: int
    template: RawTemplate | None = None
    error: ConfigError | None = None


class Loader:
    """An immutable index of the templates under one conf folder.

    Args:
        conf_path: The folder searched recursively for ``*.yml`` / ``*.yaml``.
        prefixes: Registry prefixes used to resolve ``type`` names.
        limits: Bounds on each file read (see :mod:`~ddeutil.workflow.limits`).

    Attributes:
        conf_path: As given.
        prefixes: As given, as a tuple.
        limits: As given.
        errors: Every problem found while reading, each with file/template/key, in
            file order (duplicate-name errors last).
    """

    def __init__(
        self,
        conf_path: Path,
        *,
        prefixes: Sequence[str] = ("ddeutil.workflow",),
        limits: ConfLimits = DEFAULT_LIMITS,
    ) -> None:
        self.conf_path = Path(conf_path)
        self.prefixes: tuple[str, ...] = tuple(prefixes)
        self.limits = limits
        self._templates: dict[str, RawTemplate] = {}
        self._broken: dict[str, ConfigError] = {}
        self._classes: dict[str, type] = {}
        errors: list[ConfigError] = []
        self._fingerprint = self._read_all(errors)
        self.errors: tuple[ConfigError, ...] = tuple(errors)
        logger.debug(
            "loaded %d templates from %d files in %s (%d errors)",
            len(self._templates),
            len(self._fingerprint),
            self.conf_path,
            len(self.errors),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Loader:
        """A loader over ``settings.conf_path`` with the registry prefixes and conf limits."""
        return cls(settings.conf_path, prefixes=settings.registry, limits=settings.conf_limits)

    def __repr__(self) -> str:
        return (
            f"Loader({str(self.conf_path)!r}, templates={len(self._templates)}, "
            f"errors={len(self.errors)})"
        )

    # ------------------------------------------------------------------ lookups

    def get(self, name: str) -> RawTemplate:
        """The template called ``name``.

        Raises:
            TemplateNotFound: no such template, or the template is broken (then the
                message carries the reason and ``__cause__`` the original error).
        """
        try:
            return self._templates[name]
        except KeyError:
            pass
        broken = self._broken.get(name)
        if broken is None:
            raise TemplateNotFound(name)
        exc = TemplateNotFound(name)
        exc.message = f"cannot be used: {broken.message}"
        exc.args = (exc.message,)
        exc.file = broken.file
        exc.key = broken.key
        raise exc from broken

    def names(self) -> list[str]:
        """Names of every usable template, sorted."""
        return sorted(self._templates)

    def __contains__(self, name: object) -> bool:
        return name in self._templates

    def __len__(self) -> int:
        return len(self._templates)

    def __iter__(self) -> Iterator[RawTemplate]:
        """Usable templates, sorted by name."""
        return (self._templates[n] for n in self.names())

    def resolve_class(self, template: RawTemplate) -> type:
        """The class ``template.type`` names (see :func:`registry.resolve_type`).

        Raises:
            ConfigError: located at the template's ``type`` key.
        """
        if template.type is None:
            raise template.error("missing `type`", key="type")
        cached = self._classes.get(template.type)
        if cached is not None:
            return cached
        try:
            cls = resolve_type(template.type, self.prefixes)
        except ConfigError as exc:
            key = None if exc.key else "type"
            raise exc.located(
                file=str(template.file), template=template.name, key_prefix=key
            ) from exc
        self._classes[template.type] = cls
        return cls

    def kind(self, template: RawTemplate) -> str | None:
        """What ``template.type`` names: ``"pipeline"``, ``"on"`` or ``None`` (another class).

        The package's own ``Pipeline`` and ``On``, in any spelling, are recognised
        without importing them (see :func:`registry.resolve_kind`): listing the
        pipelines of a conf folder does not load the engine.

        Raises:
            ConfigError: located at the template's ``type`` key.
        """
        if template.type is None:
            raise template.error("missing `type`", key="type")
        try:
            return resolve_kind(template.type, self.prefixes)
        except ConfigError as exc:
            key = None if exc.key else "type"
            raise exc.located(
                file=str(template.file), template=template.name, key_prefix=key
            ) from exc

    def of_kind(self, kind: str) -> list[RawTemplate]:
        """Templates of ``kind`` (see :meth:`kind`), sorted by name.

        Templates whose type does not resolve are skipped here (``validate`` reports
        them).
        """
        found = []
        for template in self:
            try:
                if self.kind(template) == kind:
                    found.append(template)
            except ConfigError:
                continue
        return found

    def of_type(self, cls: type) -> list[RawTemplate]:
        """Templates whose ``type`` resolves to ``cls`` or a subclass, sorted by name.

        Templates whose type does not resolve are skipped here (``validate`` reports
        them).
        """
        found = []
        for template in self:
            try:
                resolved = self.resolve_class(template)
            except ConfigError:
                continue
            if issubclass(resolved, cls):
                found.append(template)
        return found

    # ------------------------------------------------------------------- pickle

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its index: unpickling reads no file (a helper process gets it)."""
        broken = {name: _pack_error(error) for name, error in self._broken.items()}
        state = (
            self.conf_path,
            self.prefixes,
            self.limits,
            self._templates,
            broken,
            tuple(_pack_error(error) for error in self.errors),
            self._fingerprint,
        )
        return (_restore_loader, (type(self), state))

    # ------------------------------------------------------------------- reload

    def fingerprint(self) -> Fingerprint:
        """``(path, mtime_ns, size)`` of every YAML file now on disk, sorted by path.

        Compared with the fingerprint taken while reading, it tells whether any file
        was added, removed or changed. Costs one directory walk and one ``stat``
        per file; no file is read.
        """
        return tuple(_stat(p) for p in _discover(self.conf_path))

    def refreshed(self) -> Loader:
        """A new loader when the conf folder changed since this one read it, else ``self``."""
        if self.fingerprint() == self._fingerprint:
            return self
        return self.reread()

    def reread(self) -> Loader:
        """A new loader over the same folder, prefixes and limits, read now."""
        return type(self)(self.conf_path, prefixes=self.prefixes, limits=self.limits)

    # ------------------------------------------------------------------ reading

    def _read_all(self, errors: list[ConfigError]) -> Fingerprint:
        if not self.conf_path.is_dir():
            errors.append(
                ConfigError(
                    f"conf folder {str(self.conf_path)!r} does not exist or is not a folder"
                )
            )
            return ()
        stats = []
        defined: dict[str, list[_Entry]] = {}
        max_bytes = self.limits.max_bytes
        for path in _discover(self.conf_path):
            try:
                stats.append(_stat(path))  # before reading: a later edit changes it
                raw = _read_bounded(path, max_bytes)
                if len(raw) > max_bytes:
                    errors.append(
                        ConfLimitError(
                            f"the file is larger than {max_bytes:,} bytes and is not read "
                            "(raise WORKFLOW_CORE_CONF_MAX_BYTES if it should be)",
                            setting="WORKFLOW_CORE_CONF_MAX_BYTES",
                            limit=max_bytes,
                            file=str(path),
                        )
                    )
                    continue
                text = raw.decode("utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(ConfigError(f"cannot read file: {exc}", file=str(path)))
                continue
            for entry in _parse_file(path, text, errors, self.limits):
                defined.setdefault(entry.name, []).append(entry)
        for name, entries in defined.items():
            if len(entries) == 1:
                entry = entries[0]
                if entry.template is not None:
                    self._templates[name] = entry.template
                elif entry.error is not None:  # pragma: no branch - one of both is set
                    self._broken[name] = entry.error
                continue
            places = " and ".join(f"{e.file} (line {e.line})" for e in entries)
            error = ConfigError(
                f"template name {name!r} is defined more than once: in {places}; "
                "rename one of them",
                file=str(entries[-1].file),
                template=name,
            )
            errors.append(error)
            self._broken[name] = error
        return tuple(stats)


def _parse_file(
    path: Path, text: str, errors: list[ConfigError], limits: ConfLimits
) -> list[_Entry]:
    """Parse one file into template entries; every problem is appended to ``errors``.

    Each document's node graph is measured against ``limits`` before any value is
    built from it; a file over a limit yields only broken entries.
    """
    file = str(path)
    loader = YamlLoader(text)
    loader.max_depth = limits.max_depth
    budget = _Budget(file, limits)
    entries: list[_Entry] = []
    try:
        while loader.check_node():
            root = loader.get_node()
            if root is None or root.tag == _NULL_TAG:  # an empty document
                continue
            over = budget.add(root)
            if over is not None:
                errors.append(over)
                return _refused(path, over, entries, root)
            if not isinstance(root, MappingNode):
                errors.append(
                    ConfigError(
                        f"line {root.start_mark.line + 1}: the top level of a template file "
                        f"must be a mapping of template names, got a {_node_kind(root)}",
                        file=file,
                    )
                )
                continue
            loader.flatten_mapping(root)
            entries.extend(_templates_of(path, loader, root, errors))
    except _TooDeep as exc:
        error = _too_deep(file, limits, line=exc.mark.line + 1)
        errors.append(error)
        entries = _refused(path, error, entries, None)
    except yaml.MarkedYAMLError as exc:
        errors.append(ConfigError(_yaml_message(exc), file=file))
    except yaml.YAMLError as exc:
        errors.append(ConfigError(f"invalid YAML: {exc}", file=file))
    finally:
        loader.dispose()
    return entries


def _refused(
    path: Path, error: ConfigError, earlier: list[_Entry], root: Node | None
) -> list[_Entry]:
    """Every template of a file refused by ``error``: those already read and ``root``'s."""
    refused = [_Entry(e.name, path, e.line, error=error) for e in earlier]
    if isinstance(root, MappingNode):
        for key_node, _ in root.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:
                name = str(key_node.value)
                refused.append(_Entry(name, path, key_node.start_mark.line + 1, error=error))
    return refused


def _templates_of(
    path: Path, loader: Any, root: MappingNode, errors: list[ConfigError]
) -> Iterator[_Entry]:
    """One entry per top-level key of ``root``, constructing each value separately.

    Values are built one by one, so a bad value (a duplicate key, an impossible
    date) breaks only its own template.
    """
    file = str(path)
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        name = loader.construct_object(key_node, deep=True)
        if not isinstance(name, str) or not name:
            errors.append(
                ConfigError(
                    f"line {line}: a template name must be a non-empty string, got {name!r}",
                    file=file,
                )
            )
            continue
        try:
            data = loader.construct_object(value_node, deep=True)
        except yaml.MarkedYAMLError as exc:
            problem: tuple[str, str | None] | None = (_yaml_message(exc), None)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            problem = (f"line {line}: cannot read a value: {type(exc).__name__}: {exc}", None)
        else:
            problem = _check_template(data)
            if problem is not None:
                problem = (f"line {line}: {problem[0]}", problem[1])
        if problem is not None:
            error = ConfigError(problem[0], file=file, template=name, key=problem[1])
            errors.append(error)
            yield _Entry(name, path, line, error=error)
            continue
        yield _Entry(name, path, line, template=RawTemplate(name, path, data, data["type"].strip()))


_PackedError = tuple[type[ConfigError], tuple[Any, ...], dict[str, Any]]


def _pack_error(error: ConfigError) -> _PackedError:
    """An error as (class, args, attributes): its subclasses' __init__ do not unpickle."""
    return (type(error), error.args, dict(vars(error)))


def _unpack_error(packed: _PackedError) -> ConfigError:
    cls, args, attributes = packed
    error: ConfigError = cls.__new__(cls)
    error.args = args
    error.__dict__.update(attributes)
    return error


def _restore_loader(cls: type[Loader], state: tuple[Any, ...]) -> Loader:
    conf_path, prefixes, limits, templates, broken, errors, fingerprint = state
    loader = cls.__new__(cls)
    loader.conf_path = conf_path
    loader.prefixes = prefixes
    loader.limits = limits
    loader._templates = templates
    loader._broken = {name: _unpack_error(packed) for name, packed in broken.items()}
    loader._classes = {}
    loader.errors = tuple(_unpack_error(packed) for packed in errors)
    loader._fingerprint = fingerprint
    return loader


def _check_template(data: Any) -> tuple[str, str | None] | None:
    """``(message, key)`` of the first structural problem of a template, or None."""
    if not isinstance(data, dict):
        got = "nothing" if data is None else f"a {type(data).__name__} ({brief(data)})"
        return (f"a template must be a mapping with a `type` key, got {got}", None)
    if "type" not in data:
        return ("missing `type` (e.g. `type: pipeline.Pipeline` or `type: on.On`)", "type")
    if not isinstance(data["type"], str) or not data["type"].strip():
        return (f"`type` must be a class name string, got {brief(data['type'])}", "type")
    return None


def _node_kind(node: Node) -> str:
    if isinstance(node, MappingNode):  # pragma: no cover - callers handle mappings
        return "mapping"
    if isinstance(node, ScalarNode):
        return f"scalar ({brief(node.value)})"
    return "list"


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    """``line L, column C: <problem> (<context> at line M)`` from a PyYAML error."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = exc.problem or "invalid YAML"
    context = ""
    if exc.context:
        at = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
        context = f" ({exc.context}{at})"
    kind = "YAML error" if isinstance(exc, ConstructorError) else "YAML syntax error"
    return f"{kind}: {where}{problem}{context}"


# ------------------------------------------------------------------------ limits

_MAX_KEY_SEGMENTS = 12
_MAX_LABEL = 40


class _Recursive(Exception):  # noqa: N818 - internal signal, never leaves this module
    """An alias refers to a mapping or list that contains it."""

    def __init__(self, node: Node) -> None:
        self.node = node
        super().__init__("recursive alias")


def _children(node: Node) -> Iterator[Node]:
    """Keys and values of a mapping, items of a list (nothing for a scalar)."""
    if isinstance(node, MappingNode):
        return chain.from_iterable(node.value)
    if isinstance(node, SequenceNode):
        return iter(node.value)
    return iter(())


def _labelled(node: Node) -> Iterator[tuple[str, Node]]:
    """``(key segment, child)`` of a mapping's values or a list's items."""
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode):
                label = str(key_node.value)
                label = label if len(label) <= _MAX_LABEL else label[:_MAX_LABEL] + "..."
            else:
                label = "?"
            yield label, value_node
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield f"[{index}]", item


class _Budget:
    """The node and depth budget of one file, measured on its YAML node graph.

    Composing keeps an alias as a reference to the node it names, so the graph is
    as small as the text. Sizes are counted as if every alias were expanded, once
    per node (memoised) and saturating just above the limit: the cost is linear in
    the text, whatever the expansion.
    """

    def __init__(self, file: str, limits: ConfLimits) -> None:
        self.file = file
        self.limits = limits
        self.used = 0
        self._memo: dict[int, tuple[int, int]] = {}
        self._shared: set[int] = set()

    def add(self, root: Node) -> ConfigError | None:
        """Count one document; the error when the file is now over a limit."""
        # Anchors never cross documents, and the nodes of an earlier document may be
        # freed (their ids reused): measure each document afresh.
        self._memo = {}
        self._shared = set()
        try:
            size, depth = self._measure(root)
        except _Recursive as exc:
            return ConfigError(
                f"line {exc.node.start_mark.line + 1}: an alias refers to a mapping or "
                "list that contains it (a recursive structure)",
                file=self.file,
            )
        limits = self.limits
        if self.used + size <= limits.max_nodes and depth <= limits.max_depth:
            self.used += size
            return None
        too_deep = depth > limits.max_depth
        template, node = self._crossing(root, by_depth=too_deep)
        if too_deep:
            key, node = self._path(node, metric=1)
            line = node.start_mark.line + 1
            return _too_deep(self.file, limits, line=line, template=template, key=key)
        key, node = self._path(node, metric=0)
        return ConfLimitError(
            f"line {node.start_mark.line + 1}: the file expands to more than "
            f"{limits.max_nodes:,} YAML nodes (each alias counted at the size of what it "
            "refers to); the whole file is refused (raise WORKFLOW_CORE_CONF_MAX_NODES if "
            "this is intended)",
            setting="WORKFLOW_CORE_CONF_MAX_NODES",
            limit=limits.max_nodes,
            file=self.file,
            template=template,
            key=key,
        )

    def _crossing(self, root: Node, *, by_depth: bool) -> tuple[str | None, Node]:
        """The template (and its node) where the file crosses the depth or node limit."""
        if not isinstance(root, MappingNode):
            return None, root
        limits = self.limits
        running = self.used + 1
        for key_node, value_node in root.value:
            key_size, key_depth = self._known(key_node)
            value_size, value_depth = self._known(value_node)
            running += key_size + value_size
            crossed = (
                max(key_depth, value_depth) + 1 > limits.max_depth
                if by_depth
                else running > limits.max_nodes
            )
            if crossed:
                name = str(key_node.value) if isinstance(key_node, ScalarNode) else None
                return name, value_node
        return None, root  # pragma: no cover - the sum above reaches the total

    def _path(self, node: Node, *, metric: int) -> tuple[str | None, Node]:
        """The key path below ``node`` where the size (0) or depth (1) concentrates.

        Follows the biggest (deepest) child while it holds most of the size (any
        depth) and was written in place; stops before a node reached through an
        alias, so the key names where the alias is used.
        """
        segments: list[str] = []
        while len(segments) < _MAX_KEY_SEGMENTS:
            total = self._known(node)[metric]
            best: tuple[str, Node] | None = None
            best_value = -1
            for label, child in _labelled(node):
                value = self._known(child)[metric]
                if value > best_value:
                    best, best_value = (label, child), value
            if best is None or not isinstance(best[1], CollectionNode):
                break
            if id(best[1]) in self._shared:
                break
            if metric == 0 and best_value * 2 <= total:
                break
            segments.append(best[0])
            node = best[1]
        if not segments:
            return None, node
        text = segments[0]
        for segment in segments[1:]:
            text += segment if segment.startswith("[") else f".{segment}"
        return text, node

    def _known(self, node: Node) -> tuple[int, int]:
        """``(nodes, depth)`` of a node already measured (a lookup: marks nothing)."""
        if not isinstance(node, CollectionNode):
            return (1, 0)
        return self._memo[id(node)]

    def _measure(self, root: Node) -> tuple[int, int]:
        """``(nodes, depth)`` of ``root`` with aliases expanded, each capped above its limit."""
        if not isinstance(root, CollectionNode):
            return (1, 0)
        memo = self._memo
        got = memo.get(id(root))
        if got is not None:
            return got
        size_cap = self.limits.max_nodes + 1
        depth_cap = self.limits.max_depth + 1
        active = {id(root)}
        stack: list[tuple[Node, Iterator[Node], list[int]]] = [(root, _children(root), [1, 0])]
        while True:
            node, children, acc = stack[-1]
            for child in children:
                if not isinstance(child, CollectionNode):
                    acc[0] += 1
                    continue
                ident = id(child)
                got = memo.get(ident)
                if got is None:
                    if ident in active:
                        raise _Recursive(child)
                    active.add(ident)
                    stack.append((child, _children(child), [1, 0]))
                    break
                self._shared.add(ident)
                acc[0] += got[0]
                acc[1] = max(acc[1], got[1])
            else:
                stack.pop()
                active.discard(id(node))
                result = (min(acc[0], size_cap), min(acc[1] + 1, depth_cap))
                memo[id(node)] = result
                if not stack:
                    return result
                parent = stack[-1][2]
                parent[0] += result[0]
                parent[1] = max(parent[1], result[1])


def _too_deep(
    file: str,
    limits: ConfLimits,
    *,
    line: int,
    template: str | None = None,
    key: str | None = None,
) -> ConfLimitError:
    return ConfLimitError(
        f"line {line}: mappings and lists nest more than {limits.max_depth} levels deep "
        "(aliases included); the whole file is refused (raise WORKFLOW_CORE_CONF_MAX_DEPTH "
        "if this is intended)",
        setting="WORKFLOW_CORE_CONF_MAX_DEPTH",
        limit=limits.max_depth,
        file=file,
        template=template,
        key=key,
    )


# ---------------------------------------------------------------------- discovery


def _discover(conf_path: Path) -> list[Path]:
    """Every ``*.yml`` / ``*.yaml`` below ``conf_path``, sorted by relative path.

    Hidden files and folders (``.git``, editor swap files, the ``..data`` links of a
    Kubernetes ConfigMap mount) are skipped. Symlinked folders are followed once.
    """
    found: list[tuple[str, Path]] = []
    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(conf_path, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath)
        for filename in filenames:
            if filename.startswith("."):
                continue
            path = base / filename
            if path.suffix.lower() in YAML_SUFFIXES and path.is_file():
                found.append((path.relative_to(conf_path).as_posix(), path))
    found.sort()
    return [p for _, p in found]


def _read_bounded(path: Path, limit: int) -> bytes:
    """The file's bytes, or its first ``limit + 1`` bytes when it is larger."""
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        raw = fh.read(min(size, limit) + 1)
        while len(raw) <= limit:  # it grew since fstat (or fstat cannot tell)
            more = fh.read(limit + 1 - len(raw))
            if not more:
                break
            raw += more
    return raw


def _stat(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), st.st_mtime_ns, st.st_size)
