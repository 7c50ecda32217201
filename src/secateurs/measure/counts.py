"""Parameter and non-zero counts that see through pruning masks and shared parameters."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


def _unique_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Each distinct parameter (tied weights once) with its name, including pruned ones.

    A pruned weight may be a parametrization: `named_parameters` then yields the dense
    ``original``; we yield the effective (masked) value through the module attribute instead.
    Identity is always that of a parameter that lives as long as the model, never of a
    temporary tensor (whose id Python may reuse).
    """
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        for p_name, p in module.named_parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                yield prefix + p_name, p
        params = getattr(module, "parametrizations", None)
        if params is None:
            continue
        for attr in params:
            originals = [id(o) for o in params[attr].parameters(recurse=False)]
            # Mark the dense originals as seen before named_modules reaches their container.
            fresh = not originals or not set(originals) <= seen
            seen.update(originals)
            if fresh:
                yield prefix + attr, getattr(module, attr)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameter elements (tied weights counted once)."""
    return sum(t.numel() for _, t in _unique_tensors(model))


def count_nonzeros(model: nn.Module) -> int:
    """Number of parameter elements that are not exactly zero (after any mask)."""
    with torch.no_grad():
        return int(sum(int(torch.count_nonzero(t)) for _, t in _unique_tensors(model)))


def parameter_bytes(model: nn.Module) -> int:
    """Bytes of all distinct parameters stored densely."""
    return sum(t.numel() * t.element_size() for _, t in _unique_tensors(model))
