"""Record gradient norms during a warm-up run, to choose clipping thresholds from data.

Pascanu et al. (2013) suggest a norm threshold between about 0.5x and 10x the average norm
seen over many updates; AutoClip uses a low percentile of the history. `NormRecord.suggest()`
offers both kinds of candidates; `secateurs.search` validates them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from secateurs.clip._checks import norm_type as check_norm_type
from secateurs.clip._checks import percentile
from secateurs.clip._grads import Target, grads_of
from secateurs.clip._norms import tensor_norms, total_norm
from secateurs.clip.stats import ClipStats

PASCANU_FACTORS = (0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class NormRecord:
    """Global gradient norms (and largest |g| elements) recorded step by step."""

    norms: list[float] = field(default_factory=list)
    max_abs: list[float] = field(default_factory=list)
    norm_type: float = 2.0

    def _finite(self, values: list[float]) -> torch.Tensor:
        t = torch.tensor(values, dtype=torch.float64)
        finite = t[torch.isfinite(t)]
        if finite.numel() and not bool((finite != 0).any()):
            raise ValueError(
                f"all {finite.numel()} recorded gradients are zero: the loss does not depend on "
                "the weights, so it is probably the wrong loss for the task (a loss on detached "
                "or argmax outputs, or targets of the wrong kind); a clipping threshold of 0 "
                "would stop training. Pass the task's loss (loss_fn=)"
            )
        return finite

    @property
    def mean(self) -> float:
        finite = self._finite(self.norms)
        if finite.numel() == 0:
            raise ValueError("no finite gradient norm was recorded; record more steps")
        return float(finite.mean())

    def percentile(self, q: float) -> float:
        """The q-th percentile (0 < q <= 100) of the finite recorded norms."""
        q = percentile("q", q)
        finite = self._finite(self.norms)
        if finite.numel() == 0:
            raise ValueError("no finite gradient norm was recorded; record more steps")
        return float(torch.quantile(finite, q / 100.0))

    def value_percentile(self, q: float) -> float:
        """The q-th percentile of the per-step largest |gradient element| (for ByValue)."""
        q = percentile("q", q)
        finite = self._finite(self.max_abs)
        if finite.numel() == 0:
            raise ValueError("no finite gradient was recorded; record more steps")
        return float(torch.quantile(finite, q / 100.0))

    def suggest(self, percentiles: Iterable[float] = (10, 50, 90)) -> dict[str, list[float]]:
        """Candidate thresholds: `by_norm` (Pascanu's 0.5x..10x the mean norm, and
        percentiles of the norms), `autoclip` (the percentiles themselves) and `by_value`
        (percentiles of the per-step max |g|)."""
        qs = [percentile("percentiles", q) for q in percentiles]
        mean = self.mean
        by_norm = {round(mean * f, 12) for f in PASCANU_FACTORS} | {self.percentile(q) for q in qs}
        by_value = {self.value_percentile(q) for q in qs}
        return {  # a threshold of 0 would zero every gradient: never suggested
            "by_norm": sorted(v for v in by_norm if v > 0),
            "autoclip": qs,
            "by_value": sorted(v for v in by_value if v > 0),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "norm_type": self.norm_type,
            "norms": list(self.norms),
            "max_abs": list(self.max_abs),
        }


class GradNormRecorder:
    """A rule that changes nothing and records the global norm and max |g| of each step.

    Use it in place of (or chained before) a clipping rule; its `record` is a NormRecord.
    With `skip_step=True` its stats ask the loop not to step (measure gradients only).
    """

    name = "record"

    def __init__(self, norm_type: float | str = 2.0, *, skip_step: bool = False) -> None:
        self.norm_type = check_norm_type(norm_type)
        self.skip_step = bool(skip_step)
        self.record = NormRecord(norm_type=self.norm_type)

    def __call__(self, parameters: Target) -> ClipStats:
        with torch.no_grad():
            grads = grads_of(parameters)
            if not grads:
                return ClipStats(self.name, norm_before=0.0, norm_after=0.0, coef=1.0)
            total, _ = total_norm(grads, self.norm_type)
            max_abs = torch.stack([n.float() for n in tensor_norms(grads, math.inf)]).max()
            self.record.norms.append(float(total))
            self.record.max_abs.append(float(max_abs))
            return ClipStats(
                self.name, norm_before=total, norm_after=total, coef=1.0, skipped=self.skip_step
            )

    def state_dict(self) -> dict[str, Any]:
        return self.record.as_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.record = NormRecord(
            norms=[float(v) for v in state["norms"]],
            max_abs=[float(v) for v in state["max_abs"]],
            norm_type=float(state.get("norm_type", self.norm_type)),
        )
