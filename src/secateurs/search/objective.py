"""Scoring one candidate inside a study: the evaluator, the figures, the Optuna objective."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from secateurs.search.config import SweepConfig
from secateurs.search.crossval import CVResult, cross_validate
from secateurs.search.folds import make_folds
from secateurs.search.sources import load_data, model_factory, trainer
from secateurs.search.space import grid_points, suggest, to_recipe
from secateurs.search.workers import worker_identity


def _metric(config: SweepConfig) -> tuple[Callable, bool]:
    from secateurs.measure import accuracy, mean_loss

    if config.objective.metric == "accuracy":
        return accuracy, True
    return mean_loss, False


def key(params: dict[str, Any]) -> tuple:
    """A hashable identity of a candidate (floats rounded, so equal grid points match)."""
    return tuple(
        sorted((k, round(v, 10) if isinstance(v, float) else v) for k, v in params.items())
    )


def point(trial: Any) -> dict[str, Any]:
    """A frozen trial's candidate: its parameters, or the queued ones before it has any."""
    return dict(trial.params) or dict(trial.system_attrs.get("fixed_params") or {})


@dataclass
class Evaluator:
    """Everything a worker needs to score a candidate: model factory, data, folds, cache."""

    config: SweepConfig
    cache: MutableMapping | None = None

    def __post_init__(self) -> None:
        self.make_model = model_factory(self.config)
        self.data = load_data(self.config)
        self.train_fn = trainer(self.config)
        ev = self.config.evaluation
        self.folds = make_folds(
            self.data,
            k=ev.k if ev.kind == "kfold" else None,
            val=ev.val,
            stratified=ev.stratified,
            seed=self.config.seed,
        )
        self.metric, self.greater_is_better = _metric(self.config)
        if self.cache is None:
            self.cache = {}

    def evaluate(self, params: dict[str, Any] | None) -> CVResult:
        b = self.config.budget
        cost = self.config.objective.cost if self.config.objective.kind == "pareto" else None
        recipe = to_recipe(params or {"method": "none"}, finetune_steps=b.finetune_steps)
        return cross_validate(
            self.make_model,
            self.data,
            recipe,
            folds=self.folds,
            train_steps=b.train_steps,
            finetune_steps=b.finetune_steps,  # the dense baseline gets the same extra steps
            batch_size=b.batch_size,
            lr=b.lr,
            finetune_lr=b.finetune_lr,
            metric=self.metric,
            metric_name=self.config.objective.metric,
            greater_is_better=self.greater_is_better,
            seed=self.config.seed,
            train_fn=self.train_fn,
            measure_macs=cost == "macs",
            measure_latency=cost == "latency",
            cache=self.cache,
        )

    def clip_thresholds(self) -> dict[str, list[float]]:
        """Thresholds per rule from a warm-up run on the first fold's training part."""
        import torch

        from secateurs.search.clip_range import suggest_clip_thresholds

        s = self.config.space.clip.suggest
        train_loader, _ = self.folds[0].loaders(
            self.data, batch_size=self.config.budget.batch_size, seed=self.config.seed
        )
        torch.manual_seed(self.config.seed)
        found = suggest_clip_thresholds(
            self.make_model(),
            train_loader,
            s.steps,
            lr=self.config.budget.lr,
            percentiles=s.percentiles,
            multipliers=s.multipliers,
        )
        rules = [r for r in self.config.space.clip.rule if r != "none"]
        return {rule: found.for_rule(rule) for rule in rules}


def summarize(cv: CVResult, dense: dict[str, float], config: SweepConfig) -> dict[str, Any]:
    """The figures stored on a trial: metric mean/std, drop from dense, compression."""
    sign = 1.0 if cv.greater_is_better else -1.0
    drop = sign * (dense["mean"] - cv.metric_mean)
    return {
        "metric_mean": cv.metric_mean,
        "metric_std": cv.metric_std,
        "fold_metrics": [f.metric for f in cv.folds],
        "dense_mean": dense["mean"],
        "drop": drop,
        "feasible": bool(drop <= config.objective.tolerance + 1e-12),
        "params": cv.params,
        "nonzeros": cv.nonzeros,
        "achieved_sparsity": cv.sparsity,
        "macs": cv.macs,
        "latency_ms": cv.latency_ms,
        "seconds": sum(f.seconds for f in cv.folds),
    }


class SweepObjective:
    """The Optuna objective: one candidate, cross-validated, stored on the trial."""

    def __init__(
        self,
        evaluator: Evaluator,
        dense: dict[str, float],
        clip_thresholds: dict[str, list[float]] | None,
        target: int,
    ) -> None:
        self.ev = evaluator
        self.config = evaluator.config
        self.dense = dense
        self.clip_thresholds = clip_thresholds
        self.target = target
        self.grid = (
            grid_points(self.config.space, clip_thresholds) if self.config.sampler == "grid" else []
        )

    def _check_turn(self, trial: Any, params: dict[str, Any] | None) -> None:
        """Prune a trial that would duplicate another's work (rare races between workers)."""
        import optuna
        from optuna.trial import TrialState

        others = trial.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)
        )
        if params is None:  # a sampled trial: count the trials ahead of it
            ahead = [t for t in others if t.number < trial.number]
            if len(ahead) >= self.target:
                trial.set_user_attr("skipped", "surplus")
                raise optuna.TrialPruned("the study already has enough trials")
            return
        for t in others:
            same = t.number != trial.number and key(point(t)) == key(params)
            if same and (t.state == TrialState.COMPLETE or t.number < trial.number):
                trial.set_user_attr("skipped", f"duplicate of trial {t.number}")
                raise optuna.TrialPruned(f"grid point already taken by trial {t.number}")

    def __call__(self, trial: Any) -> float | tuple[float, float]:
        import optuna

        trial.set_user_attr("worker", worker_identity())
        if self.config.sampler == "grid":
            index = trial.user_attrs.get("grid_point")
            if not isinstance(index, int) or not 0 <= index < len(self.grid):
                trial.set_user_attr("skipped", "grid exhausted")
                raise optuna.TrialPruned("no grid point left in the queue")
            self._check_turn(trial, self.grid[index])
        else:
            self._check_turn(trial, None)
        params = suggest(trial, self.config.space, self.clip_thresholds)
        figures = summarize(self.ev.evaluate(params), self.dense, self.config)
        trial.set_user_attr("result", figures)
        if self.config.objective.kind == "pareto":
            cost = {
                "nonzeros": figures["nonzeros"],
                "macs": figures["macs"],
                "latency": figures["latency_ms"],
            }[self.config.objective.cost]
            return figures["metric_mean"], float(cost)
        # Feasible settings score their sparsity; the others are ranked below every
        # feasible one by how far they miss the tolerance.
        excess = figures["drop"] - self.config.objective.tolerance
        return figures["achieved_sparsity"] if figures["feasible"] else -excess
