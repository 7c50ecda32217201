"""One-off functions for loops that do not keep a rule object around.

Each builds the rule and applies it once; stateful rules (AutoClip, ZClip) have no functional
form because their value is their history.
"""

from __future__ import annotations

from collections.abc import Iterable

from secateurs.clip._grads import Target
from secateurs.clip.agc import AGC
from secateurs.clip.norm import ByNorm, Scope
from secateurs.clip.policy import Policy
from secateurs.clip.stats import ClipStats
from secateurs.clip.value import ByValue


def clip_grad_norm(
    parameters: Target,
    max_norm: float,
    norm_type: float | str = 2.0,
    *,
    scope: Scope = "global",
    nonfinite: Policy = None,
) -> ClipStats:
    """Clip by norm once (default: no non-finite check, exactly `clip_grad_norm_`)."""
    return ByNorm(max_norm, norm_type, scope, nonfinite=nonfinite)(parameters)


def clip_grad_value(parameters: Target, clip: float, *, nonfinite: Policy = None) -> ClipStats:
    """Clamp every gradient element to [-clip, clip] once (one pass over memory)."""
    return ByValue(clip, nonfinite=nonfinite)(parameters)


def agc(
    parameters: Target,
    clip: float = 0.01,
    eps: float = 1e-3,
    *,
    exclude: str | Iterable[str] = (),
    skip_classifier: bool = True,
    nonfinite: Policy = "skip",
) -> ClipStats:
    """Adaptive gradient clipping once (see `AGC`)."""
    rule = AGC(clip, eps, exclude=exclude, skip_classifier=skip_classifier, nonfinite=nonfinite)
    return rule(parameters)
