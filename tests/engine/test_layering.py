"""Layers import downwards only: the engine and the store know nothing of the web, only the web
layer (``app/api/``, ``app/main.py``) imports FastAPI or Starlette, and no project module is part
of an import cycle.

Imports are read from the source (``ast``), function-level ones included: a cycle hidden by a
function-level import is still a cycle. Imports under ``if TYPE_CHECKING:`` are left out: they
never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "model_store")
WEB = ("fastapi", "starlette")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = module_files()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except in ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(module: str) -> set[str]:
    """The modules ``module`` imports, by absolute dotted name (relative imports resolved;
    ``from package import name`` counts ``package.name`` when that is a module)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        found.add(source)
        found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


def project_graph() -> dict[str, set[str]]:
    return {m: {i for i in imported_modules(m) if i in MODULES and i != m} for m in MODULES}


def test_engine_and_store_import_without_the_web_stack():
    code = (
        "import sys; import app.engine, model_store; "
        "bad = [m for m in ('fastapi', 'starlette', 'pydantic') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_only_the_web_layer_imports_fastapi_or_starlette():
    offenders = {
        module: sorted(i for i in imported_modules(module) if i.split(".")[0] in WEB)
        for module in MODULES
        if not (module.startswith("app.api.") or module in ("app.api", "app.main"))
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_the_core_loads_without_the_web_stack():
    """In a fresh interpreter, as a training child starts (``app.training.job`` and what its
    job imports when it runs): no FastAPI, no Starlette."""
    core = ["app.errors", "app.media", "app.decode", "app.service", "app.training.job"]
    core.append("app.training.runner")
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {core!r}]; "
        f"bad = [m for m in sys.modules if m.split('.')[0] in {WEB!r}]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_worker_entry_point_imports_nothing_heavy():
    """``python -m app.worker``'s training children are spawned: each imports the parent's main
    module (``app.worker``) before its initializer limits the BLAS threads to one. Had that
    module imported NumPy, every child would run OpenBLAS with a thread per core, and two
    workers' children oversubscribe the cores (measured: 2 workers no faster than 1)."""
    code = (
        "import sys, app.worker; "
        "bad = [m for m in ('numpy', 'fastapi', 'procrastinate', 'psycopg') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that ends where it starts), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph[node]):
            cycle = visit(nxt)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_among_the_project_s_modules():
    cycle = find_cycle(project_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_import_graph_sees_relative_and_function_level_imports():
    graph = project_graph()
    assert "app.decode" in graph["app.training.job"]  # imported inside train_from_body
    assert "app.errors" in graph["app.decode"]  # from .errors import ...
    assert "app.api.errors" in graph["app.main"]  # from .api import errors
    assert "app.schemas" not in graph["app.training.job"]  # under TYPE_CHECKING only
