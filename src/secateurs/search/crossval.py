"""Cross-validated scoring of one pruning/clipping setting: mean +- std across folds.

Each fold trains a fresh model on its training part (with the candidate's clipping rule),
or takes the model a user function returns, measures the dense metric on the fold's
validation part, prunes with the candidate's setting, optionally fine-tunes, and measures
again. The dense model of a fold depends only on the fold, the seed and the training
settings, so a `cache` dict shared across candidates trains each fold once.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from secateurs.measure import accuracy, count_nonzeros, count_parameters
from secateurs.pipeline.stages import Measure, Pipeline, Prune, Run, Seed, Train
from secateurs.search.folds import Data, Fold, make_folds
from secateurs.search.recipe import Recipe, apply_pruning, make_clip_rule
from secateurs.search.seeding import seed_everything, trial_seed
from secateurs.search.space import to_recipe

Metric = Callable[[nn.Module, DataLoader], float]
TrainFn = Callable[[nn.Module, DataLoader, Fold], nn.Module]


@dataclass
class FoldResult:
    """The figures of one fold."""

    fold: int
    dense_metric: float
    metric: float
    params: int
    nonzeros: int
    macs: int | None = None
    latency_ms: float | None = None
    seconds: float = 0.0


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(xs, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


@dataclass
class CVResult:
    """Per-fold results and their summary (std is the sample standard deviation, ddof=1)."""

    folds: list[FoldResult] = field(default_factory=list)
    metric_name: str = "accuracy"
    greater_is_better: bool = True

    @property
    def metric_mean(self) -> float:
        return _mean_std([f.metric for f in self.folds])[0]

    @property
    def metric_std(self) -> float:
        return _mean_std([f.metric for f in self.folds])[1]

    @property
    def dense_mean(self) -> float:
        return _mean_std([f.dense_metric for f in self.folds])[0]

    @property
    def dense_std(self) -> float:
        return _mean_std([f.dense_metric for f in self.folds])[1]

    @property
    def nonzeros(self) -> float:
        return float(np.mean([f.nonzeros for f in self.folds]))

    @property
    def params(self) -> int:
        return self.folds[0].params

    @property
    def sparsity(self) -> float:
        """1 - non-zeros / parameters of the dense model (structured pruning included)."""
        return 1.0 - self.nonzeros / self.params

    @property
    def macs(self) -> float | None:
        vals = [f.macs for f in self.folds if f.macs is not None]
        return float(np.mean(vals)) if vals else None

    @property
    def latency_ms(self) -> float | None:
        vals = [f.latency_ms for f in self.folds if f.latency_ms is not None]
        return float(np.median(vals)) if vals else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric_name,
            "metric_mean": self.metric_mean,
            "metric_std": self.metric_std,
            "dense_mean": self.dense_mean,
            "dense_std": self.dense_std,
            "params": self.params,
            "nonzeros": self.nonzeros,
            "sparsity": self.sparsity,
            "macs": self.macs,
            "latency_ms": self.latency_ms,
            "folds": [asdict(f) for f in self.folds],
        }

    def __str__(self) -> str:
        return (
            f"{self.metric_name} {self.metric_mean:.4f} +- {self.metric_std:.4f} "
            f"(dense {self.dense_mean:.4f}), sparsity {self.sparsity:.3f}, k={len(self.folds)}"
        )


def _as_recipe(candidate: Any) -> Recipe:
    if candidate is None:
        return Recipe()
    if isinstance(candidate, Recipe):
        return candidate
    if isinstance(candidate, dict):
        return to_recipe(candidate)
    raise TypeError(
        "candidate must be a Recipe, a dict of flat parameters (like a grid point) or None, "
        f"got {type(candidate).__name__}"
    )


def _train_steps(model: nn.Module, loader: DataLoader, steps: int, lr: float, clip: Any) -> None:
    from secateurs.train import fit

    epochs = max(1, math.ceil(steps / max(1, len(loader))))
    fit(model, loader, lr=lr, clip=clip, epochs=epochs, max_steps=steps)


def _dense_model(
    make_model: Callable[[], nn.Module],
    fold: Fold,
    train_loader: DataLoader,
    recipe: Recipe,
    *,
    train_fn: TrainFn | None,
    train_steps: int,
    lr: float,
    seed: int,
    cache: MutableMapping | None,
) -> nn.Module:
    """The trained dense model of a fold, from `cache` when it was trained before."""
    key = (fold.index, seed, train_steps, lr, recipe.clip.model_dump_json(), train_fn is None)
    torch.manual_seed(seed + fold.index)
    model = make_model()
    if cache is not None and key in cache:
        model.load_state_dict(cache[key])
        return model
    if train_fn is not None:
        model = train_fn(model, train_loader, fold)
    else:
        _train_steps(model, train_loader, train_steps, lr, make_clip_rule(recipe.clip))
    if cache is not None:
        cache[key] = copy.deepcopy(model.state_dict())
    return model


def _finetune(
    model: nn.Module, loader: DataLoader, recipe: Recipe, clip: Any, steps: int, lr: float
) -> nn.Module:
    """Fine-tune after pruning; gradual schedules prune during it (a PruningCallback)."""
    from secateurs import prune
    from secateurs.train import fit

    epochs = max(1, math.ceil(steps / max(1, len(loader))))
    if recipe.prune.schedule == "one_shot":
        fit(model, loader, lr=lr, clip=clip, epochs=epochs, max_steps=steps)
        return model
    callback = prune.PruningCallback(
        gradual_schedule(recipe.prune.schedule, recipe.prune.sparsity or 0.0, steps),
        scope=recipe.prune.scope,
        criterion=recipe.prune.criterion,
        data=loader,
    )
    try:
        fit(model, loader, lr=lr, clip=clip, epochs=epochs, max_steps=steps, callbacks=[callback])
    finally:
        callback.close()
    return model


def gradual_schedule(kind: str, target: float, steps: int) -> Callable[[int], float]:
    """The sparsity schedule over a fine-tuning budget of `steps` optimizer steps.

    iterative: up to 5 equal-ratio rounds over the first 3/4 of the budget (Han et al. 2015);
    cubic: Zhu & Gupta's ramp reaching `target` at 3/4 of the budget, updated 10 times.
    Both reach `target` before the budget ends, leaving steps to recover.
    """
    from secateurs.prune import schedules

    if kind == "iterative":
        rounds = min(5, steps)
        return schedules.schedule(
            "iterative",
            target=target,
            rounds=rounds,
            every=max(1, (3 * steps // 4) // rounds),
            start=1,
        )
    if kind == "cubic":
        end = max(2, 3 * steps // 4)
        return schedules.schedule(
            "cubic", target=target, start=1, end=end, frequency=max(1, (end - 1) // 10)
        )
    raise ValueError(f"schedule must be 'iterative' or 'cubic' here, got {kind!r}")


def evaluate_fold(
    make_model: Callable[[], nn.Module],
    data: Data,
    fold: Fold,
    recipe: Recipe,
    *,
    train_steps: int = 300,
    finetune_steps: int = 0,
    batch_size: int = 64,
    lr: float = 1e-3,
    finetune_lr: float | None = None,
    metric: Metric = accuracy,
    seed: int = 0,
    train_fn: TrainFn | None = None,
    measure_macs: bool = False,
    measure_latency: bool = False,
    cache: MutableMapping | None = None,
) -> FoldResult:
    """Train (or load), measure, prune, fine-tune and measure again on one fold."""
    t0 = time.perf_counter()
    train_loader, val_loader = fold.loaders(data, batch_size=batch_size, seed=seed + fold.index)
    model = _dense_model(
        make_model,
        fold,
        train_loader,
        recipe,
        train_fn=train_fn,
        train_steps=train_steps,
        lr=lr,
        seed=seed,
        cache=cache,
    )
    example = next(iter(val_loader))[0][:1]
    # Whether the dense model was trained here or read from the cache must not matter.
    setting = recipe.model_dump(mode="json", exclude={"source"})
    gradual = recipe.prune.schedule != "one_shot" and finetune_steps > 0
    if gradual and (recipe.prune.method != "unstructured" or recipe.prune.sparsity is None):
        raise ValueError("iterative/cubic schedules apply to unstructured pruning by sparsity")

    def score(net: nn.Module) -> float:
        return float(metric(net, val_loader))

    def prune_op(net: nn.Module) -> tuple[nn.Module, Any]:
        return apply_pruning(net, recipe.prune, example_inputs=example, data=train_loader)

    def finetune(net: nn.Module, rule: Any) -> nn.Module:
        return _finetune(net, train_loader, recipe, rule, finetune_steps, finetune_lr or lr)

    run = Pipeline(
        Measure("dense", score),
        Measure("params", count_parameters),
        Seed(
            trial_seed(seed, fold.index, setting),
            lambda s: seed_everything(s, train_loader.generator),
        ),
        *([] if gradual else [Prune(prune_op)]),
        *([Train(finetune, "finetune")] if finetune_steps > 0 else []),
        Measure("metric", score),
        Measure("nonzeros", count_nonzeros),
    )(Run(model, rule=make_clip_rule(recipe.clip)))
    model = run.model
    result = FoldResult(
        fold=fold.index,
        dense_metric=run.metrics["dense"],
        metric=run.metrics["metric"],
        params=run.metrics["params"],
        nonzeros=run.metrics["nonzeros"],
    )
    if measure_macs:
        from secateurs.measure import count_macs

        result.macs = int(count_macs(model, example))
    if measure_latency:
        from secateurs.measure import measure_latency as _latency

        model.eval()
        result.latency_ms = float(_latency(model, example).median) * 1e3
    result.seconds = time.perf_counter() - t0
    return result


def cross_validate(
    make_model: Callable[[], nn.Module],
    data: Data,
    candidate: Recipe | dict | None = None,
    *,
    k: int = 5,
    stratified: bool = True,
    holdout: float | None = None,
    finetune_steps: int | None = None,
    train_steps: int = 300,
    batch_size: int = 64,
    lr: float = 1e-3,
    finetune_lr: float | None = None,
    metric: Metric = accuracy,
    metric_name: str | None = None,
    greater_is_better: bool = True,
    seed: int = 0,
    train_fn: TrainFn | None = None,
    measure_macs: bool = False,
    measure_latency: bool = False,
    folds: Sequence[Fold] | None = None,
    cache: MutableMapping | None = None,
) -> CVResult:
    """Score `candidate` by k-fold cross-validation (or one `holdout` split) of `data`.

    - `make_model()` builds a fresh model; with `train_fn(model, train_loader, fold)` you
      train it (or load trained weights) yourself, else `train_steps` of Adam(`lr`) train it
      with the candidate's clipping rule.
    - `candidate` is a Recipe, a flat parameter dict (a grid point) or None (dense).
    - `finetune_steps` after pruning (None: the recipe's; 0 = prune only).
    - `metric(model, val_loader)`; `greater_is_better` says which way is good.
    - `cache`: a dict reused across calls with the same model and data trains each fold once.
    Returns per-fold figures with mean and std of the metric, sparsity, MACs, latency.
    """
    recipe = _as_recipe(candidate)
    if train_steps < 0:
        raise ValueError(f"train_steps must be >= 0, got {train_steps}")
    if train_steps == 0 and train_fn is None:
        raise ValueError("train_steps=0 needs a train_fn that returns a trained model")
    ft = recipe.finetune_steps if finetune_steps is None else finetune_steps
    if ft < 0:
        raise ValueError(f"finetune_steps must be >= 0, got {ft}")
    if folds is None:
        folds = make_folds(
            data, k=None if holdout is not None else k, val=holdout or 0.2,
            stratified=stratified, seed=seed,
        )  # fmt: skip
    name = metric_name or getattr(metric, "__name__", "metric")
    result = CVResult(metric_name=name, greater_is_better=greater_is_better)
    for fold in folds:
        result.folds.append(
            evaluate_fold(
                make_model,
                data,
                fold,
                recipe,
                train_steps=train_steps,
                finetune_steps=ft,
                batch_size=batch_size,
                lr=lr,
                finetune_lr=finetune_lr,
                metric=metric,
                seed=seed,
                train_fn=train_fn,
                measure_macs=measure_macs,
                measure_latency=measure_latency,
                cache=cache,
            )
        )
    return result
