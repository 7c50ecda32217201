"""What a training run is watched for: gradient norms, clipping, validation progress,
loss spikes and non-finite steps."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from secateurs.train import StepRecord
from secateurs.zoo.registry import Task, TaskData


def _grads(target: Any) -> list[torch.Tensor]:
    params = target.parameters() if isinstance(target, nn.Module) else target
    return [p.grad for p in params if p.grad is not None]


class GradMonitor:
    """Wraps a clipping rule (or none) and records, at every call, the global L2 norm and
    the largest |element| of the gradients before the rule acts, and whether it clipped.

    Use it wherever a rule goes (`clip=` of `secateurs.train.fit` or a zoo task's `train`).
    """

    def __init__(self, rule: Callable[[Any], Any] | None = None) -> None:
        self.rule = rule
        self.norms: list[float] = []
        self.max_abs: list[float] = []
        self.clipped: list[bool] = []
        self.skipped = 0

    def __call__(self, target: Any) -> Any:
        grads = _grads(target)
        with torch.no_grad():
            if grads:
                per = torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads])
                big = torch.stack([g.detach().abs().max().float() for g in grads])
                self.norms.append(float(torch.linalg.vector_norm(per)))
                self.max_abs.append(float(big.max()))
            else:
                self.norms.append(0.0)
                self.max_abs.append(0.0)
        stats = self.rule(target) if self.rule is not None else None
        self.clipped.append(bool(getattr(stats, "clipped", False)))
        self.skipped += bool(getattr(stats, "skipped", False))
        return stats

    @property
    def clipped_steps(self) -> list[int]:
        return [i for i, c in enumerate(self.clipped) if c]

    @property
    def clip_rate(self) -> float | None:
        """Fraction of calls where the rule changed the gradients (None without a rule)."""
        if self.rule is None or not self.clipped:
            return None
        return sum(self.clipped) / len(self.clipped)

    def percentile(self, q: float, values: str = "norms") -> float:
        """q-th percentile (0..100) of the finite recorded norms (or `max_abs`)."""
        xs = sorted(v for v in getattr(self, values) if math.isfinite(v))
        if not xs:
            raise ValueError("no finite gradient norm was recorded")
        return float(torch.quantile(torch.tensor(xs, dtype=torch.float64), q / 100.0))


class ValidationTracker:
    """A training callback that evaluates the task metric every `every` steps and notes the
    first step at which it meets the task's target (steps to target)."""

    def __init__(self, task: Task, data: TaskData, every: int) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.task, self.data, self.every = task, data, every
        self.history: list[tuple[int, float]] = []
        self.steps_to_target: int | None = None

    def on_step_end(self, record: StepRecord, model: nn.Module) -> bool:
        step = record.step + 1
        if step % self.every == 0:
            value = self.task.evaluate(model, self.data, "val")[self.task.metric]
            self.history.append((step, value))
            if self.steps_to_target is None and self.task.reached(value):
                self.steps_to_target = step
        return False


def loss_spikes(losses: Sequence[float], window: int = 20, z: float = 5.0) -> int:
    """Steps whose loss jumps above the recent level: more than `z` robust standard
    deviations (1.4826 x median absolute deviation) and 5 % above the median of the
    previous `window` finite losses. Works for losses of any sign (GAN losses)."""
    count = 0
    recent: list[float] = []
    for x in losses:
        if not math.isfinite(x):
            continue
        if len(recent) >= window:
            prev = recent[-window:]
            m = statistics.median(prev)
            mad = 1.4826 * statistics.median(abs(v - m) for v in prev)
            if x - m > z * mad and x - m > 0.05 * abs(m):
                count += 1
        recent.append(x)
    return count


def nonfinite_steps(records: Sequence[StepRecord]) -> int:
    """Steps whose loss was NaN/inf or whose update was skipped."""
    return sum(1 for r in records if r.skipped or not math.isfinite(r.loss))
