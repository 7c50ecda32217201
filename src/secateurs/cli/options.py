"""What the model commands share: the MODEL argument's options, loading and `--eval`."""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from torch import nn

ArchOption = typer.Option(
    None,
    "--arch",
    help="'package.module:factory' that builds the architecture: needed for a state-dict "
    "MODEL (.pt/.pth/.bin or plain .safetensors) and for a secateurs file of your own model "
    "class (the file's recorded factory is never run without --trust-arch).",
)
TrustArchOption = typer.Option(
    False,
    "--trust-arch",
    help="Let a secateurs file build its model with the factory it records (imports and "
    "calls code the file names), only for files you trust. Plain torch.nn and Hugging Face "
    "models never need it.",
)
TrustPickleOption = typer.Option(
    False,
    "--trust-pickle",
    help="Allow MODEL to be a whole pickled module (torch.save(model)); unpickling runs code "
    "from the file, so only for files you trust.",
)
CodeOption = typer.Option(
    None,
    "--code",
    help="The Python file (your training script) that defines the classes of a pickled "
    "MODEL saved from it (torch.save(model) records them as __main__.MyMLP). The file is "
    "executed as a module (its `if __name__ == '__main__':` block is not), so it needs "
    "--trust-pickle.",
)
EvalOption = typer.Option(
    None,
    "--eval",
    help="'package.module:function' called as function(model) -> float or dict of floats; "
    "reported before and after.",
)

MODEL_HELP = (
    "A secateurs model file, a state dict (.pt/.pth/.bin/.safetensors) with --arch, a Hugging "
    "Face model folder, or a pickled module with --trust-pickle (and --code FILE when its "
    "classes are defined in your script). Nothing a file names is run unless you pass "
    "--trust-arch / --trust-pickle."
)


@contextlib.contextmanager
def cwd_importable() -> Iterator[None]:
    """While importing a module that the user named on the command line (--arch, --eval,
    --data), let it come from the current folder, as `python -m` would. Only then: a module
    name read from a file never reaches an import with the current folder on the path."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)


def load_cli_model(
    model: Path,
    arch: str | None,
    trust_pickle: bool,
    trust_arch: bool = False,
    code: Path | None = None,
) -> nn.Module:
    """Load MODEL in any accepted form (errors are ValueError/FileNotFoundError: exit 2)."""
    from secateurs.io.loading import load_model_any

    guard = cwd_importable() if arch is not None else contextlib.nullcontext()
    with guard:
        return load_model_any(
            model, arch=arch, trust_pickle=trust_pickle, trust_arch=trust_arch, code=code
        )


def resolve_function(spec: str, option: str = "--eval") -> Any:
    """Import 'package.module:function' (a ValueError naming `option` if it does not work)."""
    if spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"{option} must look like 'package.module:function', got {spec!r}")
    module_name, attr = spec.split(":")
    try:
        with cwd_importable():
            module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import {module_name!r} named by {option} {spec!r}: {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{module_name!r} has no function {attr!r} (from {option} {spec!r})")
    return fn


def metrics(fn: Any, model: nn.Module) -> dict[str, float]:
    """Call an --eval function; a float becomes {'metric': value}."""
    value = fn(model)
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"metric": float(value)}
    raise TypeError(f"--eval function returned {type(value).__name__}; expected float or dict")


def metrics_table(before: dict[str, float], after: dict[str, float]) -> str:
    """'name  before  after  change' lines."""
    lines = [f"{'metric':<20} {'before':>12} {'after':>12} {'change':>12}"]
    for k in before.keys() | after.keys():
        b, a = before.get(k, math.nan), after.get(k, math.nan)
        lines.append(f"{k:<20} {b:>12.6g} {a:>12.6g} {a - b:>+12.6g}")
    return "\n".join(lines)
