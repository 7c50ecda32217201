"""Pruning: unstructured (global or per layer, by sparsity or threshold), N:M and structured.

Masks live as parametrizations, so pruned weights stay zero through training and the model
keeps working with `state_dict`, `deepcopy`, pickling and `torch.compile`;
`make_permanent` turns it back into a plain module.
"""

from secateurs.prune import criteria, schedules
from secateurs.prune.callback import PruningCallback
from secateurs.prune.criteria import SNIP, Criterion, Magnitude, Movement, Random, Taylor
from secateurs.prune.mask import Mask
from secateurs.prune.nm import check_nm, nm_
from secateurs.prune.permanent import make_permanent, remove_masks, sparsity_report
from secateurs.prune.structural import structured as structured
from secateurs.prune.summary import GroupChange, LayerReport, PruneReport
from secateurs.prune.targets import DEFAULT, find_targets
from secateurs.prune.unstructured import unstructured_

__all__ = [
    "DEFAULT",
    "SNIP",
    "Criterion",
    "GroupChange",
    "LayerReport",
    "Magnitude",
    "Mask",
    "Movement",
    "PruneReport",
    "PruningCallback",
    "Random",
    "Taylor",
    "check_nm",
    "criteria",
    "find_targets",
    "make_permanent",
    "nm_",
    "remove_masks",
    "schedules",
    "sparsity_report",
    "structured",
    "unstructured_",
]
