"""``if`` conditions: a restricted evaluator where values can never become code.

A condition is a Python-like expression over literals and template values::

    if: "${{ params.mode }} == 'full' and ${{ params.rows | int }} > 0"
    if: "'${{ params.mode }}' == 'full'"          # quoted: compared as text
    if: "${{ params.region }} in ['eu', 'us']"

Allowed: literals (strings, numbers, ``True``/``False``/``None``, and the YAML-ish
``true``/``false``/``null``), list/tuple/set displays of those, comparisons
(``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in``, chained), ``is``
/ ``is not`` against ``None``/``True``/``False``, ``and``/``or``/``not``, unary
``-``/``+`` and parentheses. Everything else - calls, attributes, names,
subscripts, arithmetic, imports, lambdas, comprehensions, f-strings, assignment
expressions - is a :class:`~ddeutil.workflow.errors.ConditionError` when the
condition is parsed (at load), not when it runs.

How values are bound (the security property): before the text is parsed, every
``${{ }}`` expression (and ``${VAR}``) is cut out and replaced by a generated
placeholder name; the remaining text is parsed with :func:`ast.parse` and checked
node by node, then compiled to closures (``eval`` is never called). At run time
each placeholder is looked up in the context and used *as a value*:

* unquoted (``${{ params.n }} > 3``) the value keeps its type (an int here);
* inside a quoted string literal (``'${{ params.mode }}' == 'full'``) the value is
  formatted into that string with ``str()``, as in a longer template string.

Either way a param such as ``" or __import__("os").system("id") or "`` is only
ever a string; it is never re-parsed as code. Two adjacent unquoted templates
must be separated by an operator.

A path that does not exist raises :class:`~ddeutil.workflow.errors.TemplateError`
(every template of a condition is rendered before evaluating it); an operation the
values do not support (``None < 1``) raises ConditionError. The result is
``bool()`` of the expression.
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConditionError
from .templating import EnvVar, Expression, Filters, Redact, Template

__all__ = ["Condition"]

Values = Mapping[str, Any]
Node = Callable[[Values], Any]

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_LITERAL_NAMES: dict[str, Any] = {"true": True, "false": False, "null": None}
_CONSTANT_TYPES = (str, int, float, bool, type(None))
_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Call: "function calls",
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.BinOp: "arithmetic",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.JoinedStr: "f-strings",
    ast.NamedExpr: "assignment expressions",
    ast.IfExp: "conditional expressions",
    ast.Dict: "dict displays",
    ast.Starred: "starred expressions",
}


def _text(value: Any) -> str:
    return str(value)


class _Compiler:
    """Checks an ``ast`` tree against the allow-list and turns it into closures."""

    def __init__(self, expr: str, placeholders: frozenset[str], marker: re.Pattern[str]) -> None:
        self.expr = expr
        self.placeholders = placeholders
        self.marker = marker

    def fail(self, message: str) -> ConditionError:
        return ConditionError(message, expr=self.expr)

    def compile(self, node: ast.AST) -> Node:
        if isinstance(node, ast.Constant):
            return self._constant(node.value)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.BoolOp):
            return self._boolop(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [self.compile(e) for e in node.elts]
            make: Callable[[Any], Any] = {ast.List: list, ast.Tuple: tuple, ast.Set: set}[
                type(node)
            ]
            return lambda v: make(f(v) for f in items)
        what = _FORBIDDEN.get(type(node), type(node).__name__)
        raise self.fail(
            f"{what} not allowed; a condition may use literals, ${{{{ }}}} values, comparisons, "
            "in / not in, is None, and / or / not and parentheses"
        )

    def _constant(self, value: Any) -> Node:
        if not isinstance(value, _CONSTANT_TYPES):
            raise self.fail(f"literal {value!r} not allowed")
        if isinstance(value, str) and self.marker.search(value):
            sub = self.marker.sub
            return lambda v: sub(lambda m: _text(v[m.group(0)]), value)
        return lambda _v: value

    def _name(self, name: str) -> Node:
        if name in self.placeholders:
            return lambda v: v[name]
        if name in _LITERAL_NAMES:
            literal = _LITERAL_NAMES[name]
            return lambda _v: literal
        raise self.fail(
            f"name {name!r} not allowed: read values with ${{{{ params.{name} }}}} "
            "and quote text ('...')"
        )

    def _boolop(self, node: ast.BoolOp) -> Node:
        values = [self.compile(e) for e in node.values]
        if isinstance(node.op, ast.And):

            def and_(v: Values) -> Any:
                result: Any = True
                for f in values:
                    result = f(v)
                    if not result:
                        return result
                return result

            return and_

        def or_(v: Values) -> Any:
            result: Any = False
            for f in values:
                result = f(v)
                if result:
                    return result
            return result

        return or_

    def _unary(self, node: ast.UnaryOp) -> Node:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda v: not operand(v)
        if isinstance(node.op, ast.USub):
            return lambda v: -operand(v)
        if isinstance(node.op, ast.UAdd):
            return lambda v: +operand(v)
        raise self.fail("operator '~' not allowed")

    def _compare(self, node: ast.Compare) -> Node:
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
            if isinstance(op, (ast.Is, ast.IsNot)) and not (
                _is_singleton(left) or _is_singleton(right)
            ):
                raise self.fail(
                    "'is' / 'is not' only compare with None, True or False; use == / !="
                )
        funcs = [self.compile(o) for o in operands]
        ops = [_COMPARE[type(op)] for op in node.ops]

        def compare(v: Values) -> bool:
            left = funcs[0](v)
            for op, f in zip(ops, funcs[1:], strict=True):
                right = f(v)
                if not op(left, right):
                    return False
                left = right
            return True

        return compare


def _is_singleton(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is None or isinstance(node.value, bool)
    return isinstance(node, ast.Name) and node.id in _LITERAL_NAMES


def _marker_base(expr: str) -> str:
    base = "__ddw"
    while base in expr:
        base += "_"
    return base


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed ``if`` condition; evaluate it against a run context.

    Build with :meth:`parse` (cached per text), evaluate many times.
    """

    expr: str
    _bindings: tuple[tuple[str, Expression | EnvVar], ...] = field(repr=False, compare=False)
    _node: Node = field(repr=False, compare=False)

    @classmethod
    def parse(cls, expr: str) -> Condition:
        """Parse and check ``expr`` (a YAML bool is read as ``True`` / ``False``).

        Raises:
            ConditionError: empty text, a syntax error, or anything outside the
                allow-list (the message names what was found).
            TemplateError: a malformed ``${{ }}`` inside the condition.
        """
        if isinstance(expr, bool):
            expr = str(expr)
        if not isinstance(expr, str):
            raise ConditionError(
                f"a condition must be a string, got {type(expr).__name__} {expr!r}"
            )
        return _parse_cached(expr)

    @property
    def references(self) -> set[str]:
        """Context paths the condition reads."""
        return {b.path for _, b in self._bindings if isinstance(b, Expression)}

    def evaluate(
        self,
        ctx: Mapping[str, Any],
        *,
        filters: Filters,
        environ: Mapping[str, str],
        stage: str | None = None,
        redact: Redact | None = None,
    ) -> bool:
        """Render the template values and evaluate the condition with them.

        Raises:
            TemplateError: a template path, filter or variable cannot render.
            ConditionError: the values do not support an operation used.
        """
        values: dict[str, Any] = {}
        for name, part in self._bindings:
            if isinstance(part, Expression):
                values[name] = part.evaluate(ctx, filters, stage, redact)
            else:
                values[name] = part.value(environ, stage)
        try:
            return bool(self._node(values))
        except Exception as exc:
            raise ConditionError(
                f"cannot evaluate: {type(exc).__name__}: {exc}", expr=self.expr
            ) from exc


@functools.lru_cache(maxsize=4096)
def _parse_cached(expr: str) -> Condition:
    template = Template.parse(expr, env=True)
    base = _marker_base(expr)
    source: list[str] = []
    bindings: list[tuple[str, Expression | EnvVar]] = []
    for part in template.parts:
        if isinstance(part, str):
            source.append(part)
        else:
            name = f"{base}{len(bindings)}__"
            bindings.append((name, part))
            source.append(name)
    text = "".join(source)
    if not text.strip():
        raise ConditionError("empty condition", expr=expr)
    try:
        # Parentheses let a condition span several lines (YAML folded scalars).
        tree = ast.parse(f"(\n{text}\n)", mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"invalid syntax: {exc.msg}", expr=expr) from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise ConditionError(f"cannot parse: {type(exc).__name__}", expr=expr) from None
    marker = re.compile(re.escape(base) + r"\d+__")
    compiler = _Compiler(expr, frozenset(n for n, _ in bindings), marker)
    try:
        node = compiler.compile(tree.body)
    except RecursionError:
        raise ConditionError("condition is nested too deeply", expr=expr) from None
    return Condition(expr, tuple(bindings), node)
