"""Task metrics over a data loader: accuracy and mean loss."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def accuracy(model: nn.Module, data: Iterable) -> float:
    """Top-1 accuracy in [0, 1] over batches of (inputs, integer labels)."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    correct = torch.zeros((), dtype=torch.long, device=device)
    total = 0
    try:
        for x, y in data:
            x, y = x.to(device), y.to(device)
            correct += (model(x).argmax(-1) == y).sum()
            total += y.numel()
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("accuracy needs at least one example; the data was empty")
    return int(correct) / total


@torch.no_grad()
def mean_loss(model: nn.Module, data: Iterable, loss_fn: Callable | None = None) -> float:
    """Mean loss per example over batches of (inputs, targets).

    `loss_fn(outputs, targets)` returns the batch mean (cross-entropy by default); batches are
    weighted by their size, so a short last batch counts as much as its examples.
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    was_training = model.training
    model.eval()
    device = _device_of(model)
    total = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    try:
        for x, y in data:
            x, y = x.to(device), y.to(device)
            total += loss_fn(model(x), y).double() * len(y)
            n += len(y)
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("mean_loss needs at least one example; the data was empty")
    return float(total) / n
