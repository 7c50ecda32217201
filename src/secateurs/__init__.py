"""secateurs: gradient clipping and pruning for PyTorch.

Submodules: ``clip`` (gradient and weight clipping), ``prune`` (unstructured, N:M and
structured pruning), ``measure`` (size, MACs, latency, accuracy), ``io`` (safe, compact
save/load), ``train`` (a small training loop), ``search`` (choosing thresholds by validation),
``pipeline`` (train -> clip -> prune -> fine-tune -> measure, e.g.
``iterative_prune_``), ``zoo`` (demo models and embedded data) and ``report`` (HTML report).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("secateurs")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

_SUBMODULES = ("clip", "prune", "measure", "io", "train", "pipeline", "search", "zoo", "report")


def __getattr__(name: str):
    # Import submodules on first use so that `import secateurs` stays cheap.
    if name in _SUBMODULES:
        return importlib.import_module(f"secateurs.{name}")
    raise AttributeError(f"module 'secateurs' has no attribute {name!r}")


__all__ = ["__version__", *_SUBMODULES]
