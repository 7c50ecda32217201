"""Shared machinery of the rules that scale all gradients by one factor from the global norm."""

from __future__ import annotations

import abc
from collections.abc import Callable

import torch

from secateurs.clip._checks import norm_type as check_norm_type
from secateurs.clip._grads import Target, grads_of
from secateurs.clip._norms import scale_, total_norm
from secateurs.clip.base import Rule
from secateurs.clip.policy import Policy, apply_policy, count_nonfinite
from secateurs.clip.stats import ClipStats


def clip_global_norm(
    rule: Rule,
    parameters: Target,
    norm_type: float,
    threshold: Callable[[torch.Tensor], torch.Tensor | float],
    *,
    stateless: bool = False,
) -> ClipStats:
    """Measure the global norm, ask `threshold(total)` for the largest allowed norm, and scale.

    The factor is `min(1, threshold / (total + 1e-6))`, applied with one foreach multiply even
    when it is 1 (as PyTorch does). `rule` supplies the name and the non-finite policy, read
    now (rules read their settings at call time). A `stateless` threshold may see a non-finite
    norm: then the "skip" policy is decided on the device (no host synchronisation).
    """
    grads = grads_of(parameters)
    if not grads:
        return ClipStats(rule.name, norm_before=0.0, norm_after=0.0, coef=1.0, nonfinite=0)
    total, per = total_norm(grads, norm_type)
    skip: torch.Tensor | None = None
    if rule.nonfinite == "skip" and stateless:
        counted = count_nonfinite(per)
        bad: torch.Tensor | int = counted
        skip = counted > 0  # decided on the device; a skipped step keeps factor 1
    elif rule.nonfinite is not None and bool(torch.isfinite(total)):
        # The usual case, read from the total alone: every tensor is finite.
        bad = 0
    else:
        bad = count_nonfinite(per)
        action = apply_policy(rule.nonfinite, grads, bad)  # type: ignore[arg-type]
        if action == "skip":
            return ClipStats.skipped_step(rule.name, total, bad)
        if action == "zeroed":
            total, per = total_norm(grads, norm_type)
    limit = threshold(total)
    coef = torch.clamp(limit / (total + 1e-6), max=1.0)
    clipped = total > limit
    if skip is not None:
        coef = torch.where(skip, 1.0, coef)
        clipped = clipped & ~skip
    scale_(grads, coef)
    return ClipStats(
        rule.name,
        norm_before=total,
        norm_after=total * coef,
        coef=coef,
        nonfinite=bad,
        skipped=False if skip is None else skip,
        clipped=clipped,
        extra={"threshold": limit},
    )


class GlobalNormRule(Rule):
    """A rule that scales all gradients by one factor from the global norm; subclasses say
    how large the norm may be this step (`threshold`)."""

    def __init__(self, norm_type: float | str, nonfinite: Policy) -> None:
        super().__init__(nonfinite)
        self.norm_type = check_norm_type(norm_type)

    @abc.abstractmethod
    def threshold(self, total: torch.Tensor) -> torch.Tensor | float:
        """The norm allowed this step, given the pre-clip global norm (may update state)."""

    def apply(self, parameters: Target) -> ClipStats:
        return clip_global_norm(self, parameters, self.norm_type, self.threshold)
