"""Wall-clock latency with warm-up and repeated runs; medians, not single timings."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from secateurs._inputs import call_model


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median, first and third quartile over `runs` repeats."""

    median: float
    q1: float
    q3: float
    runs: int

    def as_dict(self) -> dict[str, float | int]:
        return {"median_s": self.median, "q1_s": self.q1, "q3_s": self.q3, "runs": self.runs}


def time_callable(fn: Callable[[], Any], *, warmup: int = 3, runs: int = 20) -> Timing:
    """Time `fn()` `runs` times after `warmup` calls; synchronises CUDA when present."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    qs = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return Timing(statistics.median(times), qs[0], qs[2], runs)


def measure_latency(
    model: nn.Module, example_inputs: Any, *, warmup: int = 3, runs: int = 20
) -> Timing:
    """Inference latency of `model` on `example_inputs` in eval mode without autograd."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return time_callable(
                lambda: call_model(model, example_inputs), warmup=warmup, runs=runs
            )
    finally:
        model.train(was_training)
