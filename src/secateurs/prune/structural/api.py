"""`structured()`: remove whole channels, neurons, hidden units and heads for real."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from secateurs._inputs import call_model
from secateurs.measure import count_macs, count_parameters
from secateurs.prune.structural import attributes, graph, groups, rules, select, surgery
from secateurs.prune.structural import importance as importance_mod
from secateurs.prune.summary import GroupChange, PruneReport


def _shapes(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, Mapping):
        return {k: _shapes(v) for k, v in out.items()}
    if isinstance(out, tuple | list):
        return [_shapes(v) for v in out]
    return None


def _check_inputs(example_inputs: Any) -> None:
    ok = isinstance(example_inputs, torch.Tensor | Mapping) or (
        isinstance(example_inputs, tuple | list) and len(example_inputs) > 0
    )
    if not ok:
        raise TypeError(
            "example_inputs must be a tensor, a tuple of positional inputs or a dict of "
            f"keyword inputs, got {type(example_inputs).__name__}"
        )


def _tied_modules(model: nn.Module) -> dict[str, str]:
    """Modules that share a parameter with another module (their shapes must stay equal)."""
    owner: dict[int, str] = {}
    tied: dict[str, str] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        for p in m.parameters(recurse=False):
            first = owner.setdefault(id(p), name)
            if first != name:
                tied[name], tied[first] = first, name
    return tied


def _apply(
    model: nn.Module,
    found: list[groups.Group],
    chosen: dict[int, list[int]],
    example_inputs: Any,
    reference: Any,
) -> tuple[nn.Module, str | None, list[str]]:
    """A pruned copy of `model`, why it fails or changes output shapes (or None), notes."""
    pruned = copy.deepcopy(model)
    removed = [s for gi, idx in chosen.items() for s in found[gi].removed_slices(idx)]
    surgery.apply(pruned, removed)
    changes = [attributes.change_of(g, chosen.get(gi, [])) for gi, g in enumerate(found)]
    attributes.fix_modules(pruned, changes)
    notes = attributes.fix_configs(pruned, changes)
    try:
        with torch.no_grad():
            after = _shapes(call_model(pruned, example_inputs))
    except Exception as exc:
        return pruned, f"{type(exc).__name__}: {exc}".splitlines()[0], notes
    if after != reference:
        return pruned, f"output shapes {after} instead of {reference}", notes
    return pruned, None, notes


def _failing_group(
    model: nn.Module,
    found: list[groups.Group],
    chosen: dict[int, list[int]],
    example_inputs: Any,
    reference: Any,
) -> int | None:
    """One group whose removal alone breaks the model (bisection), or None."""
    candidates = sorted(chosen)
    while len(candidates) > 1:
        half = candidates[: len(candidates) // 2]
        _, error, _ = _apply(
            model, found, {gi: chosen[gi] for gi in half}, example_inputs, reference
        )
        candidates = half if error is not None else candidates[len(half) :]
    if not candidates:
        return None
    gi = candidates[0]
    _, error, _ = _apply(model, found, {gi: chosen[gi]}, example_inputs, reference)
    return gi if error is not None else None


def find_groups(
    model: nn.Module, example_inputs: Any, *, prune_embedding: bool = False
) -> tuple[list[groups.Group], dict[str, str], graph.Analysis]:
    """All prunable groups of `model` (graph analysis plus local rules)."""
    analysis = graph.analyze(model, example_inputs, prune_embedding=prune_embedding)
    found, kept = groups.graph_groups(model, analysis)
    found.extend(rules.local_groups(model))
    return found, kept, analysis


def structured(
    model: nn.Module,
    example_inputs: Any,
    *,
    ratio: float,
    importance: Any = "l2",
    global_ratio: bool = False,
    per_layer_limits: Mapping[str, float] | None = None,
    round_to: int | None = None,
    protect: Iterable[str] = (),
    prune_embedding: bool = False,
    data: Iterable | None = None,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    seed: int = 0,
) -> tuple[nn.Module, PruneReport]:
    """Return a smaller copy of `model` with `ratio` of the units of each prunable group removed.

    Units are output channels/neurons (with everything that depends on them: the next layers'
    inputs, norms, residual partners), attention heads (key/value groups under GQA), MLP
    channels of Transformer blocks and RNN hidden units. The model's inputs and outputs keep
    their widths, as do layers listed in `protect` (names, prefixes or glob patterns).
    `importance` is one of ``l1``, ``l2``, ``bn``, ``taylor``, ``activation``, ``random`` or
    any object with a ``score(model, unit)`` method (see `importance.Importance`);
    ``taylor`` and ``activation`` need `data` (batches of ``(inputs, targets)``; ``taylor`` uses
    `loss_fn`, default cross-entropy). `global_ratio` ranks all units together (importance
    normalised per group); `per_layer_limits` caps the ratio of matching groups; `round_to`
    rounds kept channel counts to a multiple. The input model is never modified.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_inputs(example_inputs)
    ratio = select.check_ratio(ratio)
    scorer = importance_mod.resolve(importance, seed)
    if isinstance(protect, str):
        protect = (protect,)
    protect = tuple(protect)
    names = {n for n, _ in model.named_modules()}
    for p in protect:
        if not any(groups._matches(n, (p,)) for n in names):
            raise ValueError(f"protect names {p!r}, which matches no module of the model")

    pruned = copy.deepcopy(model)
    was_training = pruned.training
    pruned.eval()
    try:
        with torch.no_grad():
            reference = _shapes(call_model(pruned, example_inputs))
    except Exception as exc:
        raise ValueError(
            f"the model fails on example_inputs ({type(exc).__name__}: {exc}); pass inputs of "
            "the shape and type its forward takes (a tensor, a tuple, or a dict of kwargs)"
        ) from exc
    macs_before = count_macs(pruned, example_inputs)
    params_before = count_parameters(pruned)

    found, kept, analysis = find_groups(pruned, example_inputs, prune_embedding=prune_embedding)
    found = groups.drop_protected(found, protect)
    tied = _tied_modules(pruned)
    for name, other in tied.items():
        kept.setdefault(name, f"shares a parameter with {other!r} (tied weights)")
    found = groups.drop_protected(found, tuple(tied))
    if not found:
        why = (
            f"it could not be exported ({analysis.trace_error}) and has no attention or "
            "RNN layers with their own rule"
            if not analysis.traced
            else "every channel is fixed by the model's inputs/outputs or unsupported patterns"
        )
        details = "; ".join(f"{k}: {v}" for k, v in list(kept.items())[:5])
        raise ValueError(
            f"nothing in {type(model).__name__} can be pruned structurally: {why}"
            + (f" ({details})" if details else "")
            + ". Make the forward exportable with torch.export.export(strict=False)."
        )
    importance_mod.score(pruned, found, scorer, data=data, loss_fn=loss_fn)
    notes: list[str] = []
    if not analysis.traced:
        error = (analysis.trace_error or "")[:200]
        notes.append(
            f"model not exported by torch.export ({error}); only "
            "nn.MultiheadAttention heads and inner RNN layers were considered"
        )
    chosen = select.select(
        found,
        ratio,
        global_ratio=global_ratio,
        per_layer_limits=per_layer_limits,
        round_to=round_to,
    )
    scored = pruned
    pruned, error, pruned_notes = _apply(scored, found, chosen, example_inputs, reference)
    while error is not None:
        # Some removal breaks the forward (a size written into the code, an attribute the
        # analysis cannot see): find one group that fails alone, keep it, and try again.
        culprit = _failing_group(scored, found, chosen, example_inputs, reference)
        if culprit is None:
            # No group fails alone, only some together: add them one at a time and keep
            # each that breaks what works so far.
            working: dict[int, list[int]] = {}
            for gi in sorted(chosen):
                trial = {**working, gi: chosen[gi]}
                _, trial_error, _ = _apply(scored, found, trial, example_inputs, reference)
                if trial_error is None:
                    working = trial
                else:
                    why = f"removing its units with others breaks the forward ({trial_error[:120]})"
                    for m in sorted(found[gi].modules):
                        kept.setdefault(m, why)
            chosen = working
        else:
            for m in sorted(found[culprit].modules):
                kept.setdefault(m, f"removing its units breaks the forward ({error[:160]})")
            del chosen[culprit]
        pruned, error, pruned_notes = _apply(scored, found, chosen, example_inputs, reference)
    notes.extend(pruned_notes)
    pruned.train(was_training)
    report = PruneReport(
        requested=ratio,
        method=f"structured/{getattr(scorer, 'name', type(scorer).__name__)}"
        + ("/global" if global_ratio else ""),
        params_before=params_before,
        params_after=count_parameters(pruned),
        macs_before=macs_before,
        macs_after=count_macs(pruned, example_inputs),
        groups=[
            GroupChange(
                g.name,
                g.kind,
                len(g.units),
                len(g.units) - len(chosen.get(gi, [])),
                sorted(g.modules),
            )
            for gi, g in enumerate(found)
        ],
        kept=kept,
        notes=notes,
        traced=analysis.traced,
    )
    return pruned, report
