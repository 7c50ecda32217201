"""Leaving masks behind: bake them into plain weights, or drop them; report sparsity."""

from __future__ import annotations

import torch
from torch import nn

from secateurs.prune.mask import masked_modules, remove_mask
from secateurs.prune.summary import LayerReport, PruneReport


def make_permanent(model: nn.Module) -> nn.Module:
    """Replace every pruning mask by its effect: plain modules whose pruned weights are 0.

    The Parameter objects are kept (optimizers and tied weights stay valid). Returns `model`.
    """
    for _, module, name, _mask in masked_modules(model):
        remove_mask(module, name, apply=True)
    return model


def remove_masks(model: nn.Module) -> nn.Module:
    """Drop every pruning mask without zeroing anything more: pruned weights may regrow if
    training continues (they hold zero at prune time). Returns `model`."""
    for _, module, name, _mask in masked_modules(model):
        remove_mask(module, name, apply=False)
    return model


def sparsity_report(model: nn.Module, *, include_all: bool = True) -> PruneReport:
    """Parameters and non-zeros of every distinct tensor of `model`, masks seen through.

    With `include_all=False` only the tensors that `find_targets` would prune by default
    (``exclude=[]``) are listed.
    """
    from secateurs.measure.counts import _unique_tensors
    from secateurs.prune.targets import check_has_values

    check_has_values(model)

    if include_all:
        items = list(_unique_tensors(model))
    else:
        from secateurs.prune.targets import find_targets

        items = [(t.name, t.weight) for t in find_targets(model, exclude=[])]
    layers = []
    with torch.no_grad():
        for name, t in items:
            layers.append(
                LayerReport(
                    name=name,
                    shape=tuple(t.shape),
                    params=t.numel(),
                    nonzeros=int(torch.count_nonzero(t)),
                    nbytes=t.numel() * t.element_size(),
                )
            )
    return PruneReport(layers, None, "sparsity_report")
