"""What a rule does with non-finite (NaN or inf) gradients.

- None: no check, exactly what PyTorch does (a NaN norm makes every gradient NaN); no host
  synchronisation.
- "error": raise FloatingPointError.
- "skip": leave the gradients as they are and report `skipped=True`; `secateurs.clip.wrap`
  and `secateurs.train.fit` then skip `optimizer.step()` (optimizer state untouched).
- "zero": replace the non-finite elements by 0, then clip what remains.

ByNorm decides "skip" on the device: its `ClipStats.skipped` is a tensor that
`secateurs.clip.step_unless` (used by `wrap` and `fit`) acts on without reading it back, as
GradScaler does. "error" and "zero", and the rules whose state must never see a bad step
(AutoClip, ZClip) or that check separately (AGC, ByValue), read one number from the device per
step (a synchronisation on a GPU).
"""

from __future__ import annotations

from typing import Literal

import torch

Policy = Literal["error", "skip", "zero"] | None
POLICIES = ("error", "skip", "zero", None)


def check_policy(value: object) -> Policy:
    """Validate a `nonfinite=` argument."""
    if value not in POLICIES:
        raise ValueError(f"nonfinite must be one of 'error', 'skip', 'zero' or None, got {value!r}")
    return value  # type: ignore[return-value]


def count_nonfinite(norms: list[torch.Tensor]) -> torch.Tensor:
    """How many of the per-tensor norms are NaN or inf (a tensor; no synchronisation)."""
    if not norms:
        return torch.zeros((), dtype=torch.int64)
    device = norms[0].device
    stacked = torch.stack([n.to(device, torch.float32) for n in norms])
    return (~torch.isfinite(stacked)).sum()


def apply_policy(policy: Policy, grads: list[torch.Tensor], nonfinite: torch.Tensor) -> str:
    """Act on `policy`; return "ok", "skip" or "zeroed" (then the caller recomputes norms)."""
    if policy is None:
        return "ok"
    n = int(nonfinite)
    if n == 0:
        return "ok"
    if policy == "error":
        raise FloatingPointError(
            f"{n} gradient tensor(s) contain NaN or inf; pass nonfinite='skip' to skip such "
            "steps (with secateurs.clip.wrap or secateurs.train.fit) or 'zero' to zero them"
        )
    if policy == "skip":
        return "skip"
    for g in grads:
        torch.nan_to_num_(g, nan=0.0, posinf=0.0, neginf=0.0)
    return "zeroed"
