"""A running summary of clipping: clip rate, a bounded norm history, skips, non-finite steps.

Counts stay tensors on the gradients' device; nothing is read until `summary()` is called.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from secateurs.clip._checks import count
from secateurs.clip._grads import Target
from secateurs.clip.stats import ClipStats

ALL_CLIPPED_MIN_STEPS = 20  # fewer steps say little about a threshold


class ClipMonitor:
    """Record what a rule did, step after step.

    Use it around a rule (`rule = ClipMonitor(ByNorm(1.0))`: it is called like the rule), or
    feed it yourself with `monitor.update(stats)`, or pass it to `secateurs.train.fit` in
    `callbacks` (it reads each step's clip stats). It keeps the last `history` pre-clip norms.
    """

    def __init__(
        self, rule: Callable[[Target], ClipStats] | None = None, *, history: int = 1000
    ) -> None:
        self.rule = rule
        self.history = count("history", history)
        self.steps = 0
        self._skipped: torch.Tensor | int = 0
        self._norms: torch.Tensor | None = None
        self._pos = 0
        self._filled = 0
        self._clipped: torch.Tensor | int = 0
        self._nonfinite_steps: torch.Tensor | int = 0

    def __call__(self, parameters: Target) -> ClipStats:
        if self.rule is None:
            raise TypeError("this ClipMonitor wraps no rule; construct ClipMonitor(rule)")
        stats = self.rule(parameters)
        self.update(stats)
        return stats

    def on_step_end(self, record: Any, model: Any) -> bool:
        """`secateurs.train.fit` callback: record the step's clip stats, if any."""
        stats = getattr(record, "clip", None)
        if isinstance(stats, ClipStats):
            self.update(stats)
        return False

    def update(self, stats: ClipStats) -> None:
        raw = stats.tensors()
        self.steps += 1
        skip = raw["skipped"]
        if isinstance(skip, torch.Tensor):
            self._skipped = skip.to(torch.int64) + self._skipped
        elif skip:
            self._skipped = self._skipped + 1
        clipped = raw["clipped"]
        if isinstance(clipped, torch.Tensor):
            self._clipped = clipped.to(torch.int64) + self._clipped
        elif clipped:
            self._clipped = self._clipped + 1
        bad = raw["nonfinite"]
        if isinstance(bad, torch.Tensor):
            self._nonfinite_steps = (bad > 0).to(torch.int64) + self._nonfinite_steps
        elif bad:
            self._nonfinite_steps = self._nonfinite_steps + 1
        norm = raw["norm_before"]
        if norm is None:
            return
        norm_t = torch.as_tensor(norm, dtype=torch.float32).detach()
        if self._norms is None:
            self._norms = torch.full((self.history,), float("nan"), device=norm_t.device)
        self._norms[self._pos] = norm_t.to(self._norms.device)
        self._pos = (self._pos + 1) % self.history
        self._filled = min(self._filled + 1, self.history)

    @property
    def norms(self) -> torch.Tensor:
        """The recorded pre-clip norms, oldest first (at most `history`)."""
        if self._norms is None:
            return torch.empty(0)
        if self._filled < self.history:
            return self._norms[: self._filled].clone()
        return torch.cat([self._norms[self._pos :], self._norms[: self._pos]])

    def summary(self) -> dict[str, float | int | None]:
        """Steps, clip rate, skips, non-finite steps and norm statistics, as Python numbers.

        Warns (`UserWarning`) when every one of at least `ALL_CLIPPED_MIN_STEPS` steps was
        clipped: the threshold sits below the typical gradient norm, so clipping acts on
        every step like a smaller learning rate instead of catching the rare large ones.
        """
        norms = self.norms.float()
        finite = norms[torch.isfinite(norms)]
        clipped = int(self._clipped)
        if self.steps >= ALL_CLIPPED_MIN_STEPS and clipped == self.steps:
            median = (
                f" (median norm before clipping {float(finite.median()):.3g})"
                if (finite.numel())
                else ""
            )
            warnings.warn(
                f"every one of the {self.steps} steps was clipped{median}: the threshold is "
                "far below the typical gradient norm, so clipping only shrinks every step; "
                "raise it (e.g. to the median norm: secateurs.train.record_norms suggests "
                "thresholds)",
                UserWarning,
                stacklevel=2,
            )
        return {
            "steps": self.steps,
            "clipped": clipped,
            "clip_rate": clipped / self.steps if self.steps else 0.0,
            "skipped": int(self._skipped),
            "nonfinite_steps": int(self._nonfinite_steps),
            "norm_last": float(norms[-1]) if norms.numel() else None,
            "norm_mean": float(finite.mean()) if finite.numel() else None,
            "norm_median": float(finite.median()) if finite.numel() else None,
            "norm_max": float(finite.max()) if finite.numel() else None,
        }

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "steps": self.steps,
            "skipped": int(self._skipped),
            "clipped": int(self._clipped),
            "nonfinite_steps": int(self._nonfinite_steps),
            "norms": self.norms.cpu(),
        }
        if self.rule is not None and hasattr(self.rule, "state_dict"):
            state["rule"] = self.rule.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        norms = torch.as_tensor(state["norms"], dtype=torch.float32).reshape(-1)[-self.history :]
        self.steps = int(state["steps"])
        self._skipped = int(state["skipped"])
        self._clipped = int(state["clipped"])
        self._nonfinite_steps = int(state["nonfinite_steps"])
        self._norms = torch.full((self.history,), float("nan"))
        self._norms[: norms.numel()] = norms
        self._filled = norms.numel()
        self._pos = self._filled % self.history
        if "rule" in state and self.rule is not None and hasattr(self.rule, "load_state_dict"):
            self.rule.load_state_dict(state["rule"])
