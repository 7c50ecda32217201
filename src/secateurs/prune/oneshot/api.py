"""`wanda_` and `sparsegpt_`: one-shot pruning from a little calibration data, block by block.

The model is pruned in the order it computes: the inputs of the first repeated block are
captured (see `blocks`), then for each block the calibration inputs run through it once with
hooks that gather each layer's input statistics, its layers are pruned, and it runs once more
so that the next block sees the outputs of the already pruned block. Only one block's
activations (for all calibration batches) are held at a time. Prunable layers outside the
blocks, or every layer when the model has no such stack, are pruned one at a time in the
order they run, each from a forward pass that stops right after it.

Masks are the usual `Mask` parametrizations (fine-tuning, saving, `make_permanent`, export
work as for any other pruning); SparseGPT also updates the weights it keeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from secateurs._inputs import move_inputs
from secateurs.prune.mask import get_mask
from secateurs.prune.oneshot import blocks as blk
from secateurs.prune.oneshot.layers import (
    Unit,
    attention_owners,
    one_shot_types,
    recording,
    units,
)
from secateurs.prune.oneshot.rules import Pattern, SparseGPT, Wanda
from secateurs.prune.summary import PruneReport
from secateurs.prune.targets import DEFAULT, Selector, Target, _Default, find_targets
from secateurs.prune.unstructured import _apply, _layer, check_sparsity


class Rule(Protocol):
    """A one-shot rule: a statistic class over a layer's inputs, and `prune` from it."""

    name: str
    Statistic: Any

    def prune(
        self, w: torch.Tensor, stat: Any, pattern: Pattern, pruned: torch.Tensor | None, name: str
    ) -> tuple[torch.Tensor | None, torch.Tensor]: ...


def wanda_(
    model: nn.Module,
    calibration: Iterable[Any],
    *,
    sparsity: float | None = None,
    nm: tuple[int, int] | None = None,
    include: Sequence[Selector] | Selector | None = None,
    exclude: Sequence[Selector] | Selector | _Default = DEFAULT,
) -> PruneReport:
    """Prune `model` in place by Wanda (|W| times input norm, per output row); return a report.

    `calibration`: model inputs, each a tensor, a tuple (positional) or a dict (keywords, as
    Hugging Face models take them), e.g. 128 tokenized passages in a few batches. Give
    `sparsity` (fraction of every row removed) or `nm` = (n, m) (keep n of every m inputs).
    `include` / `exclude` choose the layers as in `unstructured_` (by default every Linear,
    GPT-2 Conv1D and attention projection except the last Linear, the output head).
    """
    return _one_shot(model, calibration, Wanda(), _pattern(sparsity, nm), include, exclude)


def sparsegpt_(
    model: nn.Module,
    calibration: Iterable[Any],
    *,
    sparsity: float | None = None,
    nm: tuple[int, int] | None = None,
    block_size: int = 128,
    dampening: float = 0.01,
    include: Sequence[Selector] | Selector | None = None,
    exclude: Sequence[Selector] | Selector | _Default = DEFAULT,
) -> PruneReport:
    """Prune `model` in place by SparseGPT (layer-wise reconstruction); return a report.

    As `wanda_`, and: the weights kept are updated to compensate the removed ones;
    `block_size` columns share a mask choice and a lazy update; `dampening` (fraction of the
    mean Hessian diagonal) regularises H. A Hessian that is singular even after dampening is
    a `SingularHessianError` naming the layer.
    """
    rule = SparseGPT(block_size=block_size, dampening=dampening)
    return _one_shot(model, calibration, rule, _pattern(sparsity, nm), include, exclude)


def _pattern(sparsity: float | None, nm: tuple[int, int] | None) -> Pattern:
    if (sparsity is None) == (nm is None):
        raise ValueError("pass sparsity= (e.g. 0.5) or nm= (e.g. (2, 4)), exactly one")
    if nm is not None:
        if (
            not isinstance(nm, tuple | list)
            or len(nm) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in nm)
        ):
            raise TypeError(f"nm must be a pair of ints (n, m) such as (2, 4), got {nm!r}")
        if not 0 < nm[0] < nm[1]:
            raise ValueError(f"N:M sparsity needs 0 < n < m (e.g. (2, 4)), got {nm[0]}:{nm[1]}")
        return Pattern(nm=(int(nm[0]), int(nm[1])))
    return Pattern(sparsity=check_sparsity(sparsity))


def _calibration(calibration: Iterable[Any], device: torch.device) -> list[Any]:
    if isinstance(calibration, torch.Tensor | Mapping):
        raise TypeError(
            "calibration must be an iterable of model inputs (a list of batches), not one "
            "batch: wrap it as [batch]"
        )
    batches = [move_inputs(b, device) for b in calibration]  # a BatchEncoding becomes a dict
    if not batches:
        raise ValueError("calibration is empty: give at least one batch of model inputs")
    return batches


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@contextlib.contextmanager
def _calibrating(model: nn.Module) -> Iterator[None]:
    """Eval mode, no gradients, and no key/value cache for Hugging Face models."""
    was_training = model.training
    config = getattr(model, "config", None)
    cache = getattr(config, "use_cache", None)
    model.eval()
    if cache is not None:
        config.use_cache = False  # type: ignore[union-attr]
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)
        if cache is not None:
            config.use_cache = cache  # type: ignore[union-attr]


def _plan(
    model: nn.Module,
    include: Sequence[Selector] | Selector | None,
    exclude: Sequence[Selector] | Selector | _Default,
    pattern: Pattern,
) -> list[tuple[Target, list[Unit]]]:
    targets = find_targets(
        model, include=one_shot_types(model) if include is None else include, exclude=exclude
    )
    if not targets:
        raise ValueError("no Linear layers to prune (check include=/exclude=)")
    owners = attention_owners(model)
    plan, unfit = [], []
    for t in targets:
        u = units(t, owners)
        if u is None:
            unfit.append(t.name)
        else:
            plan.append((t, u))
    if unfit:
        raise ValueError(
            f"one-shot pruning handles Linear-like weights only, not {unfit[:5]}: exclude them "
            "(exclude=[...]) or prune them with unstructured_"
        )
    if pattern.nm is not None:
        m = pattern.nm[1]
        bad = [t.name for t, us in plan if us[0].in_features % m]
        if bad:
            raise ValueError(
                f"{pattern} sparsity needs the input size divisible by {m}; not so for "
                f"{bad[:5]}: exclude those layers or choose another m"
            )
    return plan


def _prune_target(t: Target, us: list[Unit], stats: list[Any], rule: Rule, p: Pattern) -> None:
    existing = get_mask(t.module, t.attr)
    new = t.param.detach().clone()
    keep = torch.ones(new.shape, dtype=torch.bool, device=new.device)
    changed = False
    for u, stat in zip(us, stats, strict=True):
        pruned = None
        if existing is not None:
            old = existing.mask.t() if u.transposed else existing.mask
            pruned = ~old[u.rows]
        w, k = rule.prune(u.matrix(), stat, p, pruned, name=t.name)
        if w is not None:
            u.write(new, w)
            changed = True
        u.write(keep, k)
    if changed:
        t.param.copy_(new)
    _apply(t, keep)


def _gather(rule: Rule, us: list[Unit], calls: Sequence[Any], forward: Any) -> list[Any]:
    """Statistics of each unit's inputs over every call of `forward`. Units fed the same
    input (q/k/v projections, gate/up) share one statistic: one Hessian, not three."""
    shared: dict[tuple[int, str], tuple[Unit, Any]] = {}
    for u in us:
        key = (id(u.source), u.which)
        if key not in shared:
            shared[key] = (u, rule.Statistic(u.in_features, u.target.param.device))
    with recording([u for u, _ in shared.values()], [s.update for _, s in shared.values()]):
        for c in calls:
            forward(c)
    return [shared[(id(u.source), u.which)][1] for u in us]


def _one_shot(
    model: nn.Module,
    calibration: Iterable[Any],
    rule: Rule,
    pattern: Pattern,
    include: Sequence[Selector] | Selector | None,
    exclude: Sequence[Selector] | Selector | _Default,
) -> PruneReport:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    plan = _plan(model, include, exclude, pattern)
    batches = _calibration(calibration, _device(model))
    with _calibrating(model):
        done: set[int] = set()
        owners = {id(m) for _, us in plan for u in us for m in (u.source, u.target.module)}
        for stack in blk.candidates(model, owners):
            if blk.is_chain(model, list(stack), batches[0]):
                _by_blocks(model, list(stack), plan, batches, rule, pattern, done)
                break
        _by_layers(model, [(t, us) for t, us in plan if id(t) not in done], batches, rule, pattern)
    layers = [_layer(t, pattern.requested) for t, _ in plan]
    return PruneReport(layers, pattern.requested, f"{rule.name}/{pattern}")


def _by_blocks(
    model: nn.Module,
    stack: list[nn.Module],
    plan: list[tuple[Target, list[Unit]]],
    batches: list[Any],
    rule: Rule,
    pattern: Pattern,
    done: set[int],
) -> None:
    calls = blk.capture(model, stack[0], batches)
    for block in stack:
        inside = {id(m) for m in block.modules()}
        mine = [(t, us) for t, us in plan if id(t.module) in inside and id(t) not in done]
        all_units = [u for _, us in mine for u in us]
        stats = iter(_gather(rule, all_units, calls, lambda c, b=block: b(*c[0], **c[1])))
        for t, us in mine:
            _prune_target(t, us, [next(stats) for _ in us], rule, pattern)
            done.add(id(t))
        calls = [blk.with_hidden(c, blk.output_hidden(block(*c[0], **c[1]))) for c in calls]


def _by_layers(
    model: nn.Module,
    plan: list[tuple[Target, list[Unit]]],
    batches: list[Any],
    rule: Rule,
    pattern: Pattern,
) -> None:
    if not plan:
        return
    sources: list[nn.Module] = []
    for _, us in plan:
        for u in us:
            if all(u.source is not s for s in sources):
                sources.append(u.source)
    for i in blk.execution_order(model, sources, batches[0]):
        source = sources[i]
        mine = [(t, us) for t, us in plan if us[0].source is source]
        all_units = [u for _, us in mine for u in us]
        stats = iter(
            _gather(rule, all_units, batches, lambda b, s=source: blk.run_until(model, s, b))
        )
        for t, us in mine:
            _prune_target(t, us, [next(stats) for _ in us], rule, pattern)
