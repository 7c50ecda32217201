"""Drive a sparsity schedule from `secateurs.train.fit` (or any loop): one call per step."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from secateurs.prune.criteria import Criterion, LossFn, Movement, get_criterion
from secateurs.prune.schedules import Schedule
from secateurs.prune.summary import PruneReport
from secateurs.prune.targets import DEFAULT, Selector, _Default
from secateurs.prune.unstructured import Scope, unstructured_


class PruningCallback:
    """Prune to `schedule(step)` whenever the scheduled sparsity rises.

    As a `fit` callback it runs after each optimizer step (`on_step_end`); in your own loop
    call `step(model)` once per optimizer step. A `Movement` criterion is attached to the
    model on the first call so that it accumulates scores while training. `reports` keeps
    (step, report) for every pruning event.
    """

    def __init__(
        self,
        schedule: Schedule,
        *,
        criterion: str | Criterion = "magnitude",
        scope: Scope = "global",
        include: Sequence[Selector] | Selector | None = None,
        exclude: Sequence[Selector] | Selector | _Default = DEFAULT,
        data: Iterable | None = None,
        loss_fn: LossFn | None = None,
    ) -> None:
        if not callable(schedule):
            raise TypeError("schedule must be a function of the step (see prune.schedules)")
        self.schedule = schedule
        self.criterion = get_criterion(criterion)
        self.kwargs: dict[str, Any] = dict(
            scope=scope, include=include, exclude=exclude, data=data, loss_fn=loss_fn
        )
        self.steps = 0
        self.current = 0.0
        self.reports: list[tuple[int, PruneReport]] = []

    def attach(self, model: nn.Module) -> PruningCallback:
        """Start accumulating scores (movement) before the first step; also done lazily."""
        if isinstance(self.criterion, Movement) and not self.criterion.attached:
            from secateurs.prune.targets import find_targets

            targets = find_targets(
                model, include=self.kwargs["include"], exclude=self.kwargs["exclude"]
            )
            self.criterion.attach(model, targets)
        return self

    def step(self, model: nn.Module) -> PruneReport | None:
        """Count one optimizer step; prune if the schedule asks for more sparsity now."""
        self.attach(model)
        self.steps += 1
        target = self.schedule(self.steps)
        if target <= self.current:
            return None
        report = unstructured_(model, sparsity=target, criterion=self.criterion, **self.kwargs)
        self.current = target
        self.reports.append((self.steps, report))
        return report

    def on_step_end(self, record: Any, model: nn.Module) -> bool:
        self.step(model)
        return False

    def close(self) -> None:
        """Remove the hooks a movement criterion placed on the model."""
        if isinstance(self.criterion, Movement):
            self.criterion.detach()
