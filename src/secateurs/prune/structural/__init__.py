"""Structured pruning: physically remove channels, neurons, RNN hidden units and heads."""

from secateurs.prune.structural.api import find_groups, structured
from secateurs.prune.structural.distill import DistillLoss, distill
from secateurs.prune.structural.importance import (
    L1,
    L2,
    Activation,
    BNScale,
    BNScalePenalty,
    Importance,
    Random,
    Taylor,
)
from secateurs.prune.structural.modules import HeadPrunedAttention

__all__ = [
    "L1",
    "L2",
    "Activation",
    "BNScale",
    "BNScalePenalty",
    "DistillLoss",
    "HeadPrunedAttention",
    "Importance",
    "Random",
    "Taylor",
    "distill",
    "find_groups",
    "structured",
]
