"""Thresholds that follow a schedule: any rule setting, set from the step before each call.

Rules read their settings when called, so a schedule only has to set them:

    rule = Scheduled(ByNorm(10.0), max_norm=lambda step: 10.0 if step < 100 else 1.0)

The step counts the wrapper's calls (one per optimizer step) and is saved in `state_dict()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from secateurs.clip._grads import Target
from secateurs.clip.base import Rule
from secateurs.clip.policy import Policy
from secateurs.clip.stats import ClipStats


class Scheduled(Rule):
    """Set `rule`'s attributes from `schedules` (name -> fn(step)) before each call of it."""

    def __init__(self, rule: Rule, **schedules: Callable[[int], Any]) -> None:
        if not isinstance(rule, Rule):
            raise TypeError(f"Scheduled takes a clipping rule, got {type(rule).__name__}")
        if not schedules:
            raise ValueError("give at least one schedule, e.g. max_norm=lambda step: ...")
        for name, fn in schedules.items():
            if not hasattr(rule, name):
                raise AttributeError(f"{type(rule).__name__} has no setting {name!r} to schedule")
            if not callable(fn):
                raise TypeError(f"the schedule for {name!r} must be a function of the step")
        self.rule = rule
        self.schedules = dict(schedules)
        self.step = 0

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.rule.name

    @property
    def nonfinite(self) -> Policy:  # type: ignore[override]
        return self.rule.nonfinite

    @nonfinite.setter
    def nonfinite(self, value: Policy) -> None:
        self.rule.nonfinite = value

    def apply(self, parameters: Target) -> ClipStats:
        for name, fn in self.schedules.items():
            setattr(self.rule, name, fn(self.step))
        self.step += 1
        return self.rule.apply(parameters)

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "rule": self.rule.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.rule.load_state_dict(state.get("rule", {}))

    def _describe(self) -> str:
        return f"{self.rule!r}, schedules={sorted(self.schedules)}, step={self.step}"
