"""Multiply-accumulate counts from PyTorch's own FLOP counter."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from secateurs._inputs import call_model


def count_macs(model: nn.Module, example_inputs: Any) -> int:
    """MACs of one forward pass on `example_inputs` (a tensor, a tuple or a dict of kwargs).

    Counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions, attention);
    one MAC is two FLOPs. Dense counts: zeros left by unstructured pruning still count.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            call_model(model, example_inputs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
