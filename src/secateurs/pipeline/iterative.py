"""Iterative magnitude pruning with fine-tuning (Han et al. 2015): rounds of the pipeline's
Prune -> Train("finetune") -> Measure stages, training with `secateurs.train.fit`.

Each round raises the sparsity along `schedules.iterative` (every round removes the same
fraction of the surviving weights), then fine-tunes with the masks in place, so pruned
weights stay exactly zero while the others recover the accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from secateurs.pipeline.stages import Measure, Pipeline, Prune, Run, Train, in_place
from secateurs.prune.criteria import Criterion, LossFn
from secateurs.prune.permanent import sparsity_report
from secateurs.prune.schedules import iterative
from secateurs.prune.targets import DEFAULT, Selector, _Default
from secateurs.prune.unstructured import Scope, unstructured_

EvalFn = Callable[[nn.Module], dict[str, float]]


@dataclass(frozen=True)
class Round:
    """State after one round (round 0 is the model before pruning)."""

    round: int
    requested: float
    sparsity: float  # of the pruned (chosen) weights
    nonzeros: int  # of every parameter, biases included
    params: int
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def compression(self) -> float:
        return self.params / self.nonzeros if self.nonzeros else float("inf")


@dataclass(frozen=True)
class IterativeResult:
    rounds: list[Round]

    @property
    def final(self) -> Round:
        return self.rounds[-1]

    def as_dict(self) -> dict[str, Any]:
        return {"rounds": [r.__dict__ | {"compression": r.compression} for r in self.rounds]}

    def to_table(self) -> str:
        keys = sorted({k for r in self.rounds for k in r.metrics})
        header = ["round", "requested", "sparsity", "nonzeros", "params", "compression", *keys]
        rows = [
            [
                str(r.round),
                f"{r.requested:.2%}",
                f"{r.sparsity:.2%}",
                f"{r.nonzeros:,}",
                f"{r.params:,}",
                f"{r.compression:.2f}x",
                *(f"{r.metrics[k]:.4f}" if k in r.metrics else "" for k in keys),
            ]
            for r in self.rounds
        ]
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]

        def fmt(cells: Sequence[str]) -> str:
            return "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))

        return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def iterative_prune_(
    model: nn.Module,
    data: Iterable,
    *,
    target: float,
    rounds: int = 5,
    epochs: int = 2,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    criterion: str | Criterion = "magnitude",
    scope: Scope = "global",
    include: Sequence[Selector] | Selector | None = None,
    exclude: Sequence[Selector] | Selector | _Default = DEFAULT,
    loss_fn: LossFn | None = None,
    eval_fn: EvalFn | None = None,
    progress: bool = False,
) -> IterativeResult:
    """Prune `model` in place to `target` sparsity in `rounds` prune + fine-tune rounds.

    `data` yields (inputs, targets) training batches; each round fine-tunes `epochs` epochs
    with `optimizer` (default Adam(lr), kept across rounds). `eval_fn(model)` is recorded
    after every round (and before pruning, as round 0).
    """
    from secateurs.train import fit

    if rounds < 1 or epochs < 0:
        raise ValueError(f"rounds must be >= 1 and epochs >= 0, got {rounds} and {epochs}")
    if optimizer is None:
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    opt = optimizer

    def finetune(net: nn.Module, rule: Any) -> Any:
        return fit(net, data, optimizer=opt, loss_fn=loss_fn, epochs=epochs, progress=progress)

    def evaluate(net: nn.Module) -> dict[str, float]:
        return dict(eval_fn(net)) if eval_fn is not None else {}

    def snapshot(run: Run, i: int, requested: float) -> Round:
        total = sparsity_report(run.model)
        chosen = run.report.sparsity if run.report is not None else 0.0
        return Round(i, requested, chosen, total.nonzeros, total.params, run.metrics["eval"])

    run = Measure("eval", evaluate)(Run(model))
    history = [snapshot(run, 0, 0.0)]
    for r in range(1, rounds + 1):
        requested = iterative(r - 1, target=target, rounds=rounds, every=1)
        prune_round = in_place(
            unstructured_,
            sparsity=requested,
            scope=scope,
            criterion=criterion,
            include=include,
            exclude=exclude,
            data=data,
            loss_fn=loss_fn,
        )
        stages: list[Callable[[Run], Run]] = [Prune(prune_round)]
        if epochs:
            stages.append(Train(finetune, "finetune"))
        run = Pipeline(*stages, Measure("eval", evaluate))(run)
        history.append(snapshot(run, r, requested))
    return IterativeResult(history)
