"""A small, readable training loop that reports per-step loss and clipping statistics.

It is the loop that fine-tuning, search and comparison reuse. One optimizer step per
`accumulate` batches; the clipping rule, when given, runs once per optimizer step after
backward (and after `GradScaler.unscale_`) and before `optimizer.step()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from secateurs._inputs import call_model, move_inputs


@dataclass
class StepRecord:
    """What happened at one optimizer step. `loss` stays a tensor until read (no host sync)."""

    step: int
    epoch: int
    loss_tensor: torch.Tensor
    clip: Any = None  # the clipping rule's stats object, if a rule ran
    # the optimizer step was not taken (non-finite gradients, scaler): a bool, or a 0-d bool
    # tensor on the device until read
    skip: torch.Tensor | bool = False

    @property
    def loss(self) -> float:
        return float(self.loss_tensor)

    @property
    def skipped(self) -> bool:
        return bool(self.skip)


@dataclass
class FitResult:
    """Per-step records and per-epoch evaluation results of one `fit` call."""

    steps: list[StepRecord] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def losses(self) -> list[float]:
        if not self.steps:
            return []
        return torch.stack([s.loss_tensor for s in self.steps]).tolist()

    @property
    def skipped_steps(self) -> int:
        return sum(s.skipped for s in self.steps)


class Callback(Protocol):
    """Hooks a loop calls; return True from `on_step_end` to stop training."""

    def on_step_end(self, record: StepRecord, model: nn.Module) -> bool | None: ...


def fit(
    model: nn.Module,
    data: Iterable,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    clip: Callable[[nn.Module], Any] | None = None,
    epochs: int = 1,
    max_steps: int | None = None,
    accumulate: int = 1,
    scaler: torch.amp.GradScaler | None = None,
    autocast_dtype: torch.dtype | None = None,
    callbacks: Sequence[Callback] = (),
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    progress: bool = False,
) -> FitResult:
    """Train `model` on batches of `(inputs, targets)` and return what happened.

    - `optimizer` defaults to Adam(lr) over the parameters that require gradients.
    - `loss_fn(outputs, targets)` defaults to cross-entropy.
    - `clip(model)` is any secateurs clipping rule (or callable) run once per optimizer step;
      a stats object with a true `skipped` attribute turns that step into a no-op.
    - `scaler` enables the mixed-precision path: gradients are unscaled before clipping and
      steps that the scaler skips are recorded as skipped.
    - `eval_fn(model)` runs after each epoch; its dict is appended to `FitResult.evals`.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if accumulate < 1:
        raise ValueError(f"accumulate must be >= 1, got {accumulate}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer is None:
        if not params:
            raise ValueError("the model has no parameters that require gradients")
        optimizer = torch.optim.Adam(params, lr=lr)
    loss_fn = loss_fn or nn.functional.cross_entropy
    device = next(iter(params), torch.empty(0)).device
    result = FitResult()
    step = 0
    model.train()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = max_steps or (
            epochs * len(data) // accumulate if isinstance(data, Sized) else None
        )
        bar = tqdm(total=total, desc="train", unit="step", leave=False)
    try:
        for epoch in range(epochs):
            done = False
            optimizer.zero_grad(set_to_none=True)  # a partial accumulation is dropped
            pending = 0
            loss_acc = torch.zeros((), device=device)
            for x, y in data:
                x, y = move_inputs(x, device), move_inputs(y, device)
                with torch.autocast(
                    device.type,
                    dtype=autocast_dtype or torch.bfloat16,
                    enabled=autocast_dtype is not None,
                ):
                    loss = loss_fn(call_model(model, x), y) / accumulate
                (scaler.scale(loss) if scaler is not None else loss).backward()
                loss_acc += loss.detach().float()
                pending += 1
                if pending < accumulate:
                    continue
                record = _optimizer_step(model, optimizer, clip, scaler, step, epoch, loss_acc)
                result.steps.append(record)
                optimizer.zero_grad(set_to_none=True)
                pending, loss_acc = 0, torch.zeros((), device=device)
                step += 1
                if bar is not None:
                    bar.update(1)
                stop = any([bool(cb.on_step_end(record, model)) for cb in callbacks])
                if stop or (max_steps is not None and step >= max_steps):
                    result.stopped_early = stop
                    done = True
                    break
            if eval_fn is not None:
                result.evals.append(dict(eval_fn(model)))
            if done:
                break
    finally:
        if bar is not None:
            bar.close()
    return result


def _optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    clip: Callable[[nn.Module], Any] | None,
    scaler: torch.amp.GradScaler | None,
    step: int,
    epoch: int,
    loss: torch.Tensor,
) -> StepRecord:
    from secateurs.clip.skip import skip_flag, step_unless

    stats = None
    if scaler is not None:
        scaler.unscale_(optimizer)
        # The scaler skips steps whose gradients overflowed: clip nothing then, so that a
        # rule's state (AutoClip's history, ZClip's EMA) never sees those gradients.
        if clip is not None and not _scaler_found_inf(scaler, optimizer):
            stats = clip(model)
    elif clip is not None:
        stats = clip(model)
    if scaler is not None:
        skipped = bool(skip_flag(stats))  # the scaler reads its own flag back anyway
        scale_before = scaler.get_scale()
        if not skipped:
            scaler.step(optimizer)
        scaler.update()
        skipped = skipped or scaler.get_scale() < scale_before
        return StepRecord(step=step, epoch=epoch, loss_tensor=loss, clip=stats, skip=skipped)
    skip = skip_flag(stats)
    step_unless(optimizer, skip)  # no host read of a device-side flag
    return StepRecord(step=step, epoch=epoch, loss_tensor=loss, clip=stats, skip=skip)


def _scaler_found_inf(scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer) -> bool:
    """Whether `scaler.unscale_(optimizer)` found inf/NaN (what `scaler.step` will check)."""
    if not scaler.is_enabled():
        return False
    state = getattr(scaler, "_per_optimizer_states", {}).get(id(optimizer), {})
    found = state.get("found_inf_per_device")
    if found:
        return any(bool(v.item()) for v in found.values())
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    return any(not bool(torch.isfinite(n)) for n in torch._foreach_norm(grads)) if grads else False
