"""What the Lightning and Hugging Face callbacks share: one clipping step and pruning steps.

Both frameworks give a hook after backward (and after unscaling under AMP) and before
`optimizer.step()`. A step that a rule reports as `skipped` (non-finite gradients under
``nonfinite="skip"``) is turned into a no-op by setting every gradient to None: every
`torch.optim` optimizer leaves a parameter without gradient untouched (no update, no state
change, no step count), and `GradScaler.step` then has nothing to do either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from secateurs.clip import ClipMonitor, ClipStats
from secateurs.clip._grads import Target
from secateurs.prune import PruningCallback, find_targets, nm_
from secateurs.prune.mask import get_mask, masked_modules
from secateurs.prune.schedules import Schedule
from secateurs.prune.summary import PruneReport
from secateurs.prune.targets import DEFAULT, Selector, _Default
from secateurs.prune.unstructured import _apply


class Pruner(Protocol):
    """Anything that prunes a model in place when its step comes: `step(model)` once per
    optimizer step (`secateurs.prune.PruningCallback` for schedules, `NMPruner`)."""

    steps: int
    current: float

    def step(self, model: nn.Module) -> PruneReport | None: ...


class NMPruner:
    """N:M sparsity (`secateurs.prune.nm_`) applied once, after optimizer step `at` (counted
    from 1; 0 and 1 both mean after the first step)."""

    def __init__(
        self,
        n: int = 2,
        m: int = 4,
        *,
        at: int = 0,
        include: Sequence[Selector] | Selector | None = None,
        exclude: Sequence[Selector] | Selector | _Default = DEFAULT,
    ) -> None:
        if isinstance(at, bool) or not isinstance(at, int) or at < 0:
            raise ValueError(f"at must be an int >= 0 (an optimizer step), got {at!r}")
        if not 0 < n < m:
            raise ValueError(f"N:M sparsity needs 0 < n < m (e.g. 2:4), got {n}:{m}")
        self.n, self.m, self.at = n, m, at
        self.kwargs: dict[str, Any] = dict(include=include, exclude=exclude)
        self.steps = 0
        self.current = 0.0
        self.reports: list[tuple[int, PruneReport]] = []

    def step(self, model: nn.Module) -> PruneReport | None:
        """Count one optimizer step; apply N:M once the count reaches `at`."""
        self.steps += 1
        if self.steps < self.at or self.current > 0:
            return None
        report = nm_(model, self.n, self.m, **self.kwargs)
        self.current = 1 - self.n / self.m
        self.reports.append((self.steps, report))
        return report


def as_pruner(schedule: Schedule | Pruner, kwargs: dict[str, Any]) -> Pruner:
    """A schedule (a function of the step) becomes an unstructured `PruningCallback`."""
    if hasattr(schedule, "step") and hasattr(schedule, "current"):
        if kwargs:
            raise TypeError(f"pass {sorted(kwargs)} to the pruner you built, not to the callback")
        return schedule  # type: ignore[return-value]
    return PruningCallback(schedule, **kwargs)  # type: ignore[arg-type]


def pruner_state(pruner: Pruner) -> dict[str, Any]:
    return {"steps": pruner.steps, "current": pruner.current}


def load_pruner_state(pruner: Pruner, state: dict[str, Any]) -> None:
    pruner.steps = int(state["steps"])
    pruner.current = float(state["current"])


def prepare_masks(model: nn.Module, pruner: Pruner) -> int:
    """Get `model` ready for pruning inside someone else's training loop; returns how many
    tensors got a new mask.

    - Every tensor the pruner will prune gets an all-True mask now, before a DDP wrapper is
      built: registering a parametrization replaces the weight's gradient accumulator
      (PyTorch calls `set_` on it), which silently detaches DDP's reduction hooks, whereas
      later pruning only narrows existing masks in place.
    - `model.state_dict()` then gives plain weights (masks applied, no mask entries), so every
      checkpoint or `save_pretrained` folder loads into the plain model class; and
      `model.load_state_dict` accepts such plain weights, masking their zeros again (resume).
    """
    kwargs = getattr(pruner, "kwargs", {})
    include, exclude = kwargs.get("include"), kwargs.get("exclude", DEFAULT)
    count = 0
    with torch.no_grad():
        for t in find_targets(model, include=include, exclude=exclude):
            if get_mask(t.module, t.attr) is None:
                _apply(t, torch.ones(t.shape, dtype=torch.bool, device=t.param.device))
                count += 1
    if not getattr(model, "_secateurs_plain_state", False):
        model.register_state_dict_post_hook(_masked_to_plain)
        model.register_load_state_dict_pre_hook(_plain_to_masked)
        model._secateurs_plain_state = True  # type: ignore[assignment]
    return count


def _masked_to_plain(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    """state_dict post-hook: each masked tensor saved as its effective value, masks dropped."""
    with torch.no_grad():
        for mod_name, sub, name, _mask in masked_modules(module):
            base = prefix + (f"{mod_name}." if mod_name else "")
            state_dict.pop(f"{base}parametrizations.{name}.original", None)
            state_dict.pop(f"{base}parametrizations.{name}.0.mask", None)
            state_dict[base + name] = getattr(sub, name).detach()


def _plain_to_masked(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
) -> None:
    """load_state_dict pre-hook: plain `X.weight` entries fill masked tensors (zeros masked)."""
    for mod_name, _, name, _mask in masked_modules(module):
        base = prefix + (f"{mod_name}." if mod_name else "")
        plain, original = base + name, f"{base}parametrizations.{name}.original"
        if plain in state_dict and original not in state_dict:
            weight = state_dict.pop(plain)
            state_dict[original] = weight
            state_dict[f"{base}parametrizations.{name}.0.mask"] = weight != 0


def clip_step(
    rule: Callable[[Target], ClipStats],
    model: nn.Module,
    optimizer: Any,
    monitor: ClipMonitor,
) -> ClipStats:
    """Run `rule` on `model`'s gradients; if it asks to skip, drop the gradients of every
    parameter `optimizer` holds, so that its step changes nothing."""
    stats = rule(model)
    monitor.update(stats)
    if stats.skipped:
        drop_grads(optimizer.param_groups)
    return stats


def drop_grads(param_groups: Iterable[dict]) -> None:
    for group in param_groups:
        for p in group["params"]:
            p.grad = None


def scalar_logs(stats: ClipStats, prefix: str) -> dict[str, torch.Tensor | float]:
    """The numbers of one step to log, kept as tensors (no host synchronisation)."""
    out: dict[str, torch.Tensor | float] = {}
    for key, value in stats.tensors().items():
        if value is None:
            continue
        out[f"{prefix}{key}"] = (
            value.detach().float() if isinstance(value, torch.Tensor) else float(value)
        )
    return out
