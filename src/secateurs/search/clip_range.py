"""Clipping thresholds from data: a short warm-up run records the gradient norms.

`secateurs.train.record_norms` trains a copy of the model without clipping and records each
step's global L2 gradient norm and largest |gradient element|. From them come:
- norm thresholds (for ByNorm): percentiles of the norms, as AutoClip chooses its threshold
  (Seetharaman et al., 2020), and 0.5x to 10x the average norm, the range Pascanu et al.
  (2013) advise;
- value thresholds (for ByValue): percentiles of the per-step largest |g|.
The caller's model is not changed. The thresholds come from `NormRecord.suggest`, the one
suggester (a `ClipSuggestion`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch import nn

from secateurs.clip.recorder import ClipSuggestion


def suggest_clip_thresholds(
    model: nn.Module,
    data: Iterable,
    steps: int = 50,
    *,
    lr: float = 1e-3,
    loss_fn: Callable[[Any, Any], Any] | None = None,
    percentiles: Sequence[float] = (10.0, 50.0, 90.0),
    multipliers: Sequence[float] = (0.5, 1.0, 2.0, 5.0, 10.0),
) -> ClipSuggestion:
    """Train a copy of `model` for `steps` steps (Adam(lr), no clipping), recording gradient
    norms, and suggest thresholds for ByNorm and ByValue."""
    from secateurs.train import record_norms

    if any(not 0 < p <= 100 for p in percentiles):
        raise ValueError(f"percentiles must lie in (0, 100], got {list(percentiles)}")
    return record_norms(model, data, steps, lr=lr, loss_fn=loss_fn).suggest(
        percentiles, multipliers
    )
