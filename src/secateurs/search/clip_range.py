"""Clipping thresholds from data: a short warm-up run records the gradient norms.

`secateurs.train.record_norms` trains a copy of the model without clipping and records each
step's global L2 gradient norm and largest |gradient element|. From them come:
- norm thresholds (for ByNorm): percentiles of the norms, as AutoClip chooses its threshold
  (Seetharaman et al., 2020), and 0.5x to 10x the average norm, the range Pascanu et al.
  (2013) advise;
- value thresholds (for ByValue): percentiles of the per-step largest |g|.
The caller's model is not changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn


def _sig(x: float, digits: int = 4) -> float:
    """Round to `digits` significant digits (thresholds need no more)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def _unique(values: Iterable[float]) -> list[float]:
    return sorted({_sig(float(v)) for v in values if v > 0 and math.isfinite(v)})


@dataclass
class ClipSuggestion:
    """Recorded statistics and the thresholds derived from them, per rule."""

    steps: int
    mean: float
    percentiles: dict[float, float] = field(default_factory=dict)
    multiples: dict[float, float] = field(default_factory=dict)
    value_percentiles: dict[float, float] = field(default_factory=dict)

    @property
    def by_norm(self) -> list[float]:
        """Max-norm thresholds: percentiles and multiples of the mean norm, sorted."""
        return _unique([*self.percentiles.values(), *self.multiples.values()])

    @property
    def by_value(self) -> list[float]:
        """Per-element thresholds: percentiles of the per-step largest |g|, sorted."""
        return _unique(self.value_percentiles.values())

    def for_rule(self, rule: str) -> list[float]:
        """The thresholds that suit a clip rule ('norm' or 'value')."""
        if rule == "norm":
            return self.by_norm
        if rule == "value":
            return self.by_value
        raise ValueError(f"thresholds are suggested for rules 'norm' and 'value', not {rule!r}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "mean_norm": self.mean,
            "norm_percentiles": {str(k): v for k, v in self.percentiles.items()},
            "multiples_of_mean": {str(k): v for k, v in self.multiples.items()},
            "max_abs_percentiles": {str(k): v for k, v in self.value_percentiles.items()},
            "by_norm": self.by_norm,
            "by_value": self.by_value,
        }


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
    if any(not (m > 0 and math.isfinite(m)) for m in multipliers):
        raise ValueError(f"multipliers must be positive numbers, got {list(multipliers)}")
    record = record_norms(model, data, steps, lr=lr, loss_fn=loss_fn)
    mean = record.mean
    return ClipSuggestion(
        steps=len(record.norms),
        mean=mean,
        percentiles={float(p): record.percentile(p) for p in percentiles},
        multiples={float(m): m * mean for m in multipliers},
        value_percentiles={float(p): record.value_percentile(p) for p in percentiles},
    )
