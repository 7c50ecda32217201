"""Model inputs in the three forms secateurs accepts everywhere.

A tensor (``model(x)``), a tuple or list of positional inputs (``model(*x)``) or a mapping of
keyword inputs (``model(**x)``, as Hugging Face models take them; a tokenizer's
``BatchEncoding`` is a mapping but not a dict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


def call_model(model: nn.Module, inputs: Any) -> Any:
    """Call `model` on `inputs` given as a tensor, a tuple/list or a mapping of keywords."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple | list):
        return model(*inputs)
    return model(inputs)


def move_inputs(inputs: Any, device: torch.device) -> Any:
    """`inputs` (a tensor, or tensors nested in dicts, tuples and lists) moved to `device`."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device, non_blocking=True)
    if isinstance(inputs, Mapping):
        return {k: move_inputs(v, device) for k, v in inputs.items()}
    if isinstance(inputs, tuple | list):
        return type(inputs)(move_inputs(v, device) for v in inputs)
    return inputs
