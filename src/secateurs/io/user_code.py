"""Unpickle a whole model whose classes live in the user's own script.

``torch.save(model, "model.pth")`` run from ``train.py`` pickles the model's class as
``__main__.MyMLP``: the module that was ``__main__`` when the file was written. Any other
process has a different ``__main__``, so plain unpickling fails with "Can't get attribute
'MyMLP' on <module '__main__'>". Given the script (``code="train.py"``), this module

1. runs the script as an ordinary module named after the file (``train``), so its
   ``if __name__ == "__main__":`` block (the training) does not run; the script's folder
   is searched first for its own imports, as Python does when it runs a script;
2. unpickles with an unpickler that looks ``__main__`` (and the script's own module name)
   up in that module first.

Running the script executes its code, and unpickling can call anything the file names: both
are for trusted files only, which is why the callers require ``trust_pickle=True``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def run_user_code(path: str | os.PathLike) -> types.ModuleType:
    """Run the Python file `path` as a module named after it and return the module.

    The module is registered in ``sys.modules`` under its name unless another module of that
    name is already imported (so a later ``import train`` reuses it and recorded
    architectures that name ``train:MyMLP`` rebuild without running the file again).
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"--code file not found: {path}")
    if file.suffix != ".py":
        raise ValueError(f"--code must be a Python file (.py), got {path}")
    name = file.stem
    existing = sys.modules.get(name)
    if existing is not None and _same_file(existing, file):
        return existing
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot run {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    register = name.isidentifier() and existing is None
    if register:
        sys.modules[name] = module  # as import does: classes can find their own module
    try:
        with _script_folder_first(file.parent):
            spec.loader.exec_module(module)
    except BaseException as e:
        if register:
            sys.modules.pop(name, None)
        if isinstance(e, Exception):
            raise ValueError(
                f"running --code {path} failed: {type(e).__name__}: {_first_line(e)}"
            ) from e
        raise
    return module


def torch_load_with_code(path: str | os.PathLike, code: types.ModuleType) -> Any:
    """``torch.load(path, weights_only=False)`` resolving ``__main__`` names in `code`."""
    return torch.load(
        path, map_location="cpu", weights_only=False, pickle_module=_pickle_module(code)
    )


def _pickle_module(code: types.ModuleType) -> types.ModuleType:
    """A module object with pickle's interface whose Unpickler knows the user's classes."""
    own = {"__main__", code.__name__}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if module in own:
                target: Any = code
                for part in name.split("."):
                    target = getattr(target, part, None)
                    if target is None:
                        break
                if target is not None:
                    return target
            return super().find_class(module, name)

    mod = types.ModuleType("secateurs_user_pickle")
    mod.Unpickler = Unpickler  # type: ignore[attr-defined]
    mod.load = lambda f, **kw: Unpickler(f, **kw).load()  # type: ignore[attr-defined]
    mod.loads = pickle.loads  # type: ignore[attr-defined]
    mod.__version__ = "1"  # type: ignore[attr-defined]
    return mod


def _same_file(module: types.ModuleType, file: Path) -> bool:
    origin = getattr(module, "__file__", None)
    return origin is not None and Path(origin).resolve() == file


@contextlib.contextmanager
def _script_folder_first(folder: Path) -> Iterator[None]:
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
