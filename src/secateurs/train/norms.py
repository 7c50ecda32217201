"""Measure the gradient-norm distribution of a short training run, to choose clip thresholds.

This runs a training loop, so it lives in `train` (above `clip`): `clip` only records what a
loop hands it (`GradNormRecorder`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from secateurs.clip._checks import count
from secateurs.clip.recorder import GradNormRecorder, NormRecord
from secateurs.train.loop import fit


def record_norms(
    model: nn.Module,
    data: Iterable,
    steps: int = 100,
    *,
    optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
    lr: float = 1e-3,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    norm_type: float | str = 2.0,
    train: bool = True,
    copy_model: bool = True,
) -> NormRecord:
    """Run up to `steps` optimizer steps (or backward passes) and record the gradient norms.

    - `train=True` trains (by default a deep copy of `model`, so yours is unchanged) with
      `optimizer(params)` (default Adam(lr)) without clipping, recording each step's norms:
      the distribution a clip threshold should be chosen from.
    - `train=False` only computes gradients batch by batch (weights fixed).
    `data` yields (inputs, targets) batches; it is cycled if it runs out.
    """
    steps = count("steps", steps)
    net = copy.deepcopy(model) if copy_model else model
    recorder = GradNormRecorder(norm_type=norm_type, skip_step=not train)
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no parameters that require gradients")
    if train:
        opt = optimizer(params) if optimizer is not None else torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.SGD(params, lr=0.0)  # never stepped: the recorder skips every step
    while len(recorder.record.norms) < steps:
        before = len(recorder.record.norms)
        fit(
            net,
            data,
            optimizer=opt,
            loss_fn=loss_fn,
            clip=recorder,
            max_steps=steps - before,
        )
        if len(recorder.record.norms) == before:
            raise ValueError("data yielded no batches; pass a non-empty iterable of batches")
    return recorder.record
