"""Collect the gradients a rule acts on, from a module, a tensor or an iterable of parameters.

Conventions shared by every rule:
- an empty parameter list (for example an exhausted generator) is a ValueError naming
  `parameters`, because it almost always hides a bug;
- parameters whose `.grad` is None (frozen, unused this step) are skipped; if no parameter has
  a gradient the rule is a no-op and reports zero norms;
- sparse gradients are a TypeError (clip them densely yourself, or use a dense embedding).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

Target = nn.Module | torch.Tensor | Iterable[torch.Tensor] | Iterable[dict]


def parameters_of(target: Target) -> list[torch.Tensor]:
    """The parameters named by `target`: a module, one tensor, tensors or optimizer param groups."""
    params: list[torch.Tensor]
    if isinstance(target, nn.Module):
        params = list(target.parameters())
    elif isinstance(target, torch.Tensor):
        params = [target]
    else:
        try:
            items = list(target)
        except TypeError:
            raise TypeError(
                "parameters must be an nn.Module, a tensor or an iterable of tensors, "
                f"got {type(target).__name__}"
            ) from None
        params = []
        for item in items:
            if isinstance(item, dict) and "params" in item:  # optimizer.param_groups
                group = item["params"]
                params.extend([group] if isinstance(group, torch.Tensor) else group)
            elif isinstance(item, torch.Tensor):
                params.append(item)
            else:
                raise TypeError(
                    "parameters must contain tensors (or optimizer param groups), "
                    f"got an item of type {type(item).__name__}"
                )
    if not params:
        raise ValueError(
            "parameters is empty: pass the model or model.parameters() (a generator can be "
            "used only once; pass list(model.parameters()) to reuse it)"
        )
    return _dedupe(params)


def _dedupe(params: list[torch.Tensor]) -> list[torch.Tensor]:
    seen: set[int] = set()
    out = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def with_grads(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """The parameters that have a gradient; a sparse gradient is a TypeError."""
    out = []
    for p in params:
        g = p.grad
        if g is None:
            continue
        if g.is_sparse or g.layout != torch.strided:
            raise TypeError(
                f"sparse gradients cannot be clipped (a parameter of shape {tuple(p.shape)} has "
                f"a {g.layout} gradient); use a dense nn.Embedding(sparse=False)"
            )
        out.append(p)
    return out


def grads_of(target: Target) -> list[torch.Tensor]:
    """The dense gradients of `target`'s parameters, in parameter order."""
    return [p.grad for p in with_grads(parameters_of(target))]  # type: ignore[misc]


def named_parameters_of(target: Target) -> list[tuple[str, torch.Tensor]]:
    """(name, parameter) pairs: module names for a module, `"<i>"` for plain parameters."""
    if isinstance(target, nn.Module):
        seen: set[int] = set()
        out: list[tuple[str, torch.Tensor]] = []
        for name, p in target.named_parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append((name, p))
        if not out:
            raise ValueError("parameters is empty: the module has no parameters")
        return out
    return [(str(i), p) for i, p in enumerate(parameters_of(target))]
