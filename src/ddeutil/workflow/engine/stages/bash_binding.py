"""Template values in a ``bash`` script are passed as variables, never spliced as code.

The script is scanned once per distinct text with a small bash lexer that knows
the quoting context of every ``${{ }}``; each expression is replaced by a
reference to an environment variable that holds its value when the stage runs.
Bash never parses the result of a parameter expansion as code, so whatever bytes
a value holds (quotes, ``$(...)``, backticks, ``;``, newlines, ``${{ }}``), the
script that runs is the one its author wrote.

Each placement and what it becomes (``V`` is the variable):

==============================  ==============================  ===================
placement                       written                         runs as
==============================  ==============================  ===================
unquoted word                   ``echo ${{ params.x }}``        ``echo "${V}"``
inside double quotes            ``"hi ${{ params.x }}"``        ``"hi ${V}"``
inside single quotes            ``'hi ${{ params.x }}'``        ``'hi '"${V}"''``
inside ``$'...'``               ``$'a ${{ params.x }}'``        ``$'a '"${V}"$''``
``${X:-...}`` word or pattern   ``${X:-${{ params.x }}}``       ``${X:-"${V}"}``
here-document body              ``${{ params.x }}``             ``${V}``
comment                         ``# ${{ params.x }}``           unchanged (inert)
==============================  ==============================  ===================

So an unquoted placement is always one word: no splitting, no globbing. A
quoted here-document (``<<'EOF'``) whose body holds an expression is rewritten
as an unquoted one with its ``\\``, ``$`` and backquotes escaped, which keeps
the rest of the body literal.

Arithmetic evaluates text as code in bash (``a[$(cmd)]`` runs ``cmd``), so a
placement inside ``$(( ))``, ``(( ))``, ``$[ ]``, an array subscript, a
``${x:offset:length}``, a ``for (( ))``, a ``let`` or ``declare -i`` command, or
a ``[[ ]]`` that compares with ``-eq`` / ``-lt`` / ... or tests ``-v`` (also
through a command substitution inside any of these) only accepts an integer
value (``5``, ``-3``, ``"42"``); anything else fails the stage before the script
starts.

Refused when the pipeline loads (a :class:`~ddeutil.workflow.errors.TemplateError`
naming the expression and the placement): an expression right after a
backslash, naming the variable of a ``${...}``, or inside a here-document
delimiter.

Limits: a command that runs its argument as code (``eval``, ``bash -c``,
``source``, ``ssh host CMD``, ``printf -v``, ``read``, SQL text) gets the value
as that argument; the value is still one word, but what the command does with
it is the author's program.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import TemplateError
from ..templating import Expression, Filters, Redact, Template

__all__ = ["BoundBash", "ShellValue", "bind_bash"]

_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DELIMITER = re.compile(r"[A-Za-z0-9_.+-]+", re.ASCII)
_SUBSCRIPT_ASSIGN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\[[^\]]*", re.ASCII)
_ARITH_TESTS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-v", "-R"})
_ARITH_PARTS = frozenset({"subscript", "offset"})
_DECLARE = frozenset({"declare", "typeset", "local", "export", "readonly"})
_RESERVED = frozenset({"!", "{", "then", "do", "else", "elif", "if", "while", "until", "time"})
_BLANK = " \t"
_BREAK = " \t\n;&|()<>"
_MAX_SHOWN = 60


@dataclass(frozen=True, slots=True)
class ShellValue:
    """One expression of a script: the variable that carries it and how it is used."""

    name: str
    expr: Expression
    integer: bool = False
    """Used in shell arithmetic: the value must be an integer."""


@dataclass(frozen=True, slots=True)
class BoundBash:
    """A script scanned once: its text with variable references, and its values."""

    script: str
    values: tuple[ShellValue, ...]

    def environ(
        self,
        ctx: Mapping[str, Any],
        filters: Filters,
        stage: str | None,
        redact: Redact | None = None,
    ) -> dict[str, str]:
        """The variables of one run: ``{name: text}``, each expression evaluated.

        ``redact`` masks a value's text before an error message shortens it.

        Raises:
            TemplateError: an unknown path or failing filter; a value that a shell
                variable cannot hold (a NUL character); a non-integer value in an
                arithmetic placement.
        """
        out: dict[str, str] = {}
        for value in self.values:
            result = value.expr.evaluate(ctx, filters, stage, redact)
            text = str(result)
            if value.integer and (
                isinstance(result, bool)
                or not (isinstance(result, int) or _INTEGER.fullmatch(text))
            ):
                raise TemplateError(
                    f"the value is used in shell arithmetic and must be an integer, got "
                    f"{type(result).__name__} {_shown(redact(text) if redact else text)}",
                    expr=value.expr.source,
                    stage=stage,
                )
            if "\x00" in text:
                raise TemplateError(
                    "the value holds a NUL character, which a shell variable cannot hold",
                    expr=value.expr.source,
                    stage=stage,
                )
            try:
                text.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise TemplateError(
                    "the value is not valid Unicode text (it holds a lone surrogate)",
                    expr=value.expr.source,
                    stage=stage,
                ) from None
            out[value.name] = text
        return out


def _shown(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= _MAX_SHOWN else f"{shown[: _MAX_SHOWN - 3]}..."


@functools.lru_cache(maxsize=1024)
def bind_bash(body: str) -> BoundBash:
    """Scan ``body`` once and bind each ``${{ }}`` to a variable (cached by text).

    Raises:
        TemplateError: malformed ``${{ }}`` syntax, or an expression placed where
            no variable reference keeps it data (see the module docstring).
    """
    template = Template.parse(body, env=False)
    if template.is_static:
        return BoundBash(body, ())
    prefix = "__wf_value_"
    while prefix in body:
        prefix += "_"
    items: list[str | Expression] = []
    for part in template.parts:
        if type(part) is Expression:
            items.append(part)
        else:
            items.extend(str(part))
    scanner = _Scanner(items, prefix)
    script = scanner.run()
    values = tuple(
        ShellValue(name, expr, index in scanner.integer)
        for index, (name, expr) in enumerate(scanner.values)
    )
    return BoundBash(script, values)


# --------------------------------------------------------------------------- lexer

_COMMAND_FRAMES = frozenset({"top", "cmdsub", "backtick", "cond"})


@dataclass(eq=False)
class _Heredoc:
    delimiter: str
    strip_tabs: bool
    quoted: bool
    slot: int
    """Index in the output of the delimiter word (rewritten when the body holds values)."""


@dataclass(eq=False)
class _Frame:
    kind: str
    depth: int = 0
    closer: str = ""
    quoted: bool = False
    word: str = ""
    words: list[str] = field(default_factory=list)
    pending: list[_Heredoc] = field(default_factory=list)
    case: int = 0
    part: str = "name"
    name: str = ""
    refs: list[int] = field(default_factory=list)
    arith_test: bool = False
    doc: _Heredoc | None = None
    body: list[tuple[bool, str]] = field(default_factory=list)
    has_values: bool = False
    line_start: bool = True


class _Scanner:
    """Walks the script's characters and expressions once, tracking bash's quoting."""

    def __init__(self, items: list[str | Expression], prefix: str) -> None:
        self.items = items
        self.prefix = prefix
        self.out: list[str] = []
        self.stack: list[_Frame] = [_Frame("top")]
        self.values: list[tuple[str, Expression]] = []
        self.integer: set[int] = set()
        self.i = 0

    # ------------------------------------------------------------------ helpers

    def peek(self, offset: int = 0) -> str | Expression | None:
        j = self.i + offset
        return self.items[j] if j < len(self.items) else None

    def starts(self, text: str) -> bool:
        return all(self.peek(k) == c for k, c in enumerate(text))

    def emit(self, text: str) -> None:
        frame = self.stack[-1]
        if frame.kind == "heredoc" and frame.doc is not None and frame.doc.quoted:
            frame.body.append((False, text))
        else:
            self.out.append(text)

    def push(self, kind: str, opener: str, **kwargs: Any) -> None:
        self.emit(opener)
        self.i += len(opener)
        frame = self.stack[-1]
        if frame.kind in _COMMAND_FRAMES:
            frame.word += opener
        self.stack.append(_Frame(kind, **kwargs))

    def pop(self, closer: str) -> None:
        frame = self.stack.pop()
        if frame.kind == "cond" and frame.arith_test:
            self.integer.update(frame.refs)
        self.emit(closer)
        self.i += len(closer)
        parent = self.stack[-1]
        if parent.kind in _COMMAND_FRAMES:
            parent.word += closer

    def refuse(self, expr: Expression, where: str) -> TemplateError:
        return TemplateError(
            f"a ${{{{ }}}} expression {where} cannot be passed to the shell as a value "
            "(its text would become code): set a variable first (X=${{ ... }})",
            expr=expr.source,
        )

    def escape(self) -> str:
        """Emit a backslash and the character it escapes; refuse an expression there."""
        nxt = self.peek(1)
        if isinstance(nxt, Expression):
            raise self.refuse(nxt, "right after a backslash")
        text = "\\" + (nxt or "")
        self.emit(text)
        self.i += len(text)
        return text

    def bind(self, expr: Expression, *, integer: bool = False) -> str:
        """A new variable for ``expr``.

        It takes integers only when any enclosing context is arithmetic, so that a
        command substitution inside ``$(( ))`` or a ``let`` cannot carry text into
        arithmetic either; inside ``[[ ]]`` that is decided when its ``]]`` is read.
        """
        index = len(self.values)
        name = f"{self.prefix}{index}"
        self.values.append((name, expr))
        for frame in self.stack:
            if frame.kind == "arith" or (frame.kind == "param" and frame.part in _ARITH_PARTS):
                integer = True
            elif frame.kind in _COMMAND_FRAMES:
                words = frame.words
                if (
                    (words and words[0] == "let")
                    or (
                        words
                        and words[0] in _DECLARE
                        and any(w.startswith("-") and "i" in w for w in words[1:])
                    )
                    or _SUBSCRIPT_ASSIGN.fullmatch(frame.word)
                ):
                    integer = True
                if frame.kind == "cond":
                    frame.refs.append(index)
        if integer:
            self.integer.add(index)
        return name

    # --------------------------------------------------------------------- main

    def run(self) -> str:
        while self.i < len(self.items):
            frame = self.stack[-1]
            item = self.items[self.i]
            if frame.kind in _COMMAND_FRAMES:
                self.command(frame, item)
            elif frame.kind == "dq":
                self.double(frame, item)
            elif frame.kind in ("sq", "ansi"):
                self.single(frame, item)
            elif frame.kind == "arith":
                self.arith(frame, item)
            elif frame.kind == "param":
                self.param(frame, item)
            else:
                self.heredoc(frame, item)
        while len(self.stack) > 1:  # unterminated: bash reports it when the script runs
            frame = self.stack.pop()
            if frame.kind == "heredoc":
                self.close_heredoc(frame)
        return "".join(self.out)

    # ------------------------------------------------------------- command text

    def command(self, frame: _Frame, item: str | Expression) -> None:
        if isinstance(item, Expression):
            self.command_value(frame, item)
            return
        nxt = self.peek(1)
        if item == "\\" and nxt == '"' and frame.kind == "backtick" and self.below_is_dq():
            # inside "`...`" an escaped quote is a quote of the inner command
            self.push("dq", '\\"', closer='\\"')
        elif item == "\\":
            frame.word += self.escape()
        elif item == "'":
            self.push("sq", "'")
        elif item == '"':
            self.push("dq", '"')
        elif item == "`":
            if frame.kind == "backtick":
                self.end_word(frame)
                self.pop("`")
            else:
                self.push("backtick", "`")
        elif item == "$":
            self.dollar(frame)
        elif item == "#" and not frame.word:
            self.comment()
        elif item in _BLANK:
            self.end_word(frame)
            self.emit(item)
            self.i += 1
        elif item == "\n":
            self.end_word(frame)
            self.end_command(frame)
            self.emit(item)
            self.i += 1
            for doc in reversed(frame.pending):
                self.stack.append(_Frame("heredoc", doc=doc))
            frame.pending.clear()
        elif item in ";&|":
            self.end_word(frame)
            self.end_command(frame)
            self.emit(item)
            self.i += 1
        elif item == "(":
            if nxt == "(" and (self.at_command_start(frame) or frame.words[-1:] == ["for"]):
                self.push("arith", "((", closer="))")
                return
            self.end_word(frame)
            self.end_command(frame)
            if frame.kind == "cmdsub" and not frame.case:
                frame.depth += 1
            self.emit(item)
            self.i += 1
        elif item == ")":
            self.end_word(frame)
            if frame.kind == "cmdsub" and not frame.case and frame.depth == 0:
                self.pop(")")
                return
            if frame.kind == "cmdsub" and not frame.case:
                frame.depth -= 1
            self.end_command(frame)
            self.emit(item)
            self.i += 1
        elif item == "<" and nxt == "<" and self.peek(2) != "<":
            self.end_word(frame)
            self.heredoc_operator(frame)
        elif item in "<>":
            self.end_word(frame)
            self.emit(item)
            self.i += 1
        elif (
            item == "["
            and nxt == "["
            and self.at_command_start(frame)
            and self.peek(2) in (" ", "\t", "\n")
        ):
            self.push("cond", "[[")
        elif item == "]" and nxt == "]" and frame.kind == "cond" and not frame.word:
            self.pop("]]")
        else:
            frame.word += item
            self.emit(item)
            self.i += 1

    def command_value(self, frame: _Frame, expr: Expression) -> None:
        name = self.bind(expr)
        frame.word += "\x00"
        self.emit(f'"${{{name}}}"')
        self.i += 1

    def at_command_start(self, frame: _Frame) -> bool:
        return not frame.word and (not frame.words or frame.words[-1] in _RESERVED)

    def end_word(self, frame: _Frame) -> None:
        if not frame.word:
            return
        word = frame.word
        frame.word = ""
        if frame.kind == "cond" and word in _ARITH_TESTS:
            frame.arith_test = True
        if word == "case" and (not frame.words or frame.words[-1] in _RESERVED):
            frame.case += 1
        if word == "esac" and frame.case:
            frame.case -= 1
        frame.words.append(word)

    def end_command(self, frame: _Frame) -> None:
        frame.words = []

    def expansion(self, frame: _Frame, item: str) -> None:
        """Open a backquoted command or a ``$`` expansion (quoted text and here-documents)."""
        if item == "`":
            self.push("backtick", "`")
        else:
            self.dollar(frame)

    def dollar(self, frame: _Frame) -> None:
        if self.starts("$(("):
            self.push("arith", "$((", closer="))")
        elif self.starts("$("):
            self.push("cmdsub", "$(")
        elif self.starts("${"):
            self.push("param", "${")
        elif self.starts("$'"):
            self.push("ansi", "$'")
        elif self.starts('$"'):
            self.push("dq", '$"')
        elif self.starts("$["):
            self.push("arith", "$[", closer="]")
        else:
            frame.word += "$"
            self.emit("$")
            self.i += 1

    def comment(self) -> None:
        while self.i < len(self.items):
            item = self.items[self.i]
            if item == "\n":
                return
            self.emit(item.source if isinstance(item, Expression) else item)
            self.i += 1

    def heredoc_operator(self, frame: _Frame) -> None:
        self.emit("<<")
        self.i += 2
        strip = self.peek() == "-"
        if strip:
            self.emit("-")
            self.i += 1
        while self.peek() in (" ", "\t"):
            self.emit(str(self.peek()))
            self.i += 1
        raw: list[str] = []
        text: list[str] = []
        quoted = False
        while self.i < len(self.items):
            item = self.items[self.i]
            if isinstance(item, Expression):
                raise self.refuse(item, "inside a here-document delimiter")
            if item in _BREAK:
                break
            if item in "'\"":
                quoted = True
                raw.append(item)
                self.i += 1
                while self.i < len(self.items) and self.items[self.i] != item:
                    inner = self.items[self.i]
                    if isinstance(inner, Expression):
                        raise self.refuse(inner, "inside a here-document delimiter")
                    raw.append(inner)
                    text.append(inner)
                    self.i += 1
                if self.i < len(self.items):
                    raw.append(item)
                    self.i += 1
                continue
            if item == "\\":
                quoted = True
                raw.append(item)
                self.i += 1
                nxt = self.peek()
                if isinstance(nxt, Expression):
                    raise self.refuse(nxt, "inside a here-document delimiter")
                if nxt is not None:
                    raw.append(nxt)
                    text.append(nxt)
                    self.i += 1
                continue
            raw.append(item)
            text.append(item)
            self.i += 1
        slot = len(self.out)
        self.emit("".join(raw))
        if raw:
            frame.pending.append(_Heredoc("".join(text), strip, quoted, slot))

    # ------------------------------------------------------------------ quotes

    def double(self, frame: _Frame, item: str | Expression) -> None:
        if isinstance(item, Expression):
            self.emit(f"${{{self.bind(item)}}}")
            self.i += 1
            return
        if frame.closer and self.starts(frame.closer):
            self.pop(frame.closer)
        elif item == "\\":
            self.escape()
        elif item == '"':
            self.pop('"')
        elif item in "$`":
            self.expansion(frame, item)
        else:
            self.emit(item)
            self.i += 1

    def single(self, frame: _Frame, item: str | Expression) -> None:
        if isinstance(item, Expression):
            reopen = "$'" if frame.kind == "ansi" else "'"
            self.emit(f'\'"${{{self.bind(item)}}}"{reopen}')
            self.i += 1
            return
        if item == "\\" and frame.kind == "ansi":
            self.escape()
        elif item == "'":
            self.pop("'")
        else:
            self.emit(item)
            self.i += 1

    # -------------------------------------------------------------- expansions

    def arith(self, frame: _Frame, item: str | Expression) -> None:
        if isinstance(item, Expression):
            self.emit(f"${{{self.bind(item, integer=True)}}}")
            self.i += 1
        elif item == "$":
            self.dollar(frame)
        elif frame.closer == "]" and item == "]":
            self.pop("]")
        elif item == "(":
            frame.depth += 1
            self.emit(item)
            self.i += 1
        elif item == ")" and frame.depth == 0 and self.peek(1) == ")":
            self.pop("))")
        else:
            if item == ")":
                frame.depth -= 1
            self.emit(item)
            self.i += 1

    def param(self, frame: _Frame, item: str | Expression) -> None:
        part = frame.part
        if isinstance(item, Expression):
            if part == "name":
                raise self.refuse(item, "naming the variable of a ${...} expansion")
            if part in ("subscript", "offset"):
                self.emit(f"${{{self.bind(item, integer=True)}}}")
            else:
                self.emit(f'"${{{self.bind(item)}}}"')
            self.i += 1
            return
        if item == "}":
            self.pop("}")
            return
        if part in ("name", "after"):
            nxt = self.peek(1)
            if item == "[" and part == "name":
                frame.part = "subscript"
            elif item == ":":
                frame.part = "word" if isinstance(nxt, str) and nxt in "-=+?" else "offset"
            elif part == "name" and not frame.name and item in "#!":
                frame.name += item
            elif frame.name.strip("#!") and item in "-=+?#%/^,@":
                frame.part = "word"
            else:
                frame.name += item
            self.emit(item)
            self.i += 1
        elif part == "subscript":
            if item == "]":
                frame.part = "after"
            elif item == "$":
                self.dollar(frame)
                return
            self.emit(item)
            self.i += 1
        elif part == "offset":
            if item == "$":
                self.dollar(frame)
                return
            self.emit(item)
            self.i += 1
        else:
            self.word_in_param(frame, item)

    def word_in_param(self, frame: _Frame, item: str) -> None:
        if item == "\\":
            self.escape()
        elif item == '"':
            self.push("dq", '"')
        elif item == "'" and not self.in_double_quotes():
            self.push("sq", "'")
        elif item in "$`":
            self.expansion(frame, item)
        else:
            self.emit(item)
            self.i += 1

    def below_is_dq(self) -> bool:
        """True when the frame under the top one is a double-quoted string."""
        return len(self.stack) > 1 and self.stack[-2].kind == "dq"

    def in_double_quotes(self) -> bool:
        for frame in reversed(self.stack[:-1]):
            if frame.kind == "dq":
                return True
            if frame.kind != "param":
                return False
        return False

    # ------------------------------------------------------------ here-docs

    def heredoc(self, frame: _Frame, item: str | Expression) -> None:
        doc = frame.doc
        assert doc is not None
        if frame.line_start:
            frame.line_start = False
            end = self.i
            while end < len(self.items) and self.items[end] != "\n":
                end += 1
            line = self.items[self.i : end]
            if all(isinstance(c, str) for c in line):
                text = "".join(str(c) for c in line)
                if (text.lstrip("\t") if doc.strip_tabs else text) == doc.delimiter:
                    self.stack.pop()
                    self.close_heredoc(frame)
                    self.out.append(text)
                    self.i = end
                    return
        if isinstance(item, Expression):
            name = self.bind(item)
            if doc.quoted:
                frame.has_values = True
                frame.body.append((True, f"${{{name}}}"))
            else:
                self.out.append(f"${{{name}}}")
            self.i += 1
            return
        if item == "\n":
            frame.line_start = True
            self.emit(item)
            self.i += 1
        elif doc.quoted:
            self.emit(item)
            self.i += 1
        elif item == "\\":
            if self.escape() == "\\\n":
                frame.line_start = True
        elif item in "$`":
            self.expansion(frame, item)
        else:
            self.emit(item)
            self.i += 1

    def close_heredoc(self, frame: _Frame) -> None:
        doc = frame.doc
        assert doc is not None
        if not doc.quoted:
            return
        if not frame.has_values:
            self.out.extend(text for _, text in frame.body)
            return
        if not _DELIMITER.fullmatch(doc.delimiter):
            raise TemplateError(
                f"a ${{{{ }}}} expression is inside a quoted here-document whose delimiter "
                f"{doc.delimiter!r} is not plain letters, digits, '_', '.', '+' or '-'; "
                "use a plain delimiter such as EOF"
            )
        self.out[doc.slot] = doc.delimiter
        for is_value, text in frame.body:
            if is_value:
                self.out.append(text)
            else:
                self.out.append(text.replace("\\", "\\\\").replace("$", "\\$").replace("`", "\\`"))
