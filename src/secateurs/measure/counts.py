"""Parameter and non-zero counts that see through pruning masks and shared parameters."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


def _unique_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Each distinct parameter (tied weights once) with its name, including pruned ones.

    A pruned weight may be a parametrization: `named_parameters` then yields the dense
    ``original``; we read the effective (masked) value through the module attribute instead.
    """
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False, remove_duplicate=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            yield full, p
        params = getattr(module, "parametrizations", None)
        if params is not None:
            for attr in params:
                for orig in params[attr].parameters(recurse=False):
                    seen.add(id(orig))
                value = getattr(module, attr)
                if id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{mod_name}.{attr}" if mod_name else attr), value


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
