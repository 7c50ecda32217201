"""What a training run is watched for: validation progress, loss spikes and non-finite steps
(gradient norms and clipping: `secateurs.clip.GradNormRecorder`)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from torch import nn

from secateurs.train import StepRecord
from secateurs.zoo.registry import Task, TaskData


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
