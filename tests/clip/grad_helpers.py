"""Helpers shared by the clipping tests: small models with reproducible random gradients.

(A plain module with a unique name, not conftest.py: test folders share one `conftest` name.)
"""

from __future__ import annotations

import torch
from torch import nn


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 16),
        nn.LayerNorm(16),
        nn.Linear(16, 5),
    )


def set_grads(params, seed: int = 0, scale: float = 1.0) -> list[torch.Tensor]:
    """Give every parameter a random gradient; return clones of them."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype) * scale
        out.append(p.grad.clone())
    return out


def grads(params) -> list[torch.Tensor]:
    return [p.grad.clone() for p in params]
