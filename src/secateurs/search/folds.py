"""Deterministic k-fold and holdout splits over a user's data set.

Data is either a pair of tensors ``(x, y)`` (first dimension = examples) or a torch
``Dataset`` whose items are ``(input, label)``. Classification labels make the split
stratified (scikit-learn's StratifiedKFold), so each fold keeps the class proportions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

Data = Any  # tuple[torch.Tensor, torch.Tensor] | Dataset


@dataclass(frozen=True)
class Fold:
    """One split: indices into the data set of the training and validation examples."""

    index: int
    train_idx: np.ndarray
    val_idx: np.ndarray

    def subsets(self, data: Data) -> tuple[Dataset, Dataset]:
        """The training and validation parts of `data` as Datasets."""
        ds = as_dataset(data)
        return _subset(ds, self.train_idx), _subset(ds, self.val_idx)

    def loaders(
        self, data: Data, batch_size: int = 64, seed: int = 0, eval_batch_size: int = 512
    ) -> tuple[DataLoader, DataLoader]:
        """A shuffled (seeded) training loader and an ordered validation loader."""
        train, val = self.subsets(data)
        g = torch.Generator().manual_seed(seed)
        return (
            DataLoader(train, batch_size=batch_size, shuffle=True, generator=g),
            DataLoader(val, batch_size=eval_batch_size),
        )


def as_dataset(data: Data) -> Dataset:
    """A Dataset view of `data`: a pair of tensors becomes a TensorDataset."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
            raise TypeError("data as a pair must hold two tensors (inputs, labels)")
        if len(x) != len(y):
            raise ValueError(f"data: {len(x)} inputs but {len(y)} labels; they must match")
        return TensorDataset(x, y)
    raise TypeError(
        "data must be a pair of tensors (inputs, labels) or a torch Dataset, "
        f"got {type(data).__name__}"
    )


def labels_of(data: Data) -> np.ndarray:
    """The label of every example, as a NumPy array (used to stratify)."""
    ds = as_dataset(data)
    if isinstance(ds, TensorDataset) and len(ds.tensors) >= 2:
        return ds.tensors[1].detach().cpu().numpy()
    # A map-style Dataset has a length; torch.utils.data.Dataset does not declare __len__.
    return np.asarray([_label(ds[i]) for i in range(len(ds))])  # type: ignore[arg-type]


def _label(item: Any) -> Any:
    if not isinstance(item, tuple | list) or len(item) < 2:
        raise TypeError("each item of the Dataset must be (input, label) to split it into folds")
    y = item[1]
    return y.item() if isinstance(y, torch.Tensor) and y.numel() == 1 else y


def _subset(ds: Dataset, idx: np.ndarray) -> Dataset:
    if isinstance(ds, TensorDataset):
        t = torch.as_tensor(idx, dtype=torch.long)
        return TensorDataset(*(x[t] for x in ds.tensors))
    return Subset(ds, idx.tolist())


def _is_classification(y: np.ndarray) -> bool:
    return y.ndim == 1 and (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_)


def kfold(data: Data, k: int = 5, *, stratified: bool = True, seed: int = 0) -> list[Fold]:
    """`k` folds with shuffled, seeded assignment; every example is validated exactly once.

    `stratified=True` keeps class proportions when the labels are integer classes (and
    falls back to plain KFold for other targets, such as regression values).
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    y = labels_of(data)
    n = len(y)
    if n < k:
        raise ValueError(f"k={k} folds need at least {k} examples; the data has {n}")
    if stratified and _is_classification(y):
        counts = np.bincount(y - y.min()) if y.size else np.array([])
        smallest = int(counts[counts > 0].min())
        if smallest < k:
            raise ValueError(
                f"stratified k={k} folds need at least {k} examples of every class; the "
                f"rarest class has {smallest}. Use a smaller k or stratified=False."
            )
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(n), y)
    else:
        splits = KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n))
    return [Fold(i, np.sort(tr), np.sort(va)) for i, (tr, va) in enumerate(splits)]


def holdout(data: Data, val: float = 0.2, *, stratified: bool = True, seed: int = 0) -> list[Fold]:
    """A single train/validation split with a fraction `val` held out (seeded)."""
    from sklearn.model_selection import train_test_split

    if not 0 < val < 1:
        raise ValueError(f"val must be a fraction in (0, 1), got {val!r}")
    y = labels_of(data)
    n = len(y)
    if n < 2:
        raise ValueError(f"a holdout split needs at least 2 examples; the data has {n}")
    strat = y if stratified and _is_classification(y) else None
    tr, va = train_test_split(np.arange(n), test_size=val, stratify=strat, random_state=seed)
    return [Fold(0, np.sort(tr), np.sort(va))]


def make_folds(
    data: Data,
    *,
    k: int | None = 5,
    val: float = 0.2,
    stratified: bool = True,
    seed: int = 0,
) -> list[Fold]:
    """`kfold(data, k)` when `k` is an integer, else `holdout(data, val)`."""
    if k is None:
        return holdout(data, val, stratified=stratified, seed=seed)
    return kfold(data, k, stratified=stratified, seed=seed)
