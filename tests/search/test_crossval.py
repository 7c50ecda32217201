"""Cross-validation equals an independent per-fold computation; caching changes nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.model_selection import StratifiedKFold
from torch.utils.data import DataLoader, TensorDataset

from secateurs import prune
from secateurs.measure import accuracy, count_nonzeros
from secateurs.search.crossval import cross_validate, gradual_schedule
from secateurs.search.recipe import PruneSetting, Recipe
from secateurs.train import fit
from secateurs.zoo import MLP, digits_arrays

STEPS = 40


def _make():
    return MLP((64, 32, 10))


@pytest.fixture(scope="module")
def data():
    x, y = digits_arrays()
    return torch.from_numpy(x[:600]), torch.from_numpy(y[:600])


def _reference(data, sparsity, k=3, seed=0):
    """Each fold by hand: sklearn folds, fit, prune.unstructured, accuracy."""
    x, y = data
    out = []
    splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y)
    for i, (tr, va) in enumerate(splits):
        tr, va = np.sort(tr), np.sort(va)
        g = torch.Generator().manual_seed(seed + i)
        train = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True, generator=g)
        val = DataLoader(TensorDataset(x[va], y[va]), batch_size=512)
        torch.manual_seed(seed + i)
        model = _make()
        fit(model, train, lr=1e-3, epochs=math.ceil(STEPS / len(train)), max_steps=STEPS)
        dense = accuracy(model, val)
        prune.unstructured_(model, sparsity=sparsity)
        out.append((dense, accuracy(model, val), count_nonzeros(model)))
    return out


def test_cross_validate_matches_an_independent_computation(data):
    cand = {"method": "unstructured", "sparsity": 0.7, "scope": "global", "criterion": "magnitude"}
    r = cross_validate(_make, data, cand, k=3, train_steps=STEPS)
    ref = _reference(data, 0.7)
    assert [f.dense_metric for f in r.folds] == [d for d, _, _ in ref]
    assert [f.metric for f in r.folds] == [m for _, m, _ in ref]
    assert [f.nonzeros for f in r.folds] == [n for _, _, n in ref]
    metrics = np.array([m for _, m, _ in ref])
    assert r.metric_mean == pytest.approx(metrics.mean())
    assert r.metric_std == pytest.approx(metrics.std(ddof=1))
    assert r.sparsity == pytest.approx(1 - np.mean([n for *_, n in ref]) / r.params)
    assert r.as_dict()["folds"][0]["fold"] == 0


def test_cache_trains_each_fold_once_and_changes_nothing(data):
    calls = []

    def train_fn(model, loader, fold):
        calls.append(fold.index)
        fit(model, loader, lr=1e-3, epochs=3, max_steps=STEPS)
        return model

    cache: dict = {}
    kw = {"k": 3, "train_fn": train_fn, "cache": cache}
    a = cross_validate(_make, data, Recipe(prune=PruneSetting(sparsity=0.5)), **kw)
    b = cross_validate(_make, data, Recipe(prune=PruneSetting(sparsity=0.8)), **kw)
    assert calls == [0, 1, 2]  # the second candidate reused the trained folds
    fresh = cross_validate(
        _make, data, Recipe(prune=PruneSetting(sparsity=0.8)), k=3, train_fn=train_fn
    )
    assert [f.metric for f in fresh.folds] == [f.metric for f in b.folds]
    assert a.dense_mean == b.dense_mean and a.sparsity < b.sparsity


def test_finetuning_keeps_the_zeros_and_gradual_schedules_reach_the_target(data):
    setting = PruneSetting(sparsity=0.8)
    kw = {"k": None, "holdout": 0.25, "train_steps": STEPS}
    base = cross_validate(_make, data, Recipe(prune=setting), **kw)
    tuned = cross_validate(_make, data, Recipe(prune=setting), finetune_steps=30, **kw)
    assert len(base.folds) == len(tuned.folds) == 1
    assert tuned.nonzeros == base.nonzeros  # masks hold during fine-tuning
    assert tuned.metric_mean != base.metric_mean
    cubic = Recipe(prune=PruneSetting(sparsity=0.8, schedule="cubic"), finetune_steps=30)
    gradual = cross_validate(_make, data, cubic, **kw)
    assert gradual.nonzeros == base.nonzeros


def test_gradual_schedules_end_at_the_target_before_the_budget_ends():
    for kind in ("iterative", "cubic"):
        s = gradual_schedule(kind, 0.9, 100)
        values = [s(t) for t in range(1, 101)]
        assert values == sorted(values) and values[-1] < 1
        assert values[74] == pytest.approx(0.9)  # the last quarter of the budget recovers
        assert values[9] < 0.9


def test_dense_candidate_and_bad_candidates(data):
    r = cross_validate(_make, data, None, k=None, holdout=0.25, train_steps=STEPS)
    assert r.sparsity == 0 and r.metric_mean == r.dense_mean
    with pytest.raises(TypeError, match="candidate must be"):
        cross_validate(_make, data, 0.5, k=3)
    with pytest.raises(ValueError, match="needs a train_fn"):
        cross_validate(_make, data, None, train_steps=0)
