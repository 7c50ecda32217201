"""train -> clip -> prune -> fine-tune -> measure, as small stages that compose.

A stage is an object with one method, `__call__(run) -> run`. The `Run` carries everything
that flows between stages: the model, the clipping rule training uses, the last pruning
report, the measurements and the time each stage took. Data flows one way: a stage reads what
earlier stages wrote and adds its own. `Pipeline(*stages)` runs stages in order, so each face
(the demo, `compare`, cross-validation, the exploding-gradient experiment, iterative pruning)
is a list of stages, and a new step is a new stage class:

    run = Pipeline(
        Seed(0),
        Train(lambda model, rule: fit(model, data, clip=rule, max_steps=300)),
        Prune(in_place(unstructured_, sparsity=0.8)),
        Measure("before_finetune", evaluate),
        Train(lambda model, rule: fit(model, data, clip=rule, max_steps=100), "finetune"),
        Bake(),
        Measure("after", evaluate),
    )(Run(model, rule=ByNorm(1.0)))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from secateurs.prune import make_permanent
from secateurs.prune.summary import PruneReport

#: fit(model, rule) -> what training returned (a FitResult for `secateurs.train.fit`)
FitFn = Callable[[nn.Module, Any], Any]
#: op(model) -> (model, report): the same model for in-place operations, a new one otherwise
PruneOp = Callable[[nn.Module], tuple[nn.Module, PruneReport | None]]


@dataclass
class Run:
    """What flows through a pipeline."""

    model: nn.Module
    rule: Callable[[Any], Any] | None = None
    report: PruneReport | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    fits: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """Stages run in order on one `Run`."""

    def __init__(self, *stages: Callable[[Run], Run]) -> None:
        for s in stages:
            if not callable(s):
                raise TypeError(f"a stage is called with a Run, got {type(s).__name__}")
        self.stages = stages

    def __call__(self, run: Run) -> Run:
        for stage in self.stages:
            run = stage(run)
        return run

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(map(repr, self.stages))})"


@dataclass(frozen=True)
class Seed:
    """Seed the random generators, so that what follows draws the same numbers whatever ran
    before: torch's global generator by default, or whatever `seeder(seed)` seeds (e.g.
    `secateurs.search.seeding.seed_everything` with a loader's generator)."""

    seed: int
    seeder: Callable[[int], Any] = torch.manual_seed

    def __call__(self, run: Run) -> Run:
        self.seeder(self.seed)
        return run


@dataclass(frozen=True)
class Train:
    """Train `run.model` with `fit(model, run.rule)`; keeps what it returns and its time
    under `name` (fine-tuning is a Train stage named "finetune" after a Prune)."""

    fit: FitFn
    name: str = "train"

    def __call__(self, run: Run) -> Run:
        t0 = time.perf_counter()
        run.fits[self.name] = self.fit(run.model, run.rule)
        run.seconds[self.name] = time.perf_counter() - t0
        return run


@dataclass(frozen=True)
class Prune:
    """Prune with `op(model) -> (model, report)`; the model that comes back goes on."""

    op: PruneOp

    def __call__(self, run: Run) -> Run:
        run.model, run.report = self.op(run.model)
        return run


def in_place(operation: Callable[..., PruneReport], **settings: Any) -> PruneOp:
    """A Prune op from an in-place pruning function (`unstructured_`, `nm_`) and its settings."""

    def op(model: nn.Module) -> tuple[nn.Module, PruneReport]:
        return model, operation(model, **settings)

    return op


@dataclass(frozen=True)
class Bake:
    """Replace the pruning masks by their effect (`make_permanent`): plain modules."""

    def __call__(self, run: Run) -> Run:
        make_permanent(run.model)
        return run


@dataclass(frozen=True)
class Measure:
    """Record `fn(model)` under `name` in `run.metrics`."""

    name: str
    fn: Callable[[nn.Module], Any]

    def __call__(self, run: Run) -> Run:
        run.metrics[self.name] = self.fn(run.model)
        return run
