"""Structured pruning: physically remove channels, neurons, RNN hidden units and heads."""

from secateurs.prune.structured.api import StructuredReport, find_groups, structured
from secateurs.prune.structured.distill import DistillLoss, distill
from secateurs.prune.structured.importance import BNScalePenalty
from secateurs.prune.structured.modules import HeadPrunedAttention

__all__ = [
    "BNScalePenalty",
    "DistillLoss",
    "HeadPrunedAttention",
    "StructuredReport",
    "distill",
    "find_groups",
    "structured",
]
