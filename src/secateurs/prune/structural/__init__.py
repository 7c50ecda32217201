"""Structured pruning: physically remove channels, neurons, RNN hidden units and heads."""

from secateurs.prune.structural.api import StructuredReport, find_groups, structured
from secateurs.prune.structural.distill import DistillLoss, distill
from secateurs.prune.structural.importance import BNScalePenalty
from secateurs.prune.structural.modules import HeadPrunedAttention

__all__ = [
    "BNScalePenalty",
    "DistillLoss",
    "HeadPrunedAttention",
    "StructuredReport",
    "distill",
    "find_groups",
    "structured",
]
