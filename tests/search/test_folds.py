"""k-fold and holdout splits: a partition, stratified, deterministic, for tensors and Datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from secateurs.search.folds import holdout, kfold, labels_of, make_folds


def _data(n_per_class=(30, 20, 10), seed=0):
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    g = torch.Generator().manual_seed(seed)
    y = y[torch.randperm(len(y), generator=g)]
    return torch.randn(len(y), 4, generator=g), y


def test_kfold_partitions_every_example_once():
    x, y = _data()
    folds = kfold((x, y), 5, seed=1)
    assert [f.index for f in folds] == list(range(5))
    vals = np.concatenate([f.val_idx for f in folds])
    assert sorted(vals.tolist()) == list(range(len(y)))
    for f in folds:
        assert set(f.train_idx).isdisjoint(f.val_idx)
        assert len(f.train_idx) + len(f.val_idx) == len(y)


def test_kfold_is_stratified():
    x, y = _data((30, 20, 10))
    for f in kfold((x, y), 5, seed=0):
        counts = np.bincount(y[f.val_idx].numpy(), minlength=3)
        assert counts.tolist() == [6, 4, 2]  # each class split evenly over the 5 folds


def test_unstratified_kfold_ignores_classes():
    x, y = _data((30, 20, 10))
    strat = [np.bincount(y[f.val_idx].numpy(), minlength=3) for f in kfold((x, y), 5)]
    plain = [
        np.bincount(y[f.val_idx].numpy(), minlength=3) for f in kfold((x, y), 5, stratified=False)
    ]
    assert all(c.tolist() == [6, 4, 2] for c in strat)
    assert any(c.tolist() != [6, 4, 2] for c in plain)


def test_folds_are_deterministic_by_seed():
    x, y = _data()
    a, b, c = kfold((x, y), 4, seed=3), kfold((x, y), 4, seed=3), kfold((x, y), 4, seed=4)
    assert all(np.array_equal(p.val_idx, q.val_idx) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p.val_idx, q.val_idx) for p, q in zip(a, c, strict=True))


def test_subsets_and_loaders_hold_the_right_examples():
    x, y = _data()
    f = kfold((x, y), 3)[1]
    train, val = f.subsets((x, y))
    assert torch.equal(val[:][0], x[f.val_idx])
    assert torch.equal(train[:][1], y[f.train_idx])
    _, val_loader = f.loaders((x, y), batch_size=8)
    got = torch.cat([yb for _, yb in val_loader])
    assert torch.equal(got, y[f.val_idx])


class _Pairs(Dataset):
    def __init__(self, y):
        self.y = y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return torch.tensor([float(i)]), int(self.y[i])


def test_dataset_input_is_stratified_too():
    _, y = _data((30, 20, 10))
    ds = _Pairs(y.tolist())
    assert labels_of(ds).tolist() == y.tolist()
    for f in kfold(ds, 5):
        assert np.bincount(y[f.val_idx].numpy(), minlength=3).tolist() == [6, 4, 2]
        _, val = f.subsets(ds)
        assert [int(val[i][0].item()) for i in range(len(val))] == f.val_idx.tolist()


def test_holdout_fraction_and_stratification():
    x, y = _data((40, 40, 20))
    (f,) = holdout((x, y), 0.25, seed=0)
    assert len(f.val_idx) == 25
    assert np.bincount(y[f.val_idx].numpy(), minlength=3).tolist() == [10, 10, 5]
    assert len(make_folds((x, y), k=None, val=0.25)) == 1


def test_regression_targets_fall_back_to_plain_kfold():
    x = torch.randn(20, 3)
    y = torch.randn(20)
    folds = kfold((x, y), 4)
    assert sorted(np.concatenate([f.val_idx for f in folds]).tolist()) == list(range(20))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda d: kfold(d, 1), "k must be an integer >= 2"),
        (lambda d: kfold(d, 100), "at least 100 examples"),
        (lambda d: kfold(d, 11), "rarest class has 10"),
        (lambda d: holdout(d, 1.5), "val must be a fraction"),
        (lambda d: kfold((d[0], d[1][:5]), 2), "must match"),
        (lambda d: kfold([1, 2, 3], 2), "pair of tensors"),
    ],
)
def test_bad_input_is_explained(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(_data())
