"""Hugging Face's ``Conv1D`` (GPT-2 and relatives): a Linear whose weight is stored (in, out).

Recognised by name so that nothing imports transformers for it. Its output units are the
weight's columns (dim 1) and its input positions the rows (dim 0): the opposite of nn.Linear.
"""

from __future__ import annotations

from torch import nn


def is_conv1d(module: nn.Module) -> bool:
    """Whether `module` is ``transformers.pytorch_utils.Conv1D``."""
    cls = type(module)
    return cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers")
