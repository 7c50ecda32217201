"""Tiny sweep configurations for the search tests (they run in a second or two)."""

from __future__ import annotations

import copy
from typing import Any

TINY: dict[str, Any] = {
    "model": "mlp",
    "model_kwargs": {"sizes": [64, 32, 10]},
    "data": "digits",
    "evaluation": {"kind": "holdout", "val": 0.25},
    "budget": {"train_steps": 60, "batch_size": 64, "lr": 0.003},
    "space": {"prune": {"sparsity": [0.3, 0.6, 0.9]}},
    "objective": {"tolerance": 0.02},
    "sampler": "grid",
    "seed": 0,
}


def tiny(**changes: Any) -> dict[str, Any]:
    """A copy of TINY with top-level keys replaced."""
    cfg = copy.deepcopy(TINY)
    cfg.update(copy.deepcopy(changes))
    return cfg
