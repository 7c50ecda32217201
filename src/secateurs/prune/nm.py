"""N:M semi-structured sparsity: in every group of M consecutive weights along the input
dimension, keep the N with the highest score (2:4 and 4:8 are what sparse tensor cores run).

The input dimension is dim 1 for Linear, Conv (``in_channels``; kernel positions are separate
groups), RNN and attention projections, and custom 2-D weights; dim 0 for ConvTranspose (its
weight is ``in x out x k``) and Hugging Face's Conv1D (``in x out``); the last dim for
Embedding. A tensor whose input dimension is not divisible by M is a ValueError naming it
(exclude it, or pick an M that divides it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from secateurs._conv1d import is_conv1d
from secateurs.prune.criteria import Criterion, LossFn, get_criterion
from secateurs.prune.mask import get_mask
from secateurs.prune.summary import PruneReport
from secateurs.prune.targets import DEFAULT, Selector, Target, _Default, find_targets, kept_dense
from secateurs.prune.unstructured import _apply, _layer

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def input_dim(t: Target) -> int:
    """The dimension of `t`'s weight along which N:M groups are formed."""
    if t.param.dim() == 1:
        return 0
    if isinstance(t.module, _TRANSPOSED) or is_conv1d(t.module):
        return 0
    if isinstance(t.module, nn.Embedding | nn.EmbeddingBag):
        return t.param.dim() - 1
    return 1


def nm_keep(scores: torch.Tensor, n: int, m: int, dim: int) -> torch.Tensor:
    """Keep-mask with exactly `n` of every `m` consecutive entries along `dim` (the highest
    scores; among equal scores the earlier position is removed first)."""
    moved = scores.movedim(dim, -1)
    size = moved.shape[-1]
    groups = moved.reshape(*moved.shape[:-1], size // m, m)
    order = torch.argsort(groups, dim=-1, stable=True)  # ascending: the first m-n go
    keep = torch.ones_like(groups, dtype=torch.bool)
    keep.scatter_(-1, order[..., : m - n], False)
    return keep.reshape(moved.shape).movedim(-1, dim).contiguous()


def nm_(
    model: nn.Module,
    n: int = 2,
    m: int = 4,
    *,
    criterion: str | Criterion = "magnitude",
    include: Sequence[Selector] | Selector | None = None,
    exclude: Sequence[Selector] | Selector | _Default = DEFAULT,
    data: Iterable | None = None,
    loss_fn: LossFn | None = None,
) -> PruneReport:
    """Apply N:M sparsity in place to the chosen weights and return a report.

    Composes with earlier masks: weights already pruned are the first to go in their group (a
    group may then hold fewer than `n` non-zeros, which is still a valid N:M pattern).
    """
    for v, what in ((n, "n"), (m, "m")):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{what} must be an int, got {v!r}")
    if not 0 < n < m:
        raise ValueError(f"N:M sparsity needs 0 < n < m (e.g. 2:4), got {n}:{m}")
    crit = get_criterion(criterion)
    targets = find_targets(model, include=include, exclude=exclude)
    if not targets:
        raise ValueError("no prunable parameters were chosen (check include=/exclude=)")
    bad = [
        f"{t.name} {tuple(t.shape)} (dim {input_dim(t)})"
        for t in targets
        if t.shape[input_dim(t)] % m
    ]
    if bad:
        raise ValueError(
            f"{n}:{m} sparsity needs the input dimension divisible by {m}; not so for {bad[:5]}: "
            "exclude those layers (exclude=[...]) or choose another m"
        )
    crit.prepare(model, targets, data=data, loss_fn=loss_fn)
    with torch.no_grad():
        for t in targets:
            s = crit.score(t).float()
            mask = get_mask(t.module, t.attr)
            if mask is not None:
                s = torch.where(mask.mask, s, torch.tensor(-math.inf, device=s.device))
            _apply(t, nm_keep(s, n, m, input_dim(t)))
    report = PruneReport(
        [_layer(t, 1 - n / m) for t in targets], 1 - n / m, f"nm/{n}:{m}/{crit.name}"
    )
    report.kept.update(kept_dense(model, targets, exclude))
    return report


def check_nm(weight: torch.Tensor, n: int, m: int, dim: int = 1) -> bool:
    """True when every group of `m` consecutive entries along `dim` has at most `n` non-zeros."""
    moved = weight.movedim(dim, -1)
    groups = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)
    return bool(((groups != 0).sum(-1) <= n).all())
