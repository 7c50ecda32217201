"""The shape every clipping rule shares: a small object called once per optimizer step."""

from __future__ import annotations

import abc
from typing import Any

import torch

from secateurs.clip._grads import Target
from secateurs.clip.policy import Policy, check_policy
from secateurs.clip.stats import ClipStats


class Rule(abc.ABC):
    """A gradient clipping rule.

    Call it as `rule(model_or_parameters)` after `backward()` (and after
    `GradScaler.unscale_`) and before `optimizer.step()`; it changes the gradients in place
    and returns a `ClipStats`. Rules with state (AutoClip, ZClip) save and restore it with
    `state_dict()` / `load_state_dict()`, like optimizers.
    """

    name = "rule"
    #: the constructor argument a recipe's or config's one `threshold` sets (see `RULES`)
    threshold_setting = ""

    def __init__(self, nonfinite: Policy = "skip") -> None:
        self.nonfinite: Policy = check_policy(nonfinite)

    def __call__(self, parameters: Target) -> ClipStats:
        with torch.no_grad():
            return self.apply(parameters)

    @abc.abstractmethod
    def apply(self, parameters: Target) -> ClipStats:
        """Clip the gradients of `parameters` in place and report what was done."""

    def state_dict(self) -> dict[str, Any]:
        """The rule's state (empty for stateless rules)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict()` returned."""
        if state:
            raise ValueError(f"{self.name} keeps no state, but state has keys {sorted(state)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"

    def _describe(self) -> str:
        return f"nonfinite={self.nonfinite!r}"
