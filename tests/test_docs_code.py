"""The Python in README.md and docs/ names things that exist.

Every ```python block must parse; every name it imports from secateurs must exist, every
attribute it reads from a secateurs module must exist, and what it calls must be callable
(`prune.nm(...)` names a submodule since the in-place function became `prune.nm_`). A rename
that leaves the documentation behind fails here.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The Keras examples import keras, which needs a backend; secateurs runs on PyTorch.
os.environ.setdefault("KERAS_BACKEND", "torch")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
# Short snippets use the package's modules under their usual names without importing them.
CONVENTIONAL = {"prune": "secateurs.prune", "io": "secateurs.io", "sio": "secateurs.io"}


def _blocks() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for i, match in enumerate(BLOCK.finditer(text)):
            out.append((f"{page.relative_to(ROOT)}#{i}", match.group(1)))
    return out


def _uses(tree: ast.AST) -> list[tuple[str, bool]]:
    """(dotted name taken from secateurs, whether the code calls it)."""
    names: dict[str, str] = dict(CONVENTIONAL)  # local name -> secateurs path
    uses: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "secateurs":
                    names[alias.asname or alias.name] = alias.name
                    uses.append((alias.name, False))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "secateurs":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names[alias.asname or alias.name] = full
                uses.append((full, False))
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names and id(node) in called:
            uses.append((names[node.id], True))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            base = names.get(node.value.id)
            if base is not None:
                uses.append((f"{base}.{node.attr}", id(node) in called))
    return uses


def _resolve(dotted: str) -> object:
    """The object `dotted` names, found as `from a.b import c` finds it: an attribute of the
    module first, a submodule only where there is no such attribute."""
    parts = dotted.split(".")
    obj: object = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
        else:
            obj = importlib.import_module(".".join(parts[: i + 1]))
    return obj


@pytest.mark.parametrize(("where", "code"), _blocks(), ids=[w for w, _ in _blocks()])
def test_documented_python_names_exist(where: str, code: str) -> None:
    tree = ast.parse(code, filename=where)
    for dotted, is_called in _uses(tree):
        try:
            obj = _resolve(dotted)
        except (ModuleNotFoundError, AttributeError) as e:
            pytest.fail(f"{where}: {dotted} does not exist ({e})")
        if is_called:
            assert callable(obj), f"{where}: {dotted} is called but is {type(obj).__name__}"


def test_there_is_documented_python() -> None:
    assert len(_blocks()) >= 8
