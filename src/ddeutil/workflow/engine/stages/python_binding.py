"""Template values in a python ``run`` body are bound as variables, never spliced as code.

The body is compiled once per distinct text, with every ``${{ }}`` standing for a
hidden variable; each run only evaluates the expressions and binds their values.
Whatever bytes a value holds, the code that runs is the code its author wrote.

How each placement is read (the body's syntax tree decides, not a guess):

* **In a code position** (``n = ${{ params.n }} * 2``, ``f(${{ params.x }})``,
  ``f"{${{ params.x }}:>8}"``): the variable holds the value itself, so an int
  stays an int, a str is a str, ``None``, lists and dicts keep their type (lists,
  dicts and sets are copied, so the run context cannot be changed through them).
* **Inside a string literal** of any kind (``'...'``, ``"..."``, triple-quoted,
  raw ``r'...'``, f-strings, implicitly concatenated): the literal becomes an
  f-string that formats the value in with ``str()``, so the string holds the
  value's text exactly, quotes, backslashes, newlines and braces included, and an
  f-string never evaluates braces inside a value.
* **In a comment**: nothing is bound; a comment is never code.

Refused when the pipeline loads (a :class:`~ddeutil.workflow.errors.TemplateError`
naming the expression and the placement), because no binding keeps the value data
there: an expression joined to a name or number (``table_${{ params.x }}``), used
as a name the code defines, assigns or deletes (``${{ params.x }} = 1``, ``def``,
``import``, keyword names, attribute names after a dot), inside a bytes literal,
or inside a ``match`` pattern.

Limits: the value reaches the code as data; code that hands that data to a
program which runs it (``eval``, ``exec``, ``subprocess.run(..., shell=True)``,
SQL text) is the author's program and is not changed.
"""

from __future__ import annotations

import ast
import copy
import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import CodeType
from typing import Any

from ...errors import TemplateError
from ..templating import Expression, Filters, Redact, Template

__all__ = ["FILENAME", "BoundPython", "bind_python"]

FILENAME = "<run>"
"""The file name ``run`` code is compiled under (tracebacks name it)."""

_STR = 115  # ord("s"): the ``!s`` conversion of a formatted value
_MUTABLE = (list, dict, set)
_NAME_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {
    ast.Attribute: ("attr",),
    ast.alias: ("name", "asname"),
    ast.keyword: ("arg",),
    ast.arg: ("arg",),
    ast.FunctionDef: ("name",),
    ast.AsyncFunctionDef: ("name",),
    ast.ClassDef: ("name",),
    ast.ImportFrom: ("module",),
    ast.Global: ("names",),
    ast.Nonlocal: ("names",),
    ast.ExceptHandler: ("name",),
    ast.MatchAs: ("name",),
    ast.MatchStar: ("name",),
    ast.MatchMapping: ("rest",),
    ast.MatchClass: ("kwd_attrs",),
}


@dataclass(frozen=True, slots=True)
class BoundPython:
    """A ``run`` body compiled once, with its expressions as variables.

    Attributes:
        code: The compiled code.
        values: ``(variable, expression, as_code)`` for each bound expression;
            ``as_code`` is true for a code position (the value keeps its type).
    """

    code: CodeType
    values: tuple[tuple[str, Expression, bool], ...]

    def bind(
        self,
        ctx: Mapping[str, Any],
        filters: Filters,
        stage: str | None,
        redact: Redact | None = None,
    ) -> dict[str, Any]:
        """The variables of one run: each expression evaluated against ``ctx``.

        ``redact`` masks a value's text before an error message shortens it.
        """
        out: dict[str, Any] = {}
        for name, expr, as_code in self.values:
            value = expr.evaluate(ctx, filters, stage, redact)
            if as_code and isinstance(value, _MUTABLE):
                value = copy.deepcopy(value)
            out[name] = value
        return out


@functools.lru_cache(maxsize=1024)
def bind_python(body: str) -> BoundPython:
    """Compile ``body`` with every ``${{ }}`` bound as a variable (cached by text).

    Raises:
        SyntaxError: the body is not valid Python (with each expression read as a
            name); ``lineno`` and ``msg`` are the body's.
        TemplateError: malformed ``${{ }}`` syntax, or an expression placed where
            its value cannot stay data (see the module docstring).
    """
    template = Template.parse(body, env=False)
    if template.is_static:
        return BoundPython(_compile(body), ())
    marker = _marker(body)
    names: dict[str, Expression] = {}
    pieces: list[str] = []
    for part in template.parts:
        if type(part) is Expression:
            name = f"{marker}{len(names)}__"
            names[name] = part
            pieces.append(name)
        else:
            pieces.append(str(part))
    text = "".join(pieces)
    try:
        tree = ast.parse(text, FILENAME, "exec")
    except SyntaxError as exc:
        if exc.text is None or marker not in exc.text:
            raise
        raise SyntaxError(
            f"{exc.msg} (a ${{{{ }}}} in code stands for one value; it cannot be joined to "
            "a name, a number or other code)",
            (FILENAME, exc.lineno, exc.offset, exc.text),
        ) from None
    binder = _Binder(marker, names)
    tree = ast.fix_missing_locations(binder.visit(tree))
    _check_names(tree, marker, names)
    code = _compile(tree)
    used = binder.as_code | binder.as_text
    values = tuple((n, e, n in binder.as_code) for n, e in names.items() if n in used)
    return BoundPython(code, values)


def _compile(source: str | ast.Module) -> CodeType:
    with warnings.catch_warnings():
        # an invalid escape such as "\d" warns at compile time; the warning
        # would be raised as an error under -W error and is not the stage's to judge
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return compile(source, FILENAME, "exec")


def _marker(body: str) -> str:
    """A variable-name prefix that does not occur in ``body``."""
    marker = "__wf_value_"
    while marker in body:
        marker += "_"
    return marker


class _Binder(ast.NodeTransformer):
    """Turns string literals holding placeholders into f-strings; records placements."""

    def __init__(self, marker: str, names: Mapping[str, Expression]) -> None:
        self.marker = marker
        self.names = names
        self.as_code: set[str] = set()
        self.as_text: set[str] = set()

    def _split(self, text: str) -> list[ast.expr]:
        """``text`` as literal pieces and ``{placeholder!s}`` values."""
        out: list[ast.expr] = []
        rest = text
        while True:
            start = rest.find(self.marker)
            if start < 0:
                break
            end = rest.index("__", start + len(self.marker)) + 2
            name = rest[start:end]
            if name not in self.names:  # pragma: no cover - the marker is unique
                break
            if start:
                out.append(ast.Constant(rest[:start]))
            self.as_text.add(name)
            out.append(
                ast.FormattedValue(
                    value=ast.Name(id=name, ctx=ast.Load()), conversion=_STR, format_spec=None
                )
            )
            rest = rest[end:]
        if rest:
            out.append(ast.Constant(rest))
        return out

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, str) and self.marker in value:
            return ast.copy_location(ast.JoinedStr(values=self._split(value)), node)
        if isinstance(value, bytes) and self.marker.encode() in value:
            raise self._refuse(value.decode("ascii", "replace"), "is inside a bytes literal")
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        values: list[ast.expr] = []
        for item in node.values:
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                values.extend(self._split(item.value))
            else:
                values.append(self.visit(item))
        node.values = values
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.names and isinstance(node.ctx, ast.Load):
            self.as_code.add(node.id)
        return node

    def visit_MatchValue(self, node: ast.MatchValue) -> ast.AST:
        self._no_marker(node.value, "is inside a match pattern")
        return node

    def visit_MatchMapping(self, node: ast.MatchMapping) -> ast.AST:
        for key in node.keys:
            self._no_marker(key, "is inside a match pattern")
        return self.generic_visit(node)

    def _no_marker(self, node: ast.AST, where: str) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Constant) and self.marker in str(sub.value):
                raise self._refuse(str(sub.value), where)

    def _refuse(self, text: str, where: str) -> TemplateError:
        return _refusal(text, self.marker, self.names, where)


def _refusal(text: str, marker: str, names: Mapping[str, Expression], where: str) -> TemplateError:
    found = next((e for n, e in names.items() if n in text), None)
    return TemplateError(
        f"a ${{{{ }}}} expression that {where} cannot be bound as a value (its text would "
        "become code): read it into a variable first (x = ${{ ... }}) or pass it in `vars`",
        expr=found.source if found is not None else None,
    )


def _check_names(tree: ast.AST, marker: str, names: Mapping[str, Expression]) -> None:
    """Refuse placeholders anywhere but as a value read (``ast.Name`` in Load)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if marker not in node.id:
                continue
            if node.id not in names:
                raise _refusal(node.id, marker, names, "is joined to a name or number")
            if not isinstance(node.ctx, ast.Load):
                raise _refusal(node.id, marker, names, "is a name the code assigns or deletes")
            continue
        for attr in _NAME_FIELDS.get(type(node), ()):
            value = getattr(node, attr, None)
            texts = value if isinstance(value, list) else [value]
            for text in texts:
                if isinstance(text, str) and marker in text:
                    raise _refusal(text, marker, names, "is used as a name in the code")
