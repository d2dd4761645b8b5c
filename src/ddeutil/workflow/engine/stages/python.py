"""The python stage: run a block of code in a fresh namespace.

```yaml
- name: "Count rows"
  id: count
  vars:                      # injected as variables; templates rendered
    rows: ${{ stages.extract.outputs.rows }}
  run: |
    total = sum(rows)
    label = f"{total} rows"
```

Outputs are the top-level names the code creates or re-binds whose values are
JSON-able (``None``, bools, numbers, strings, dates and datetimes, and lists,
tuples and string-keyed dicts of those): ``total`` and ``label`` above, not
``rows`` (unchanged), and never modules, functions, classes or dunder names.

The code is compiled once per distinct text (cached), and a syntax error is a
load error. A ``${{ }}`` inside ``run`` is never spliced into the code as text:
it is bound as a variable (see :mod:`.python_binding`), so a value is data
whatever it holds; ``${VAR}`` is not rendered (read ``os.environ`` in the code).
The stage's cancel token is available to the code as ``cancel_token``. An
exception fails the stage with its type, message and the line of ``run`` it came
from.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from ...cancellation import is_process_stop
from ...errors import TemplateError
from ..context import RunContext
from .base import BaseStage, StageCall, StagePlan, stage_error
from .python_binding import FILENAME, bind_python

if TYPE_CHECKING:
    from ...registry import HookRegistry

__all__ = ["PyStage", "compile_run", "is_jsonable"]

_SCALARS = frozenset({str, int, float, bool, type(None)})


compile_run = bind_python
"""Compile a ``run`` body, its ``${{ }}`` bound as variables (cached by its text)."""


def is_jsonable(value: Any) -> bool:
    """True for values a run record can hold (see the module docstring)."""
    cls = type(value)
    if cls in _SCALARS:
        return True
    if cls is list or cls is tuple:
        return all(is_jsonable(v) for v in value)
    if cls is dict:
        return all(type(k) is str and is_jsonable(v) for k, v in value.items())
    return isinstance(value, (str, int, float, date)) and not isinstance(value, type)


def _summary(exc: BaseException, code: str) -> str:
    """``Type: message (line N of run: <source line>)``, plus the innermost frame."""
    import traceback  # only on failure: keeps the engine's import light

    frames = traceback.extract_tb(exc.__traceback__)
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    ours = [f for f in frames if f.filename == FILENAME]
    if ours:
        lineno = ours[-1].lineno or 0
        lines = code.splitlines()
        source = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
        text += f" (line {lineno} of run: {source})"
    if frames and frames[-1].filename != FILENAME:
        last = frames[-1]
        text += f" [in {last.name} at {last.filename}:{last.lineno}]"
    return text


class PyStage(BaseStage):
    """``run``: Python code; ``vars``: values injected as variables."""

    kind: ClassVar[str] = "python"

    run: str = Field(description="Python code; each ${{ }} is bound as a value, never as code")
    vars: dict[str, Any] = Field(
        default_factory=dict, description="variables injected into the code"
    )

    @field_validator("run")
    @classmethod
    def _compile(cls, code: str) -> str:
        try:
            compile_run(code)
        except SyntaxError as exc:
            raise ValueError(f"syntax error in run, line {exc.lineno}: {exc.msg}") from None
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return code

    @field_validator("vars")
    @classmethod
    def _identifiers(cls, values: dict[str, Any]) -> dict[str, Any]:
        for name in values:
            if not name.isidentifier():
                raise ValueError(f"vars key {name!r} is not a Python identifier")
        return values

    def _kind_templates(self) -> dict[str, Any]:
        return {"vars": self.vars}

    def _body(self, hooks: HookRegistry) -> Any:
        return compile_run(self.run)

    def templated_values(self) -> list[tuple[str, Any, bool]]:
        return [*super().templated_values(), ("run", self.run, False), ("vars", self.vars, True)]

    def _run(
        self, plan: StagePlan, ctx: Mapping[str, Any], rc: RunContext, call: StageCall
    ) -> dict[str, Any]:
        body = plan.body
        values = (
            self.render(self.vars, ctx, rc, call.label) if "vars" in plan.templated else self.vars
        )
        namespace: dict[str, Any] = {
            "__builtins__": builtins,
            "__name__": "__stage__",
            "cancel_token": call.token,
        }
        namespace.update(values)
        if body.values:
            namespace.update(body.bind(ctx, rc.filters, call.label, rc.masker.text))
        before = dict(namespace)
        try:
            exec(body.code, namespace)  # noqa: S102 - running the user's code is this stage's job
        except BaseException as exc:  # SystemExit, KeyboardInterrupt, ... fail the stage too
            if is_process_stop(exc):
                raise
            raise stage_error(_summary(exc, self.run), call, rc) from exc
        missing = object()
        return {
            name: value
            for name, value in namespace.items()
            if before.get(name, missing) is not value
            and not name.startswith("__")
            and is_jsonable(value)
        }
