"""ZClip (Kumar et al. 2025, "ZClip: Adaptive Spike Mitigation for LLM Pre-Training").

The global gradient norm g_t is compared with an exponential moving average of its mean and
variance. During the first `warmup` steps the norms are only collected (nothing is clipped,
except by the optional `max_norm`); then mean and variance start as their average and
(population) variance. Afterwards, with z_t = (g_t - mu) / (sigma + eps):
- z_t <= z: no clipping and the EMA sees g_t;
- z_t > z ("adaptive", the paper's rule): clip to g* = mu + (z^2 / z_t) * sigma, a threshold
  that shrinks as the spike grows; ("mean") clip to g* = mu.
The EMA is updated with the clipped norm g*, so a spike does not inflate the statistics:
mu <- alpha mu + (1 - alpha) g*, var <- alpha var + (1 - alpha) (g* - mu)^2 with the new mu.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from secateurs.clip._checks import count, fraction, positive
from secateurs.clip._global import GlobalNormRule
from secateurs.clip.policy import Policy


class ZClip(GlobalNormRule):
    """Z-score spike clipping on EMA statistics of the global gradient norm."""

    name = "zclip"
    threshold_setting = "z"

    def __init__(
        self,
        z: float = 2.5,
        alpha: float = 0.97,
        warmup: int = 25,
        *,
        mode: Literal["adaptive", "mean"] = "adaptive",
        max_norm: float | None = None,
        eps: float = 1e-6,
        norm_type: float | str = 2.0,
        nonfinite: Policy = "skip",
    ) -> None:
        super().__init__(norm_type, nonfinite)
        self.z = positive("z", z)
        self.alpha = fraction("alpha", alpha)
        self.warmup = count("warmup", warmup)
        if mode not in ("adaptive", "mean"):
            raise ValueError(f"mode must be 'adaptive' or 'mean', got {mode!r}")
        self.mode = mode
        self.max_norm = None if max_norm is None else positive("max_norm", max_norm)
        self.eps = positive("eps", eps)
        self._warm: list[torch.Tensor] = []
        self._mean: torch.Tensor | None = None
        self._var: torch.Tensor | None = None

    @property
    def initialized(self) -> bool:
        return self._mean is not None

    @property
    def mean(self) -> float | None:
        return None if self._mean is None else float(self._mean)

    @property
    def std(self) -> float | None:
        return None if self._var is None else math.sqrt(float(self._var))

    def threshold(self, total: torch.Tensor) -> torch.Tensor:
        g = total.detach().to(torch.float64)
        if self._mean is None:
            self._collect(g)
            limit = torch.full_like(g, math.inf if self.max_norm is None else self.max_norm)
            return limit.to(total.dtype)
        mean, var = self._mean.to(g.device), self._var.to(g.device)  # type: ignore[union-attr]
        std = var.sqrt()
        zscore = (g - mean) / (std + self.eps)
        spike = zscore > self.z
        # the paper's adaptive threshold shrinks as the spike grows; "mean" clips to the mean
        clipped_norm = mean + (self.z**2 / zscore) * std if self.mode == "adaptive" else mean
        limit = torch.where(spike, clipped_norm, torch.full_like(g, math.inf))
        effective = torch.where(spike, clipped_norm, g)
        new_mean = self.alpha * mean + (1 - self.alpha) * effective
        new_var = self.alpha * var + (1 - self.alpha) * (effective - new_mean) ** 2
        finite = torch.isfinite(g)
        self._mean = torch.where(finite, new_mean, mean)
        self._var = torch.where(finite, new_var, var)
        if self.max_norm is not None:
            limit = limit.clamp(max=self.max_norm)
        return limit.to(total.dtype)

    def _collect(self, g: torch.Tensor) -> None:
        self._warm.append(g)
        if len(self._warm) < self.warmup:
            return
        values = torch.stack(self._warm)
        values = values[torch.isfinite(values)]  # one synchronisation, once per run
        self._warm = []
        if values.numel() == 0:
            return  # only non-finite norms so far: warm up again
        self._mean = values.mean()
        self._var = ((values - self._mean) ** 2).mean()

    def state_dict(self) -> dict[str, Any]:
        return {
            "warmup_norms": [float(v) for v in self._warm],
            "mean": None if self._mean is None else float(self._mean),
            "var": None if self._var is None else float(self._var),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"warmup_norms", "mean", "var"} - set(state)
        if missing:
            raise ValueError(f"ZClip state is missing {sorted(missing)}")
        self._warm = [torch.tensor(float(v), dtype=torch.float64) for v in state["warmup_norms"]]
        if (state["mean"] is None) != (state["var"] is None):
            raise ValueError("ZClip state must hold both mean and var, or neither")
        if state["mean"] is None:
            self._mean = self._var = None
        else:
            self._mean = torch.tensor(float(state["mean"]), dtype=torch.float64)
            self._var = torch.tensor(float(state["var"]), dtype=torch.float64)

    def _describe(self) -> str:
        return (
            f"z={self.z}, alpha={self.alpha}, warmup={self.warmup}, mode={self.mode!r}, "
            f"max_norm={self.max_norm}, nonfinite={self.nonfinite!r}"
        )
