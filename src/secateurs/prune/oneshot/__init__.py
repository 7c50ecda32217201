"""One-shot pruning from calibration data: Wanda and SparseGPT, block by block."""

from secateurs.prune.oneshot.api import sparsegpt_, wanda_
from secateurs.prune.oneshot.rules import Pattern, SingularHessianError, SparseGPT, Wanda

__all__ = ["Pattern", "SingularHessianError", "SparseGPT", "Wanda", "sparsegpt_", "wanda_"]
