"""Template expressions: ``${{ path | filter }}``, ``${VAR}`` and ``$$`` inside strings.

Syntax (SPEC 3.5):

``${{ path | filter | filter(arg, ...) }}``
    ``path`` is a dotted walk through the run context: ``params.<k>``,
    ``matrix.<k>``, ``stages.<id>.outputs.<k>``,
    ``jobs.<id>.stages.<id>.outputs.<k>``, ``release.logical_date``, ``run_id``.
    A segment is letters, digits, ``_`` and ``-`` (``params.run-date``). On a list
    or tuple a whole-number segment is an index (``params.items.0``); on a mapping
    a segment is looked up as written, then as an int when it is one (YAML keys
    such as ``1:``). Only mapping keys and list indexes are followed, never
    attributes. Whitespace inside the braces is ignored.
Filters
    Applied left to right, each called as ``func(value, *args, **kwargs)``.
    Arguments are Python literals only (strings, numbers, ``True``/``False``/
    ``None``, lists, tuples, dicts), checked with :func:`ast.literal_eval` when
    the string is parsed; names and calls are rejected. Built in (defined here
    with ``@custom_filter``): ``abs``, ``str``, ``int``, ``upper``, ``lower``,
    ``fmt(format='%Y-%m-%d %H:%M:%S')`` (strftime of a date/datetime or of ISO
    text) and ``coalesce(default)`` (``default`` when the value is ``None``).
Types
    A string that is exactly one ``${{ }}`` (no text around the braces) renders
    to the value itself, keeping its type. Anywhere else each value is formatted
    in with ``str()``, so a datetime reads ``2024-01-01 00:00:00`` and ``None``
    reads ``None`` (use ``coalesce`` / ``fmt`` to choose another spelling).
``${VAR}``, ``${VAR:-default}``, ``$$``  (only with ``env=True``)
    Read ``environ`` (given at render time, when the stage runs). As in the
    shell, ``:-`` also applies to a set but empty variable. The default is
    literal text up to the first ``}``. ``$$`` is a literal ``$``, so ``$${{``
    writes a literal ``${{``. A ``$`` followed by anything else is kept as is.
    A malformed ``${...}`` is an error, not literal text. With ``env=False``
    (``run`` and ``bash`` bodies, where the shell or Python reads the
    environment itself) none of this applies and only ``${{ }}`` is rendered.

Each distinct string is parsed once (:meth:`Template.parse` is cached) into a
tuple of literal and expression parts; rendering walks that tuple. A string
without ``$`` is returned unchanged without touching the cache.

Errors are :class:`~ddeutil.workflow.errors.TemplateError`: malformed syntax at
parse time; an unknown path (naming the path, the missing segment, the keys that
do exist, and the stage), an unknown filter (listing the known ones), a failing
filter or an unset variable at render time.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from ..errors import TemplateError
from ..registry import custom_filter
from .dates import parse_iso

__all__ = [
    "BUILTIN_FILTERS",
    "EnvVar",
    "Expression",
    "Template",
    "has_expressions",
    "references",
    "render",
]

Filters = Mapping[str, Callable[..., Any]]
Redact = Callable[[str], str]
"""Masks secrets in a text (e.g. ``Masker.text``), applied before an error shortens it."""

_MISSING: Any = object()
_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_-]*"
_PATH = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
_FILTER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?", re.DOTALL)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MAX_KNOWN = 20
_SCALARS = frozenset({int, float, bool, type(None)})
_MAX_REPR = 80


def _short(value: Any, redact: Redact | None) -> str:
    """``repr(value)`` for an error message: masked first, then shortened.

    Cutting first would leave a secret's head that no masker recognises.
    """
    text = repr(value)
    if redact is not None:
        text = redact(text)
    return text if len(text) <= _MAX_REPR else f"{text[: _MAX_REPR - 3]}..."


def _known(container: Mapping[Any, Any]) -> str:
    keys = [str(k) for k in container]
    if not keys:
        return "(none)"
    more = ", ..." if len(keys) > _MAX_KNOWN else ""
    return ", ".join(keys[:_MAX_KNOWN]) + more


# ----------------------------------------------------------------------------- parts


@dataclass(frozen=True, slots=True)
class EnvVar:
    """A ``${VAR}`` / ``${VAR:-default}`` reference."""

    name: str
    default: str | None
    source: str

    def value(self, environ: Mapping[str, str], stage: str | None = None) -> str:
        """The variable's value; the default when unset (or empty, with a default)."""
        found = environ.get(self.name)
        if found:
            return found
        if self.default is not None:
            return self.default
        if found is not None:
            return found
        raise TemplateError(
            f"environment variable {self.name!r} is not set "
            f"(write ${{{self.name}:-default}} for a fallback)",
            expr=self.source,
            stage=stage,
        )


@dataclass(frozen=True, slots=True)
class Expression:
    """One parsed ``${{ path | filters }}`` expression.

    Attributes:
        source: The expression as written, braces included.
        path: The dotted path, e.g. ``params.run-date``.
        segments: ``(key, index)`` per path segment; ``index`` is the int value
            of a whole-number segment, else ``None``.
        filters: ``(name, args, kwargs)`` per filter, arguments already literal.
    """

    source: str
    path: str
    segments: tuple[tuple[str, int | None], ...]
    filters: tuple[tuple[str, tuple[Any, ...], Mapping[str, Any]], ...]

    def evaluate(
        self,
        ctx: Mapping[str, Any],
        filters: Filters,
        stage: str | None = None,
        redact: Redact | None = None,
    ) -> Any:
        """Look the path up in ``ctx`` and apply the filters.

        ``redact`` masks the failing value's text before a filter error shortens it.
        """
        cur: Any = ctx
        for pos, (key, index) in enumerate(self.segments):
            if type(cur) is dict or isinstance(cur, Mapping):
                nxt = cur.get(key, _MISSING)
                if nxt is _MISSING and index is not None:
                    nxt = cur.get(index, _MISSING)
            elif index is not None and isinstance(cur, (list, tuple)):
                nxt = cur[index] if -len(cur) <= index < len(cur) else _MISSING
            else:
                nxt = _MISSING
            if nxt is _MISSING:
                raise self._missing(pos, cur, stage)
            cur = nxt
        for name, args, kwargs in self.filters:
            func = filters.get(name)
            if func is None:
                raise TemplateError(
                    f"unknown filter {name!r}; known filters: {', '.join(sorted(filters)) or '(none)'}",
                    expr=self.source,
                    stage=stage,
                )
            try:
                cur = func(cur, *args, **kwargs)
            except TemplateError:
                raise
            except Exception as exc:
                raise TemplateError(
                    f"filter {name!r} failed on {type(cur).__name__} {_short(cur, redact)}: {type(exc).__name__}: {exc}",
                    expr=self.source,
                    stage=stage,
                ) from exc
        return cur

    def _missing(self, pos: int, container: Any, stage: str | None) -> TemplateError:
        key = self.segments[pos][0]
        where = ".".join(k for k, _ in self.segments[:pos]) or "the context"
        if isinstance(container, Mapping):
            detail = f"{where} has no key {key!r}; known: {_known(container)}"
        elif isinstance(container, (list, tuple)):
            if self.segments[pos][1] is None:
                detail = f"{where} is a list; use a whole-number index, not {key!r}"
            else:
                detail = f"{where} has no index {key} (length {len(container)})"
        else:
            detail = f"{where} is a {type(container).__name__} value and has no key {key!r}"
        return TemplateError(f"unknown path {self.path!r}: {detail}", expr=self.source, stage=stage)


Part = str | Expression | EnvVar


# ---------------------------------------------------------------------------- parsing


def _split_top(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside quotes and brackets."""
    out: list[str] = []
    depth = 0
    quote = ""
    start = 0
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0:
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return out


def _find_close(text: str, start: int) -> int:
    """Index of the ``}}`` closing an expression opened before ``start`` (quotes respected)."""
    quote = ""
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "}" and text.startswith("}}", i):
            return i
        i += 1
    raise TemplateError("unterminated '${{': missing closing '}}'", expr=text)


def _literal(name: str, node: ast.expr, source: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise TemplateError(
            f"filter {name!r} arguments must be literals (strings, numbers, True/False/None, "
            f"lists, tuples, dicts), got {ast.unparse(node)}",
            expr=source,
        ) from None


def _literal_args(name: str, args: str, source: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    try:
        call = ast.parse(f"_f({args})", mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise TemplateError(f"bad arguments for filter {name!r}: {exc}", expr=source) from None
    if not (
        isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "_f"
    ):
        raise TemplateError(f"bad arguments for filter {name!r}: ({args})", expr=source)
    if any(isinstance(node, ast.Starred) for node in call.args) or any(
        kw.arg is None for kw in call.keywords
    ):
        raise TemplateError(f"filter {name!r} arguments cannot use * or **: ({args})", expr=source)
    values = [_literal(name, node, source) for node in call.args]
    kwargs = {
        kw.arg: _literal(name, kw.value, source) for kw in call.keywords if kw.arg is not None
    }
    return tuple(values), kwargs


def _parse_expression(body: str, source: str) -> Expression:
    pieces = _split_top(body, "|")
    path = pieces[0].strip()
    if not path:
        raise TemplateError("empty expression: expected a path such as params.name", expr=source)
    if not _PATH.fullmatch(path):
        raise TemplateError(
            f"bad path {path!r}: expected dotted keys of letters, digits, '_' or '-' "
            "(e.g. params.run-date, stages.extract.outputs.rows)",
            expr=source,
        )
    segments = tuple((s, int(s) if s.isdigit() else None) for s in path.split("."))
    filters = []
    for piece in pieces[1:]:
        m = _FILTER.fullmatch(piece.strip())
        if m is None:
            raise TemplateError(
                f"bad filter {piece.strip()!r}: expected name or name(literal, ...)", expr=source
            )
        name, args = m.group(1), m.group(2)
        values, kwargs = (
            _literal_args(name, args, source) if args is not None and args.strip() else ((), {})
        )
        filters.append((name, values, MappingProxyType(kwargs)))
    return Expression(source, path, segments, tuple(filters))


def _compile(text: str, env: bool) -> tuple[Part, ...]:
    parts: list[Part] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            parts.append("".join(literal))
            literal.clear()

    i = 0
    while True:
        j = text.find("$", i)
        if j < 0:
            literal.append(text[i:])
            break
        literal.append(text[i:j])
        if text.startswith("${{", j):
            end = _find_close(text, j + 3)
            flush()
            parts.append(_parse_expression(text[j + 3 : end], text[j : end + 2]))
            i = end + 2
        elif env and text.startswith("$$", j):
            literal.append("$")
            i = j + 2
        elif env and text.startswith("${", j):
            m = _ENV.match(text, j)
            if m is None:
                raise TemplateError(
                    "malformed '${': expected ${NAME}, ${NAME:-default} or ${{ expression }} "
                    "(write $$ for a literal $)",
                    expr=text,
                )
            flush()
            parts.append(EnvVar(m.group(1), m.group(2), m.group(0)))
            i = m.end()
        else:
            literal.append("$")
            i = j + 1
    flush()
    return tuple(p for p in parts if p != "")


# --------------------------------------------------------------------------- template


@dataclass(frozen=True, slots=True)
class Template:
    """One parsed string: literal text, ``${{ }}`` expressions and ``${VAR}`` references.

    Build with :meth:`parse` (cached); render many times.
    """

    text: str
    env: bool
    parts: tuple[Part, ...]
    _single: Expression | None = field(default=None, repr=False, compare=False)
    _static: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str, *, env: bool = True) -> Template:
        """Parse ``text`` once; later calls with the same arguments return the cached result.

        Raises:
            TemplateError: unterminated ``${{``, a bad path or filter syntax, a
                non-literal filter argument, or (with ``env``) a malformed ``${``.
        """
        return _parse_cached(text, env)

    @property
    def is_static(self) -> bool:
        """True when the string holds no ``${{ }}`` expression (``${VAR}`` may remain)."""
        return not any(type(p) is Expression for p in self.parts)

    @property
    def expressions(self) -> tuple[Expression, ...]:
        """The ``${{ }}`` expressions, in order."""
        return tuple(p for p in self.parts if type(p) is Expression)

    def render(
        self,
        ctx: Mapping[str, Any],
        *,
        filters: Filters,
        environ: Mapping[str, str],
        stage: str | None = None,
        redact: Redact | None = None,
    ) -> Any:
        """Render against ``ctx``: a lone expression keeps its type, else a string.

        Args:
            ctx: The run context (``params``, ``matrix``, ``stages``, ``jobs``,
                ``release``, ``run_id``).
            filters: Name to filter function (see ``registry.load_filters``).
            environ: Variables for ``${VAR}`` (ignored when parsed with ``env=False``).
            stage: Stage id, named in errors.
            redact: Masks secrets in a value shown by an error, before it is shortened.
        """
        if self._single is not None:
            return self._single.evaluate(ctx, filters, stage, redact)
        if self._static is not None:
            return self._static
        out: list[str] = []
        for part in self.parts:
            if type(part) is str:
                out.append(part)
            elif type(part) is Expression:
                out.append(str(part.evaluate(ctx, filters, stage, redact)))
            else:
                out.append(part.value(environ, stage))  # type: ignore[union-attr]
        return "".join(out)


@functools.lru_cache(maxsize=8192)
def _parse_cached(text: str, env: bool) -> Template:
    parts = _compile(text, env)
    single = parts[0] if len(parts) == 1 and type(parts[0]) is Expression else None
    static = None
    if all(type(p) is str for p in parts):
        static = "".join(parts)  # type: ignore[arg-type]
    return Template(text, env, parts, single, static)


# ------------------------------------------------------------------------- recursion


def render(
    value: Any,
    ctx: Mapping[str, Any],
    *,
    filters: Filters,
    environ: Mapping[str, str],
    stage: str | None = None,
    env: bool = True,
    redact: Redact | None = None,
) -> Any:
    """Render every string inside ``value`` (dicts, lists and tuples, recursively).

    Containers are rebuilt (so the result can be changed without touching the
    source, e.g. a pipeline's config); mapping keys are not rendered; any other
    value, and any value a lone expression looks up in ``ctx``, is returned as
    is, never copied.
    """
    return _render(value, ctx, filters, environ, stage, env, redact)


def _render(  # noqa: PLR0917 - hot path: positional arguments are cheaper
    value: Any,
    ctx: Mapping[str, Any],
    filters: Filters,
    environ: Mapping[str, str],
    stage: str | None,
    env: bool,
    redact: Redact | None,
) -> Any:
    cls = type(value)
    if cls is str:
        if "$" not in value:
            return value
        return _parse_cached(value, env).render(
            ctx, filters=filters, environ=environ, stage=stage, redact=redact
        )
    if cls is dict:
        return {k: _render(v, ctx, filters, environ, stage, env, redact) for k, v in value.items()}
    if cls is list:
        return [_render(v, ctx, filters, environ, stage, env, redact) for v in value]
    if cls in _SCALARS:
        return value
    if cls is tuple:
        return tuple(_render(v, ctx, filters, environ, stage, env, redact) for v in value)
    if isinstance(value, str):
        return _render(str(value), ctx, filters, environ, stage, env, redact)
    if isinstance(value, Mapping):
        return {k: _render(v, ctx, filters, environ, stage, env, redact) for k, v in value.items()}
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if "${{" in value else []
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def has_expressions(value: Any, *, env: bool = True) -> bool:
    """True when any string inside ``value`` holds a ``${{ }}`` expression.

    ``env`` must match how the strings will be rendered: with ``env=True`` an
    escaped ``$${{`` is literal text, not an expression.
    """
    return any(not Template.parse(s, env=env).is_static for s in _strings(value))


def references(value: Any, *, env: bool = True) -> set[str]:
    """Every context path referenced inside ``value`` (e.g. ``{"params.run-date"}``)."""
    return {e.path for s in _strings(value) for e in Template.parse(s, env=env).expressions}


# --------------------------------------------------------------------------- filters


@custom_filter("abs")
def filter_abs(value: Any) -> Any:
    """``abs(value)``."""
    return abs(value)


@custom_filter("str")
def filter_str(value: Any) -> str:
    """``str(value)`` (a datetime reads ``2024-01-01 00:00:00``)."""
    return str(value)


@custom_filter("int")
def filter_int(value: Any) -> int:
    """``int(value)``: ``"5"`` -> 5, ``5.9`` -> 5."""
    return int(value)


@custom_filter("upper")
def filter_upper(value: Any) -> str:
    """Upper-case text of ``value``."""
    return str(value).upper()


@custom_filter("lower")
def filter_lower(value: Any) -> str:
    """Lower-case text of ``value``."""
    return str(value).lower()


@custom_filter("fmt")
def filter_fmt(value: Any, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """``strftime(fmt)`` of a date or datetime; ISO 8601 text is parsed first."""
    if isinstance(value, str):
        value = parse_iso(value)
    if isinstance(value, (date, datetime)):
        return value.strftime(fmt)
    raise TypeError(f"fmt needs a date, a datetime or ISO 8601 text, got {type(value).__name__}")


@custom_filter("coalesce")
def filter_coalesce(value: Any, default: Any = None) -> Any:
    """``default`` when ``value`` is ``None``, else ``value``."""
    return default if value is None else value


BUILTIN_FILTERS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {
        "abs": filter_abs,
        "str": filter_str,
        "int": filter_int,
        "upper": filter_upper,
        "lower": filter_lower,
        "fmt": filter_fmt,
        "coalesce": filter_coalesce,
    }
)
"""The built-in filters, without going through the registry (what ``load_filters`` finds here)."""
