"""`structured()`: remove whole channels, neurons, hidden units and heads for real."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from secateurs._inputs import call_model
from secateurs.measure import count_macs, count_parameters
from secateurs.prune.structural import graph, groups, rules, select, surgery
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
    ok = isinstance(example_inputs, torch.Tensor | dict) or (
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
    importance: str = "l2",
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
    `importance` is one of ``l1``, ``l2``, ``bn``, ``taylor``, ``activation``, ``random``;
    ``taylor`` and ``activation`` need `data` (batches of ``(inputs, targets)``; ``taylor`` uses
    `loss_fn`, default cross-entropy). `global_ratio` ranks all units together (importance
    normalised per group); `per_layer_limits` caps the ratio of matching groups; `round_to`
    rounds kept channel counts to a multiple. The input model is never modified.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_inputs(example_inputs)
    ratio = select.check_ratio(ratio)
    if importance not in importance_mod.CRITERIA:
        raise ValueError(f"importance must be one of {importance_mod.CRITERIA}, got {importance!r}")
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
            f"it could not be traced ({analysis.trace_error}) and has no known blocks"
            if not analysis.traced
            else "every channel is fixed by the model's inputs/outputs or unsupported patterns"
        )
        details = "; ".join(f"{k}: {v}" for k, v in list(kept.items())[:5])
        raise ValueError(
            f"nothing in {type(model).__name__} can be pruned structurally: {why}"
            + (f" ({details})" if details else "")
            + ". Make the forward torch.fx-traceable, or protect/exclude the unsupported parts."
        )
    notes = importance_mod.score(pruned, found, importance, data=data, loss_fn=loss_fn, seed=seed)
    if not analysis.traced and prune_embedding:
        notes.append("prune_embedding needs a traced model; the embedding width was kept")
    if not analysis.traced:
        notes.append(
            f"model not traced by torch.fx ({analysis.trace_error[:100]}); only attention heads, "
            "Transformer MLP channels and inner RNN layers were considered"
        )
    chosen = select.select(
        found,
        ratio,
        global_ratio=global_ratio,
        per_layer_limits=per_layer_limits,
        round_to=round_to,
    )
    removed = [s for gi, idx in chosen.items() for i in idx for s in found[gi].units[i].slices]
    surgery.apply(pruned, removed)
    rules.fix_attributes(pruned)

    try:
        with torch.no_grad():
            after = _shapes(call_model(pruned, example_inputs))
    except Exception as exc:  # never hand back a model that does not run
        raise RuntimeError(
            f"the pruned model fails on example_inputs ({type(exc).__name__}: {exc}); this is "
            "a pattern the analysis missed: protect the modules involved and report it"
        ) from exc
    if after != reference:
        raise RuntimeError(
            f"the pruned model's output shapes {after} differ from the original {reference}; "
            "protect the modules involved and report it"
        )
    pruned.train(was_training)
    report = PruneReport(
        requested=ratio,
        method=f"structured/{importance}" + ("/global" if global_ratio else ""),
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
