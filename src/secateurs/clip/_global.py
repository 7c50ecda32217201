"""Shared machinery of the rules that scale all gradients by one factor from the global norm."""

from __future__ import annotations

import abc

import torch

from secateurs.clip._checks import norm_type as check_norm_type
from secateurs.clip._grads import Target, grads_of
from secateurs.clip._norms import scale_, total_norm
from secateurs.clip.base import Rule
from secateurs.clip.policy import Policy, apply_policy, count_nonfinite
from secateurs.clip.stats import ClipStats


class GlobalNormRule(Rule):
    """Measure the global norm, ask `threshold(total)` for the largest allowed norm, and scale.

    The factor is `min(1, threshold / (total + 1e-6))`, applied with one foreach multiply even
    when it is 1 (as PyTorch does), so that no host synchronisation is needed.
    """

    def __init__(self, norm_type: float | str, nonfinite: Policy) -> None:
        super().__init__(nonfinite)
        self.norm_type = check_norm_type(norm_type)

    @abc.abstractmethod
    def threshold(self, total: torch.Tensor) -> torch.Tensor | float:
        """The norm allowed this step, given the pre-clip global norm (may update state)."""

    def apply(self, parameters: Target) -> ClipStats:
        grads = grads_of(parameters)
        if not grads:
            return ClipStats(self.name, norm_before=0.0, norm_after=0.0, coef=1.0, nonfinite=0)
        total, per = total_norm(grads, self.norm_type)
        if self.nonfinite is not None and bool(torch.isfinite(total)):
            # The usual case, read from the total alone: every tensor is finite.
            bad: torch.Tensor | int = 0
            action = "ok"
        else:
            bad = count_nonfinite(per)
            action = apply_policy(self.nonfinite, grads, bad)  # type: ignore[arg-type]
        if action == "skip":
            return ClipStats.skipped_step(self.name, total, bad)
        if action == "zeroed":
            total, per = total_norm(grads, self.norm_type)
        limit = self.threshold(total)
        coef = torch.clamp(limit / (total + 1e-6), max=1.0)
        scale_(grads, coef)
        return ClipStats(
            self.name,
            norm_before=total,
            norm_after=total * coef,
            coef=coef,
            nonfinite=bad,
            clipped=total > limit,
            extra={"threshold": limit},
        )
