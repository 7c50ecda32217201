"""Embedded data sets: nothing is downloaded.

`digits` wraps scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset


@dataclass(frozen=True)
class Split:
    """Train / validation / test tensors of one data set."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def loaders(
        self, batch_size: int = 64, seed: int = 0
    ) -> tuple[DataLoader, DataLoader, DataLoader]:
        """Shuffled training loader (seeded) and ordered validation and test loaders."""
        g = torch.Generator().manual_seed(seed)
        train = DataLoader(
            TensorDataset(self.x_train, self.y_train),
            batch_size=batch_size,
            shuffle=True,
            generator=g,
        )
        val = DataLoader(TensorDataset(self.x_val, self.y_val), batch_size=512)
        test = DataLoader(TensorDataset(self.x_test, self.y_test), batch_size=512)
        return train, val, test


def digits_arrays(image: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as float32 in [0, 1]: (N, 64), or (N, 1, 8, 8) with `image=True`."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    if image:
        x = x.reshape(-1, 1, 8, 8)
    return x, d.target.astype(np.int64)


def digits(image: bool = False, val: float = 0.15, test: float = 0.2, seed: int = 0) -> Split:
    """Stratified train/validation/test split of scikit-learn's digits.

    The split depends only on `seed`, so every model and every run sees the same test set.
    """
    from sklearn.model_selection import train_test_split

    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"val={val} and test={test} must be fractions in (0, 1) summing below 1")
    x, y = digits_arrays(image=image)
    x_rest, x_te, y_rest, y_te = train_test_split(
        x, y, test_size=test, stratify=y, random_state=seed
    )
    x_tr, x_va, y_tr, y_va = train_test_split(
        x_rest, y_rest, test_size=val / (1 - test), stratify=y_rest, random_state=seed
    )
    t = torch.from_numpy
    return Split(t(x_tr), t(y_tr), t(x_va), t(y_va), t(x_te), t(y_te))
