"""Clipping by value: every gradient element clamped to [-c, c] (Keras `clipvalue`)."""

from __future__ import annotations

import math

import torch

from secateurs.clip._checks import positive
from secateurs.clip._grads import Target, grads_of
from secateurs.clip._norms import local, tensor_norms
from secateurs.clip.base import Rule
from secateurs.clip.policy import Policy, apply_policy, count_nonfinite
from secateurs.clip.stats import ClipStats


class ByValue(Rule):
    """Clamp every gradient element to [-clip, clip] in one pass over memory.

    `torch.nn.utils.clip_grad_value_` makes two passes (clamp_min, then clamp_max); this
    clamps each tensor once. By default (`nonfinite=None`) nothing else is read, so the stats
    hold no norms: +-inf elements become +-clip by definition and NaN stays NaN, as in torch.
    With a policy ("skip", "error", "zero") one more read pass measures each tensor's largest
    magnitude: it finds non-finite gradients and reports `norm_before`/`norm_after` as
    max-abs (inf) norms, the quantity value clipping bounds, and whether anything was clipped.
    """

    name = "value"
    threshold_setting = "clip"

    def __init__(self, clip: float, *, nonfinite: Policy = None) -> None:
        super().__init__(nonfinite)
        self.clip = positive("clip", clip)

    def apply(self, parameters: Target) -> ClipStats:
        grads = grads_of(parameters)
        if not grads:
            return ClipStats(self.name, norm_before=0.0, norm_after=0.0, nonfinite=0)
        c = self.clip
        if self.nonfinite is None:
            for g in grads:
                local(g).clamp_(-c, c)
            return ClipStats(self.name)
        per = tensor_norms(grads, math.inf)
        bad = count_nonfinite(per)
        action = apply_policy(self.nonfinite, grads, bad)
        if action == "zeroed":
            per = tensor_norms(grads, math.inf)
        before = torch.stack([n.float().to(per[0].device) for n in per]).max()
        if action == "skip":
            return ClipStats.skipped_step(self.name, before, bad, coef=None)
        for g in grads:
            local(g).clamp_(-c, c)
        return ClipStats(
            self.name,
            norm_before=before,
            norm_after=before.clamp(max=c),
            nonfinite=bad,
            clipped=before > c,
        )

    def _describe(self) -> str:
        return f"clip={self.clip}, nonfinite={self.nonfinite!r}"
