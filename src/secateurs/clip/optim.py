"""`wrap(optimizer, rule)`: an optimizer whose `step()` clips first and skips bad steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from secateurs.clip._grads import Target
from secateurs.clip.skip import skip_flag, step_unless
from secateurs.clip.stats import ClipStats


class ClippedOptimizer:
    """Wraps an optimizer: `step()` runs the rule on the gradients, then the optimizer's step,
    unless the rule reports `skipped` (non-finite gradients under nonfinite="skip"): then
    nothing changes, neither parameters nor optimizer state (Adam's moments and step count),
    and `skipped_steps` counts it.

    Everything else (`zero_grad`, `param_groups`, `state`, ...) is the wrapped optimizer's.
    Attach LR schedulers to `.optimizer`. With `torch.amp.GradScaler`: `scaler.step(wrapped)`
    unscales the gradients first, and when it finds inf it does not call `step()` at all, so
    nothing is clipped and a rule's history (AutoClip, ZClip) is not touched.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        rule: Callable[[Target], ClipStats],
        parameters: Target | None = None,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer)}")
        if not callable(rule):
            raise TypeError(f"rule must be a clipping rule, got {type(rule).__name__}")
        self.optimizer = optimizer
        self.rule = rule
        self.parameters = parameters
        self.steps = 0
        self._skipped: torch.Tensor | int = 0
        self.last_stats: ClipStats | None = None

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        target = self.parameters if self.parameters is not None else self.optimizer.param_groups
        stats = self.rule(target)
        self.last_stats = stats
        self.steps += 1
        skip = skip_flag(stats)
        if isinstance(skip, torch.Tensor):
            self._skipped = self._skipped + skip.to(torch.int64)  # stays on the device
        elif skip:
            self._skipped = self._skipped + 1
        step_unless(self.optimizer, skip)
        return loss

    @property
    def skipped_steps(self) -> int:
        """Steps not taken (this reads the count from the device)."""
        return int(self._skipped)

    @skipped_steps.setter
    def skipped_steps(self, value: int) -> None:
        self._skipped = int(value)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        rule_state = self.rule.state_dict() if hasattr(self.rule, "state_dict") else {}
        return {
            "optimizer": self.optimizer.state_dict(),
            "rule": rule_state,
            "steps": self.steps,
            "skipped_steps": self.skipped_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if hasattr(self.rule, "load_state_dict"):
            self.rule.load_state_dict(state.get("rule", {}))
        self.steps = int(state.get("steps", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found here: param_groups, state, defaults, ...
        if name == "optimizer":
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __repr__(self) -> str:
        return f"ClippedOptimizer({type(self.optimizer).__name__}, {self.rule!r})"


def wrap(
    optimizer: torch.optim.Optimizer,
    rule: Callable[[Target], ClipStats],
    model_or_params: Target | None = None,
) -> ClippedOptimizer:
    """Return `optimizer` with `rule` applied before every step (see ClippedOptimizer).

    Pass the model as `model_or_params` for rules that need module structure (AGC's classifier
    exclusion, ByNorm(scope="layer")); by default the rule sees the optimizer's param groups.
    """
    return ClippedOptimizer(optimizer, rule, model_or_params)
