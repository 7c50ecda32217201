"""Record gradient norms during a warm-up run, to choose clipping thresholds from data.

Pascanu et al. (2013) suggest a norm threshold between about 0.5x and 10x the average norm
seen over many updates; AutoClip uses a low percentile of the history. `NormRecord.suggest()`
offers both kinds of candidates; `secateurs.search` validates them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from secateurs.clip._checks import norm_type as check_norm_type
from secateurs.clip._checks import percentile
from secateurs.clip._grads import Target, grads_of
from secateurs.clip._norms import tensor_norms, total_norm
from secateurs.clip.stats import ClipStats

PASCANU_FACTORS = (0.5, 1.0, 2.0, 5.0, 10.0)


def _sig(x: float, digits: int = 4) -> float:
    """Round to `digits` significant digits (thresholds need no more)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def _unique(values: Iterable[float]) -> list[float]:
    return sorted({_sig(float(v)) for v in values if v > 0 and math.isfinite(v)})


@dataclass
class ClipSuggestion:
    """Thresholds derived from recorded gradient norms, per rule (`NormRecord.suggest`)."""

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
        """The thresholds that suit a clip rule ('norm' or 'value', as in `clip.RULES`)."""
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

    def suggest(
        self,
        percentiles: Iterable[float] = (10.0, 50.0, 90.0),
        multipliers: Iterable[float] = PASCANU_FACTORS,
    ) -> ClipSuggestion:
        """Candidate thresholds: for ByNorm, percentiles of the norms (AutoClip's choice) and
        multiples of the mean norm (Pascanu's 0.5x..10x); for ByValue, percentiles of the
        per-step max |g|."""
        qs = [percentile("percentiles", q) for q in percentiles]
        ms = [float(m) for m in multipliers]
        if any(not (m > 0 and math.isfinite(m)) for m in ms):
            raise ValueError(f"multipliers must be positive numbers, got {ms}")
        mean = self.mean
        return ClipSuggestion(
            steps=len(self.norms),
            mean=mean,
            percentiles={q: self.percentile(q) for q in qs},
            multiples={m: m * mean for m in ms},
            value_percentiles={q: self.value_percentile(q) for q in qs},
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "norm_type": self.norm_type,
            "norms": list(self.norms),
            "max_abs": list(self.max_abs),
        }


class GradNormRecorder:
    """Record the global norm and max |g| of the gradients at each call, before an optional
    `rule` acts (then whether it clipped); its `record` is a NormRecord.

    Without a rule it changes nothing: use it in place of a clipping rule to measure the
    distribution thresholds are chosen from (`record.suggest()`); with `skip_step=True` its
    stats ask the loop not to step (measure gradients only). With a rule it is called like
    the rule and returns the rule's stats.
    """

    name = "record"

    def __init__(
        self,
        rule: Callable[[Target], Any] | None = None,
        norm_type: float | str = 2.0,
        *,
        skip_step: bool = False,
    ) -> None:
        if rule is not None and skip_step:
            raise ValueError("skip_step is for measuring without a rule")
        self.rule = rule
        self.norm_type = check_norm_type(norm_type)
        self.skip_step = bool(skip_step)
        self.record = NormRecord(norm_type=self.norm_type)
        self.clipped: list[bool] = []

    def __call__(self, parameters: Target) -> Any:
        with torch.no_grad():
            grads = grads_of(parameters)
            total = torch.zeros(())
            if grads:
                total, _ = total_norm(grads, self.norm_type)
                max_abs = torch.stack([n.float() for n in tensor_norms(grads, math.inf)]).max()
            self.record.norms.append(float(total))
            self.record.max_abs.append(float(max_abs) if grads else 0.0)
        if self.rule is not None:
            stats = self.rule(parameters)
            self.clipped.append(bool(getattr(stats, "clipped", False)))
            return stats
        return ClipStats(
            self.name, norm_before=total, norm_after=total, coef=1.0, skipped=self.skip_step
        )

    @property
    def clipped_steps(self) -> list[int]:
        """The calls at which the rule changed the gradients."""
        return [i for i, c in enumerate(self.clipped) if c]

    @property
    def clip_rate(self) -> float | None:
        """Fraction of calls where the rule changed the gradients (None without a rule)."""
        if self.rule is None or not self.clipped:
            return None
        return sum(self.clipped) / len(self.clipped)

    def state_dict(self) -> dict[str, Any]:
        return self.record.as_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.record = NormRecord(
            norms=[float(v) for v in state["norms"]],
            max_abs=[float(v) for v in state["max_abs"]],
            norm_type=float(state.get("norm_type", self.norm_type)),
        )
