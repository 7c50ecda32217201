"""Clipping by norm: one global factor (PyTorch's clip_grad_norm_), per tensor, or per layer."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from secateurs.clip._checks import norm_type as check_norm_type
from secateurs.clip._checks import positive
from secateurs.clip._global import clip_global_norm
from secateurs.clip._grads import Target, parameters_of, with_grads
from secateurs.clip._norms import local, tensor_norms
from secateurs.clip.base import Rule
from secateurs.clip.policy import Policy, apply_policy, count_nonfinite
from secateurs.clip.stats import ClipStats

Scope = Literal["global", "param", "layer"]


class ByNorm(Rule):
    """Scale gradients so that their p-norm is at most `max_norm`.

    - scope="global": one factor for all gradients, `min(1, max_norm / (total + 1e-6))`, the
      same numbers as `torch.nn.utils.clip_grad_norm_` (any p, inf included; DTensor
      gradients of FSDP2 are reduced across shards); `norm_before` is the pre-clip norm.
    - scope="param": each tensor by its own norm (Keras `clipnorm`).
    - scope="layer": the parameters each module owns directly, together (needs a module).
    For "param" and "layer", `coef` reports the smallest factor applied.

    The settings are read at each call: after `rule.max_norm = 100` the next step clips at
    100 (wrap the rule in `Scheduled` to follow a schedule).
    """

    name = "norm"
    threshold_setting = "max_norm"

    def __init__(
        self,
        max_norm: float,
        norm_type: float | str = 2.0,
        scope: Scope = "global",
        *,
        nonfinite: Policy = "skip",
    ) -> None:
        super().__init__(nonfinite)
        self.max_norm = max_norm
        self.norm_type = norm_type  # type: ignore[assignment]
        self.scope = scope

    @property
    def max_norm(self) -> float:
        return self._max_norm

    @max_norm.setter
    def max_norm(self, value: float) -> None:
        self._max_norm = positive("max_norm", value)

    @property
    def norm_type(self) -> float:
        return self._norm_type

    @norm_type.setter
    def norm_type(self, value: float | str) -> None:
        self._norm_type = check_norm_type(value)

    @property
    def scope(self) -> Scope:
        return self._scope

    @scope.setter
    def scope(self, value: Scope) -> None:
        if value not in ("global", "param", "layer"):
            raise ValueError(f"scope must be 'global', 'param' or 'layer', got {value!r}")
        self._scope = value

    def apply(self, parameters: Target) -> ClipStats:
        if self.scope == "global":
            # a Python float threshold: the same arithmetic as clip_grad_norm_
            return clip_global_norm(
                self, parameters, self.norm_type, lambda _: self.max_norm, stateless=True
            )
        if self.scope == "layer" and not isinstance(parameters, nn.Module):
            raise TypeError(
                "scope='layer' needs the model (an nn.Module) to know which parameters belong "
                f"together, got {type(parameters).__name__}; pass the model or use scope='param'"
            )
        params = with_grads(parameters_of(parameters))
        if not params:
            return ClipStats(self.name, norm_before=0.0, norm_after=0.0, coef=1.0, nonfinite=0)
        grads = [p.grad for p in params]
        per = tensor_norms(grads, self.norm_type)
        bad = count_nonfinite(per)
        skip: torch.Tensor | bool = False
        if self.nonfinite == "skip":  # decided on the device: no host synchronisation
            action, skip = "ok", bad > 0
        else:
            action = apply_policy(self.nonfinite, grads, bad)
        p = self.norm_type
        device = local(grads[0]).device
        per_t = torch.stack([n.to(device) for n in per])
        total = torch.linalg.vector_norm(per_t, p)
        if action == "zeroed":
            per = tensor_norms(grads, p)
            per_t = torch.stack([n.to(device) for n in per])
            total = torch.linalg.vector_norm(per_t, p)
        if self.scope == "param":
            unit_norms = per_t
        else:
            owner = _owners(parameters, params)  # type: ignore[arg-type]
            unit_norms = _group_norms(per_t, owner, p)
        keep = torch.as_tensor(skip, device=device)
        over = (unit_norms > self.max_norm) & ~keep
        # a skipped step keeps its gradients: factor 1 (the caller does not step)
        coefs = torch.where(keep, 1.0, torch.clamp(self.max_norm / (unit_norms + 1e-6), max=1.0))
        for g, c in zip(grads, coefs.unbind(), strict=True):
            local(g).mul_(c.to(local(g).dtype))
        after = torch.linalg.vector_norm(per_t * coefs, p)
        return ClipStats(
            self.name,
            norm_before=total,
            norm_after=after,
            coef=coefs.min(),
            nonfinite=bad,
            skipped=skip,
            clipped=over.any(),
            extra={"units_clipped": over.sum()},
        )

    def _describe(self) -> str:
        return (
            f"max_norm={self.max_norm}, norm_type={self.norm_type}, scope={self.scope!r}, "
            f"nonfinite={self.nonfinite!r}"
        )


def _owners(model: nn.Module, params: list[torch.Tensor]) -> list[int]:
    """For each parameter, an index of the module that owns it directly."""
    owner_of: dict[int, int] = {}
    for k, module in enumerate(model.modules()):
        for p in module.parameters(recurse=False):
            owner_of.setdefault(id(p), k)
    return [owner_of[id(p)] for p in params]


def _group_norms(per: torch.Tensor, owner: list[int], p: float) -> torch.Tensor:
    """Each tensor's entry replaced by the p-norm over all tensors of its owner."""
    out = torch.empty_like(per)
    groups: dict[int, list[int]] = {}
    for i, k in enumerate(owner):
        groups.setdefault(k, []).append(i)
    for idx in groups.values():
        out[idx] = torch.linalg.vector_norm(per[idx], p)
    return out
