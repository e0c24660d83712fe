"""Models are data, never code: nothing in the service can unpickle, unmarshal or evaluate."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "app").rglob("*.py"), *(ROOT / "model_store").rglob("*.py")])
CODE_LOADERS = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
CODE_RUNNERS = {"eval", "exec", "compile", "__import__"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_code_loading(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & CODE_LOADERS
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in CODE_LOADERS
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in CODE_RUNNERS, f"{path}:{node.lineno}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            # numpy's pickle door: np.load(..., allow_pickle=True)
            assert not any(k.arg == "allow_pickle" for k in node.keywords), f"{path}:{node.lineno}"
            assert node.func.attr not in {"load", "loads"} or not (
                isinstance(node.func.value, ast.Name) and node.func.value.id in {"yaml", "np"}
            ), f"{path}:{node.lineno}"


def test_the_scan_sees_the_packages():
    names = {p.name for p in SOURCES}
    assert {"json_store.py", "service.py", "main.py"} <= names
