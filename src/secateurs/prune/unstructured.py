"""Unstructured pruning: zero single weights by target sparsity or by absolute threshold."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from secateurs.prune import sharded
from secateurs.prune.criteria import Criterion, LossFn, get_criterion
from secateurs.prune.mask import apply_mask, get_mask, share_mask
from secateurs.prune.select import ScoreFn, select_smallest
from secateurs.prune.summary import LayerReport, PruneReport
from secateurs.prune.targets import (
    DEFAULT,
    Selector,
    Target,
    _Default,
    find_targets,
    kept_dense,
)

Scope = str | Mapping[str, float]


def check_sparsity(value: Any, what: str = "sparsity") -> float:
    """`value` as a float in [0, 1), or a ValueError that says so."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number in [0, 1), got {value!r}")
    if not (0.0 <= float(value) < 1.0) or math.isnan(value):
        raise ValueError(f"{what} must be in [0, 1) (0.9 removes 90% of the weights), got {value}")
    return float(value)


def _scorer(crit: Criterion, t: Target) -> tuple[ScoreFn, Callable[[torch.Tensor], torch.Tensor]]:
    """Score functions in which already pruned weights score -inf (they are removed first)."""
    m = get_mask(t.module, t.attr)
    if m is None:
        return (lambda out: crit.score_into(t, out)), (lambda idx: crit.score_at(t, idx))
    mask = m.mask
    ninf = torch.tensor(-math.inf, device=mask.device)

    def full(out: torch.Tensor | None) -> torch.Tensor:
        s = crit.score_into(t, out)
        if out is not None and s.data_ptr() == out.data_ptr():
            return torch.where(mask, s, ninf, out=s)  # our scratch: overwrite in place
        return torch.where(mask, s.float(), ninf)  # never write into a criterion's own state

    def at(idx: torch.Tensor) -> torch.Tensor:
        return torch.where(mask.reshape(-1)[idx], crit.score_at(t, idx).float(), ninf)

    return full, at


def _dead(t: Target) -> int:
    m = get_mask(t.module, t.attr)
    return 0 if m is None else int(m.mask.numel() - m.mask.sum())


def _select(crit: Criterion, targets: Sequence[Target], sparsity: float) -> list[torch.Tensor]:
    """Keep-masks removing round(sparsity * total) weights of `targets` ranked together."""
    fns = [_scorer(crit, t) for t in targets]
    sizes = [t.numel() for t in targets]
    k = max(round(sparsity * sum(sizes)), sum(_dead(t) for t in targets))
    shapes = [tuple(t.shape) for t in targets]
    return select_smallest([f for f, _ in fns], sizes, k, [s for _, s in fns], shapes)


def _apply(t: Target, keep: torch.Tensor) -> None:
    m = apply_mask(t.module, t.attr, keep)
    for _, module, attr in t.shared:
        share_mask(module, attr, m)


def _layer(t: Target, requested: float | None, just_masked: bool = True) -> LayerReport:
    p = t.param
    m = get_mask(t.module, t.attr)
    if just_masked and m is not None and len(t.module.parametrizations[t.attr]) == 1:
        # `apply_mask` zeroed the stored weight where masked: no need to evaluate the mask
        nonzeros = int(torch.count_nonzero(p.detach()))
    else:
        nonzeros = int(torch.count_nonzero(t.weight.detach()))
    return LayerReport(
        name=t.name,
        shape=tuple(p.shape),
        params=p.numel(),
        nonzeros=nonzeros,
        requested=requested,
    )


def _dict_sparsities(
    targets: Sequence[Target], scope: Mapping[str, float], default: float | None
) -> list[float | None]:
    per = []
    used: set[str] = set()
    for t in targets:
        value = default
        for pattern, s in scope.items():
            if fnmatch.fnmatchcase(t.name, pattern) or fnmatch.fnmatchcase(t.module_name, pattern):
                value = check_sparsity(s, f"scope[{pattern!r}]")
                used.add(pattern)
                break
        per.append(value)
    unused = [p for p in scope if p not in used]
    if unused:
        raise ValueError(
            f"scope keys matched no prunable layer: {unused}; "
            f"prunable layers are {[t.name for t in targets][:10]}"
        )
    return per


def unstructured_(
    model: nn.Module,
    *,
    sparsity: float | None = None,
    threshold: float | None = None,
    scope: Scope = "global",
    criterion: str | Criterion = "magnitude",
    include: Sequence[Selector] | Selector | None = None,
    exclude: Sequence[Selector] | Selector | _Default = DEFAULT,
    force: bool = False,
    data: Iterable | None = None,
    loss_fn: LossFn | None = None,
) -> PruneReport:
    """Prune single weights of `model` in place (masks as parametrizations); return a report.

    - `sparsity`: fraction of the chosen weights that are zero afterwards, counting weights
      already pruned (repeated calls compose: pruned stays pruned, 0.5 then 0.8 gives 0.8).
    - `threshold`: remove weights whose |score| < threshold (for magnitude: |w| < t). A
      threshold that would empty a whole layer is refused unless `force=True`.
    - `scope`: "global" ranks all chosen weights together, "layer" each tensor alone, or a
      dict {name pattern: sparsity} per layer (unmatched layers use `sparsity`, or stay as
      they are when it is None).
    - `criterion`: "magnitude", "random", "taylor", "snip", "movement" or a Criterion;
      `data` / `loss_fn` feed the criteria that need gradients.
    - `include` / `exclude`: see `secateurs.prune.targets.find_targets`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    is_dict = isinstance(scope, Mapping)
    if threshold is not None and sparsity is not None:
        raise ValueError("pass either sparsity= or threshold=, not both")
    if threshold is None and sparsity is None and not is_dict:
        raise ValueError("pass sparsity= (e.g. 0.9) or threshold= (e.g. 0.02)")
    if sparsity is not None:
        sparsity = check_sparsity(sparsity)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise TypeError(f"threshold must be a number >= 0, got {threshold!r}")
        if not threshold >= 0 or math.isinf(threshold):
            raise ValueError(f"threshold must be a finite number >= 0, got {threshold}")
        if is_dict:
            raise ValueError("a per-layer scope dict gives sparsities; use it without threshold=")
    if not is_dict and scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global', 'layer' or a dict of sparsities, got {scope!r}")

    crit = get_criterion(criterion)
    targets = find_targets(model, include=include, exclude=exclude)
    if not targets:
        raise ValueError(
            "no prunable parameters were chosen (check include=/exclude=; by default the last "
            "Linear and embeddings stay dense: pass exclude=[] to prune them too)"
        )
    crit.prepare(model, targets, data=data, loss_fn=loss_fn)
    report = _prune(model, crit, targets, sparsity, threshold, scope, force)
    report.kept.update(kept_dense(model, targets, exclude))
    return report


def _prune(
    model: nn.Module,
    crit: Criterion,
    targets: Sequence[Target],
    sparsity: float | None,
    threshold: float | None,
    scope: Scope,
    force: bool,
) -> PruneReport:
    is_dict = isinstance(scope, Mapping)
    with torch.no_grad():
        if any(sharded.is_sharded(t) for t in targets):  # FSDP2: a collective selection
            if is_dict:
                raise ValueError("a model with sharded weights takes scope='global' or 'layer'")
            layers = sharded.prune(
                model, crit, targets, sparsity=sparsity, threshold=threshold, scope=scope
            )
            method = f"threshold/{crit.name}" if threshold is not None else _name(crit, scope)
            return PruneReport(layers, sparsity, method)
        if threshold is not None:
            return _by_threshold(crit, targets, float(threshold), force)
        if is_dict:
            per = _dict_sparsities(targets, scope, sparsity)  # type: ignore[arg-type]
            for t, s in zip(targets, per, strict=True):
                if s is not None:
                    _apply(t, _select(crit, [t], s)[0])
            return PruneReport(
                [_layer(t, s, s is not None) for t, s in zip(targets, per, strict=True)],
                None,
                _name(crit),
            )
        assert sparsity is not None
        if scope == "layer":
            for t in targets:
                _apply(t, _select(crit, [t], sparsity)[0])
            layers = [_layer(t, sparsity) for t in targets]
        else:
            for t, keep in zip(targets, _select(crit, targets, sparsity), strict=True):
                _apply(t, keep)
            layers = [_layer(t, None) for t in targets]
        return PruneReport(layers, sparsity, _name(crit, scope))


def _name(crit: Criterion, scope: str = "layer") -> str:
    return f"unstructured/{crit.name}/{scope}"


def _by_threshold(
    crit: Criterion, targets: Sequence[Target], threshold: float, force: bool
) -> PruneReport:
    keeps = []
    emptied = []
    for t in targets:
        keep = crit.score(t).abs() >= threshold
        m = get_mask(t.module, t.attr)
        if m is not None:
            keep &= m.mask
        if keep.numel() and not bool(keep.any()):
            emptied.append(t.name)
        keeps.append(keep)
    if emptied and not force:
        raise ValueError(
            f"threshold {threshold} would remove every weight of {emptied[:5]}; lower the "
            "threshold, exclude those layers, or pass force=True (--force)"
        )
    before = sum(int(t.weight.count_nonzero()) for t in targets)
    for t, keep in zip(targets, keeps, strict=True):
        _apply(t, keep)
    report = PruneReport([_layer(t, None) for t in targets], None, f"threshold/{crit.name}")
    if report.nonzeros == before:
        report.notes.append(
            f"nothing was pruned: no |{crit.name} score| of the chosen weights is below the "
            f"threshold {threshold:g}"
        )
    return report
