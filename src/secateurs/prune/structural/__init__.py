"""Structured pruning: physically remove channels, neurons, RNN hidden units and heads."""

from secateurs.prune.structural.api import find_groups, structured
from secateurs.prune.structural.distill import DistillLoss, distill
from secateurs.prune.structural.importance import BNScalePenalty
from secateurs.prune.structural.modules import HeadPrunedAttention

__all__ = [
    "BNScalePenalty",
    "DistillLoss",
    "HeadPrunedAttention",
    "distill",
    "find_groups",
    "structured",
]
