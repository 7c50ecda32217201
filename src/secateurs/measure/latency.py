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


@dataclass(frozen=True)
class Speedup:
    """How much faster `variant` runs than `baseline`: the median over rounds of
    baseline time / variant time, with the quartiles of those per-round ratios.

    Each round times both models back to back (the order alternating), so a noisy moment of
    the machine slows both sides of one ratio instead of one model's whole measurement.
    `within_noise` is true when the interquartile range of the ratios contains 1: the
    measurement cannot tell the two apart, and no speed-up should be claimed.
    """

    ratio: float
    q1: float
    q3: float
    rounds: int

    @property
    def within_noise(self) -> bool:
        return self.q1 <= 1.0 <= self.q3

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "paired_speedup": self.ratio,
            "paired_speedup_q1": self.q1,
            "paired_speedup_q3": self.q3,
            "paired_rounds": self.rounds,
        }

    def __str__(self) -> str:
        if self.within_noise:
            return f"within noise ({self.q1:.2f}x to {self.q3:.2f}x)"
        return f"{self.ratio:.2f}x ({self.q1:.2f} to {self.q3:.2f})"


def compare_latency(
    baseline: nn.Module,
    variant: nn.Module,
    example_inputs: Any,
    *,
    rounds: int = 15,
    warmup: int = 3,
    min_seconds: float = 2e-3,
) -> Speedup:
    """Time `baseline` and `variant` interleaved (A B, B A, ...) after a warm-up of both, in
    eval mode without autograd, and return their `Speedup`. Each timing repeats a call
    enough times to last `min_seconds` (short calls are dominated by timer noise)."""
    if rounds < 2:
        raise ValueError(f"rounds must be >= 2, got {rounds}")
    models = (baseline, variant)
    modes = [m.training for m in models]
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    calls = [lambda m=m: call_model(m, example_inputs) for m in models]
    try:
        for m in models:
            m.eval()
        with torch.inference_mode():
            for fn in calls:
                for _ in range(warmup):
                    fn()
            sync()
            t0 = time.perf_counter()
            calls[0]()
            sync()
            one = max(time.perf_counter() - t0, 1e-7)
            number = max(1, int(min_seconds / one))
            ratios = []
            for r in range(rounds):
                order = (0, 1) if r % 2 == 0 else (1, 0)
                took = [0.0, 0.0]
                for i in order:
                    t0 = time.perf_counter()
                    for _ in range(number):
                        calls[i]()
                    sync()
                    took[i] = time.perf_counter() - t0
                ratios.append(took[0] / took[1])
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return Speedup(statistics.median(ratios), q1, q3, rounds)
