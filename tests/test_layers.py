"""The package's layers, checked over its import graph (lazy imports included).

Each layer may import its own layer and the layers below it, never one above;
no module may take part in an import cycle. The layers, lowest first, are drawn
by the folders: the foundation modules at the package root, ``schedules/``,
``engine/``, ``store/``, ``notify/``, ``dispatch/``, ``scheduling/``, then the entry points
``app/``, ``api/`` and ``cli/``. The root's public re-export modules
(``pipeline``, ``on``, ``templating``, the package ``__init__`` and
``__main__``) sit above everything. See the README's "Architecture" section.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "ddeutil.workflow"
SOURCE = Path(__file__).resolve().parents[1] / "src" / "ddeutil" / "workflow"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("",),  # foundation: modules at the package root
    ("schedules",),
    ("engine",),
    ("store",),
    ("notify",),
    ("dispatch",),
    ("scheduling",),
    ("app", "api", "cli"),
)
ENTRY = len(LAYERS)
"""Rank of the public re-export modules at the root: above every layer."""
REEXPORTS = frozenset({"__init__", "__main__", "pipeline", "on", "templating"})

SEAM = (
    "ddeutil.workflow.dispatch.records",
    "ddeutil.workflow.dispatch.base",
)
"""The dispatch seam: imports neither the engine nor a store (a Celery worker or
the daemon's parent process uses it without them)."""


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((PACKAGE, *parts))] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> Iterator[str]:
    """Modules of the package that ``name`` imports anywhere in its body."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    base = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                parts = parts[: len(parts) - node.level + 1]
                head = ".".join([*parts, node.module] if node.module else parts)
            else:
                head = node.module or ""
            targets = [head]
            targets += [f"{head}.{alias.name}" for alias in node.names]
        for dotted in targets:
            target = dotted
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            # a module's own packages are imported before it anyway: no edge
            if target.startswith(PACKAGE + ".") and not name.startswith(target):
                yield target


GRAPH = {name: sorted(set(_imports(name))) for name in MODULES}


def rank(name: str) -> int:
    """The layer of module ``name`` (its index in :data:`LAYERS`)."""
    rest = name[len(PACKAGE) + 1 :].split(".") if name != PACKAGE else ["__init__"]
    if (len(rest) == 1 and not _is_package(name)) or name == PACKAGE:
        return ENTRY if rest[0] in REEXPORTS else 0
    for index, folders in enumerate(LAYERS):
        if rest[0] in folders:
            return index
    raise AssertionError(f"module {name} is in no layer: add its folder to LAYERS")


def test_every_module_is_in_a_layer() -> None:
    for name in MODULES:
        rank(name)


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if rank(target) > rank(name)
    ]
    assert upward == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    return found


def test_no_import_cycles() -> None:
    assert _cycles() == []


@pytest.mark.parametrize("seam", [s for s in SEAM if s in MODULES])
def test_the_dispatch_seam_imports_neither_the_engine_nor_a_store(seam: str) -> None:
    reached: set[str] = set()
    todo = [seam]
    while todo:
        for target in GRAPH[todo.pop()]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    heavy = sorted(m for m in reached if rank(m) in (2, 3) or m.startswith(f"{PACKAGE}.scheduling"))
    assert heavy == []


def test_the_checker_sees_an_upward_import() -> None:
    """The graph is real: the scheduler imports the store, which is below it."""
    assert f"{PACKAGE}.store.base" in GRAPH[f"{PACKAGE}.scheduling.scheduler"]
    assert rank(f"{PACKAGE}.store.base") < rank(f"{PACKAGE}.scheduling.scheduler")
