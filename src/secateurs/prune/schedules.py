"""Sparsity schedules: pure functions of the training step, returning the target sparsity.

- `one_shot`: all at once at step `at`.
- `iterative`: `rounds` equal-ratio rounds of prune + fine-tune (Han et al. 2015): round r
  (1-based) reaches 1 - (1 - target)^(r / rounds), so each round removes the same fraction of
  the weights still alive.
- `cubic`: gradual pruning (Zhu & Gupta 2017),
  s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3 for t in {t0, t0 + dt, ..., t0 + n dt},
  held constant between pruning steps and after the end.

`schedule(...)` binds the arguments and returns a one-argument function for `PruningCallback`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from secateurs.prune.unstructured import check_sparsity

Schedule = Callable[[int], float]


def _check_step(step: int) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")


def one_shot(step: int, *, target: float, at: int = 0) -> float:
    """`target` from step `at` on, 0 before."""
    _check_step(step)
    check_sparsity(target, "target")
    return float(target) if step >= at else 0.0


def iterative(step: int, *, target: float, rounds: int, every: int, start: int = 0) -> float:
    """Sparsity after the rounds begun by `step`: round r starts at `start + (r - 1) * every`."""
    _check_step(step)
    check_sparsity(target, "target")
    if rounds < 1 or every < 1:
        raise ValueError(f"rounds and every must be >= 1, got rounds={rounds}, every={every}")
    if step < start:
        return 0.0
    r = min(rounds, (step - start) // every + 1)
    return 1.0 - (1.0 - target) ** (r / rounds)


def cubic(
    step: int,
    *,
    target: float,
    end: int,
    start: int = 0,
    initial: float = 0.0,
    frequency: int = 1,
) -> float:
    """Zhu & Gupta's cubic ramp from `initial` at `start` to `target` at `end`, updated every
    `frequency` steps; 0 before `start`."""
    _check_step(step)
    check_sparsity(target, "target")
    check_sparsity(initial, "initial")
    if end <= start:
        raise ValueError(f"end must be > start, got start={start}, end={end}")
    if frequency < 1:
        raise ValueError(f"frequency must be >= 1, got {frequency}")
    if step < start:
        return 0.0
    t = min(step, end)
    t = start + (t - start) // frequency * frequency  # the last pruning step so far
    if step >= end:
        t = end
    frac = (t - start) / (end - start)
    value = target + (initial - target) * (1.0 - frac) ** 3
    return float(min(max(value, 0.0), math.nextafter(1.0, 0.0)))


_KINDS: dict[str, Callable[..., float]] = {
    "one_shot": one_shot,
    "iterative": iterative,
    "cubic": cubic,
}


def schedule(kind: str | Callable[..., float], **kwargs) -> Schedule:
    """Bind a schedule's arguments: ``schedule("cubic", target=0.9, end=1000)(step)``."""
    fn = _KINDS.get(kind) if isinstance(kind, str) else kind
    if fn is None:
        raise ValueError(f"schedule must be one of {sorted(_KINDS)}, got {kind!r}")
    bound = functools.partial(fn, **kwargs)
    bound(0)  # validate the arguments now, not in the middle of training
    return bound
