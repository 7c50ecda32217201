"""Take an optimizer step unless a rule said to skip it, without waiting for the device.

A rule's "skip" decision (`ClipStats.tensors()["skipped"]`) is a 0-d bool tensor on the
gradients' device. Reading it (`bool(...)`, `.item()`) would make the host wait for the
device every step. `step_unless` avoids that as `torch.amp.GradScaler` does for fused
optimizers: it hands the flag to the optimizer (`found_inf`), which skips on the device.
Other optimizers on an accelerator take the step and put back their parameters and state
where the flag is set (`torch.where`, no host read; it costs one copy of parameters and
optimizer state per step, so prefer `fused=True`). On the CPU reading the flag is free.
"""

from __future__ import annotations

from typing import Any

import torch

from secateurs.clip.stats import ClipStats


def skip_flag(stats: Any) -> torch.Tensor | bool:
    """What a rule's stats say about skipping this step, unread (a tensor stays a tensor)."""
    if isinstance(stats, ClipStats):
        flag = stats.tensors()["skipped"]
        return flag if isinstance(flag, torch.Tensor) else bool(flag)
    return bool(getattr(stats, "skipped", False))


def step_unless(optimizer: torch.optim.Optimizer, skip: torch.Tensor | bool | None) -> None:
    """`optimizer.step()` unless `skip` (a bool or a 0-d bool tensor, read on the host only
    where that costs nothing)."""
    if not isinstance(skip, torch.Tensor):
        if not skip:
            optimizer.step()
        return
    if skip.device.type == "cpu":
        if not bool(skip):
            optimizer.step()
        return
    if getattr(optimizer, "_step_supports_amp_scaling", False):
        fused_step_unless(optimizer, skip)
    else:
        masked_step_unless(optimizer, skip)


def fused_step_unless(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """A fused optimizer's step that it skips itself where `skip` is set (as under GradScaler)."""
    optimizer.grad_scale = None  # type: ignore[attr-defined]
    optimizer.found_inf = skip.to(torch.float32)  # type: ignore[attr-defined]
    try:
        optimizer.step()
    finally:
        del optimizer.grad_scale, optimizer.found_inf  # type: ignore[attr-defined]


def masked_step_unless(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """Step, then restore parameters and optimizer state where `skip` is set (no host read)."""
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    saved_params = [p.detach().clone() for p in params]
    saved_state = {
        (i, k): v.clone()
        for i, p in enumerate(params)
        for k, v in optimizer.state.get(p, {}).items()
        if isinstance(v, torch.Tensor)
    }
    optimizer.step()
    with torch.no_grad():
        for p, old in zip(params, saved_params, strict=True):
            p.copy_(torch.where(skip.to(p.device), old, p))
        for i, p in enumerate(params):
            for k, v in optimizer.state.get(p, {}).items():
                if not isinstance(v, torch.Tensor):
                    continue
                # state created by this very step (the first) goes back to zeros
                old = saved_state.get((i, k), torch.zeros_like(v))
                v.copy_(torch.where(skip.to(v.device), old, v))
