"""Choose the number of CPU threads that is fastest for the work at hand, by measuring it.

Torch uses one thread per core by default. For small models (the demo models: a few million
multiply-adds per example) the work per operation is too small to split, and on a machine
other processes also use, torch's worker threads wait for cores they do not get: on the
2-core machine of BENCHMARKS.md a training step of the digits CNN took 93 ms on one thread and
1.25 s on two while other jobs ran. Bigger models do gain from threads. So the commands that
train (`demo`, `compare`, `sweep`) time a few training steps of their model with one thread
and with torch's default, interleaved, and keep the faster; `--threads N` skips the
measurement.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from secateurs._inputs import call_model


@dataclass(frozen=True)
class ThreadChoice:
    """The chosen thread count and, per candidate, the median seconds of one step."""

    threads: int
    seconds: dict[int, float]

    def describe(self) -> str:
        if len(self.seconds) < 2:
            return f"{self.threads} CPU thread(s)"
        timed = ", ".join(f"{t}: {s * 1e3:.3g} ms" for t, s in sorted(self.seconds.items()))
        return f"{self.threads} CPU thread(s), the fastest per training step ({timed})"


def fastest_threads(
    step: Callable[[], Any],
    candidates: Sequence[int] | None = None,
    *,
    rounds: int = 3,
    clear_factor: float = 3.0,
) -> ThreadChoice:
    """Time `step()` under each thread count (interleaved, one warm-up call each time) and
    set torch to the fastest. Candidates default to 1 and torch's current count. Stops after
    the first round when one candidate is `clear_factor` times slower than another."""
    cands = sorted(set(candidates or (1, torch.get_num_threads())))
    if any(c < 1 for c in cands):
        raise ValueError(f"thread counts must be >= 1, got {cands}")
    before = torch.get_num_threads()
    times: dict[int, list[float]] = {c: [] for c in cands}
    if len(cands) > 1:
        try:
            for r in range(rounds):
                for c in cands:
                    torch.set_num_threads(c)
                    step()
                    t0 = time.perf_counter()
                    step()
                    times[c].append(time.perf_counter() - t0)
                firsts = [v[0] for v in times.values()]
                if r == 0 and max(firsts) > clear_factor * min(firsts):
                    break
        finally:
            torch.set_num_threads(before)
    medians = {c: statistics.median(v) for c, v in times.items() if v}
    best = min(medians, key=medians.__getitem__) if medians else cands[0]
    torch.set_num_threads(best)
    return ThreadChoice(best, medians)


def training_step(model: nn.Module, example_inputs: Any) -> Callable[[], None]:
    """A forward and backward pass of `model` on `example_inputs` (gradients thrown away);
    what one step of training costs, for `fastest_threads`."""

    def step() -> None:
        out = call_model(model, example_inputs)
        loss = sum(t.float().mean() for t in _tensors(out))
        if isinstance(loss, torch.Tensor) and loss.requires_grad:
            loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, list | tuple):
        return [t for item in out for t in _tensors(item)]
    return []


def threads_for_tasks(names: Sequence[str]) -> ThreadChoice:
    """`fastest_threads` for a training step of the zoo tasks `names` (fresh models, one step
    of each per call; the global random state is left as it was)."""
    from secateurs.zoo import TASKS

    with torch.random.fork_rng():
        steps = []
        for name in names:
            task = TASKS[name]
            steps.append(training_step(task.deployable(task.model(seed=0)), task.data(0).example))
        return fastest_threads(lambda: [step() for step in steps])


def set_threads(threads: int | None, probe: Callable[[], ThreadChoice]) -> str:
    """`--threads N` when given, else the measured choice of `probe`; a line saying which."""
    if threads is not None:
        torch.set_num_threads(threads)
        return f"{threads} CPU thread(s) (--threads)"
    return probe().describe() + "; --threads N to choose"
