"""Adaptive gradient clipping (Brock et al. 2021, "High-Performance Large-Scale Image
Recognition Without Normalization"): each unit's gradient is bounded relative to its weight.

A unit is an output row of a Linear weight, a filter of a Conv weight (dim 0 of any weight with
two or more dimensions; a column of Hugging Face's Conv1D weight, which is stored (in, out));
a 1-D or 0-D parameter (bias, norm scale) is one unit. For unit i,
G_i is scaled by `min(1, clip * max(||W_i||, eps) / max(||G_i||, 1e-6))`.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable

import torch
from torch import nn

from secateurs._conv1d import is_conv1d
from secateurs.clip._checks import norm_type as check_norm_type
from secateurs.clip._checks import positive
from secateurs.clip._grads import Target, named_parameters_of, with_grads
from secateurs.clip._norms import is_dtensor, local, reduce_norms, reduce_over_dim0_shards
from secateurs.clip.base import Rule
from secateurs.clip.policy import Policy, apply_policy, count_nonfinite
from secateurs.clip.stats import ClipStats


def unit_norms(t: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """p-norm per dim-0 unit of a (local) tensor with >= 2 dims, else the norm of the whole."""
    if t.numel() == 0:  # an empty shard: no units here, or a whole of norm 0
        return torch.zeros(1 if t.ndim <= 1 else t.shape[0], dtype=t.dtype, device=t.device)
    if t.ndim <= 1:
        return torch.linalg.vector_norm(t, p).reshape(1)
    return torch.linalg.vector_norm(t, p, dim=tuple(range(1, t.ndim)))


def final_classifier(model: nn.Module) -> list[str]:
    """Names of the parameters of the final classifier: the last module that owns parameters,
    when it is an nn.Linear (the NFNet paper leaves it unclipped). Empty if none is found."""
    last: tuple[str, nn.Module] | None = None
    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            last = (name, module)
    if last is None or not isinstance(last[1], nn.Linear):
        return []
    prefix = f"{last[0]}." if last[0] else ""
    return [prefix + n for n, _ in last[1].named_parameters(recurse=False)]


class AGC(Rule):
    """Adaptive gradient clipping: ||G_i|| <= clip * max(||W_i||, eps) for every unit i.

    - `exclude`: fnmatch patterns of parameter (or module) names left unclipped, for example
      `("head.*", "*.bias")`.
    - `skip_classifier`: when the rule is called with a module, leave its final classifier
      unclipped (see `final_classifier`); with a bare parameter list nothing can be identified.
    Under FSDP2 a weight sharded on dim 0 keeps its units whole on each rank; 1-D parameters and
    other shardings are reduced across ranks.
    """

    name = "agc"
    threshold_setting = "clip"

    def __init__(
        self,
        clip: float = 0.01,
        eps: float = 1e-3,
        *,
        exclude: str | Iterable[str] = (),
        skip_classifier: bool = True,
        norm_type: float | str = 2.0,
        nonfinite: Policy = "skip",
    ) -> None:
        super().__init__(nonfinite)
        self.clip = positive("clip", clip)
        self.eps = positive("eps", eps)
        patterns = [exclude] if isinstance(exclude, str) else list(exclude)
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern:
                raise TypeError(f"exclude must hold non-empty name patterns, got {pattern!r}")
        self.exclude = tuple(patterns)
        self.skip_classifier = bool(skip_classifier)
        self.norm_type = check_norm_type(norm_type)

    def selected(self, parameters: Target) -> list[tuple[str, torch.Tensor]]:
        """The (name, parameter) pairs this rule clips (before looking at gradients)."""
        named = named_parameters_of(parameters)
        skip = (
            set(final_classifier(parameters))
            if (self.skip_classifier and isinstance(parameters, nn.Module))
            else set()
        )
        out = []
        for name, p in named:
            module = name.rsplit(".", 1)[0] if "." in name else ""
            if name in skip or any(
                fnmatch.fnmatchcase(name, pat) or (module and fnmatch.fnmatchcase(module, pat))
                for pat in self.exclude
            ):
                continue
            out.append((name, p))
        return out

    def _unclipped_nonfinite(
        self, parameters: Target, params: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor | int]:
        """Gradients of the parameters left unclipped, and how many hold NaN/inf: a NaN in an
        excluded classifier must reach the policy too, or it corrupts weights and moments."""
        if self.nonfinite is None:
            return [], 0
        chosen = {id(q) for q in params}
        rest = [q for _, q in named_parameters_of(parameters) if id(q) not in chosen]
        grads = [q.grad for q in with_grads(rest)]
        if not grads:
            return [], 0
        # max |g| per tensor (never overflows; NaN propagates), combined over shards
        local_max = [_abs_max(local(g)) for g in grads]
        norms = reduce_norms(local_max, grads, math.inf)
        return grads, count_nonfinite(norms)

    def apply(self, parameters: Target) -> ClipStats:
        params = with_grads([p for _, p in self.selected(parameters)])
        rest, rest_bad = self._unclipped_nonfinite(parameters, params)
        if not params:
            action = apply_policy(self.nonfinite, rest, rest_bad) if rest else "ok"
            if action == "skip":
                return ClipStats.skipped_step(self.name, 0.0, rest_bad)
            return ClipStats(
                self.name, norm_before=0.0, norm_after=0.0, coef=1.0, nonfinite=rest_bad
            )
        p = self.norm_type
        flip = _input_major(parameters)
        grads = [_units_first(q.grad, id(q) in flip) for q in params]
        device = local(grads[0]).device
        # Unit norms of all tensors in one flat vector: few, vectorised small ops.
        g_units = self._norms(grads, p)
        sizes = [n.numel() for n in g_units]
        seg = torch.repeat_interleave(
            torch.arange(len(sizes), device=device), torch.tensor(sizes, device=device)
        )
        flat_g = torch.cat([n.reshape(-1).to(device) for n in g_units])
        bad_units = (~torch.isfinite(flat_g)).to(torch.float64)
        flags = torch.zeros(len(sizes), dtype=torch.float64, device=device).index_add_(
            0, seg, bad_units
        )
        flags = reduce_over_dim0_shards(list(flags.unbind()), grads, "max")  # ranks must agree
        bad = (torch.stack(flags) > 0).sum() + rest_bad
        action = apply_policy(self.nonfinite, grads + rest, bad)
        if action == "skip":
            before = self._total(flat_g, seg, len(sizes), grads, p)
            return ClipStats.skipped_step(self.name, before, bad)
        if action == "zeroed":
            flat_g = torch.cat([n.reshape(-1).to(device) for n in self._norms(grads, p)])
        w_units = self._norms([_units_first(q.detach(), id(q) in flip) for q in params], p)
        flat_w = torch.cat([n.reshape(-1).to(device) for n in w_units])
        limit = flat_w.clamp(min=self.eps).mul_(self.clip)
        coef = torch.clamp(limit / flat_g.clamp(min=1e-6), max=1.0)
        for g, c in zip(grads, coef.split(sizes), strict=True):
            g_local = local(g)
            shape = (-1, *([1] * (g_local.ndim - 1))) if g_local.ndim > 1 else ()
            g_local.mul_(c.to(g_local.dtype).reshape(shape))
        over = (flat_g > limit).to(torch.float64)
        n_over = torch.zeros(len(sizes), dtype=torch.float64, device=device).index_add_(
            0, seg, over
        )
        units_clipped = torch.stack(reduce_over_dim0_shards(list(n_over.unbind()), grads, "sum"))
        units_clipped = units_clipped.sum().long()
        min_coef = coef.min() if coef.numel() else torch.ones((), device=device)
        if _has_dim0_shards(grads):
            min_coef = reduce_over_dim0_shards([min_coef] * len(grads), grads, "min")[0]
        return ClipStats(
            self.name,
            norm_before=self._total(flat_g, seg, len(sizes), grads, p),
            norm_after=self._total(flat_g * coef, seg, len(sizes), grads, p),
            coef=min_coef,
            nonfinite=bad,
            clipped=units_clipped > 0,
            extra={"units_clipped": units_clipped},
        )

    @staticmethod
    def _total(
        flat: torch.Tensor, seg: torch.Tensor, n: int, grads: list[torch.Tensor], p: float
    ) -> torch.Tensor:
        """The p-norm over all units, combining the per-rank units of dim-0 sharded weights."""
        if not _has_dim0_shards(grads):
            return torch.linalg.vector_norm(flat, p)
        values = flat.double()
        if math.isinf(p):
            per = torch.zeros(n, dtype=values.dtype, device=values.device).index_reduce_(
                0, seg, values, "amax", include_self=True
            )
            per = reduce_over_dim0_shards(list(per.unbind()), grads, "max")
            return torch.stack(per).max().float()
        per = torch.zeros(n, dtype=values.dtype, device=values.device).index_add_(
            0, seg, values.pow(p)
        )
        per = reduce_over_dim0_shards(list(per.unbind()), grads, "sum")
        return torch.stack(per).sum().pow(1.0 / p).float()

    @staticmethod
    def _norms(tensors: list[torch.Tensor], p: float) -> list[torch.Tensor]:
        local_norms = [unit_norms(local(t), p) for t in tensors]
        return reduce_norms(local_norms, tensors, p, unit_dim0=True)

    def _describe(self) -> str:
        return (
            f"clip={self.clip}, eps={self.eps}, exclude={self.exclude!r}, "
            f"skip_classifier={self.skip_classifier}, nonfinite={self.nonfinite!r}"
        )


def _input_major(parameters: Target) -> set[int]:
    """ids of the weights stored (in, out): Hugging Face Conv1D, whose units are columns."""
    if not isinstance(parameters, nn.Module):
        return set()
    return {id(m.weight) for m in parameters.modules() if is_conv1d(m)}


def _units_first(t: torch.Tensor, flip: bool) -> torch.Tensor:
    """`t`, or its transposed view when its units are its columns (in-place ops reach `t`)."""
    return t.t() if flip and t.ndim == 2 and not is_dtensor(t) else t


def _abs_max(t: torch.Tensor) -> torch.Tensor:
    """max |t| (NaN if any is NaN); 0 for an empty shard."""
    return t.abs().amax() if t.numel() else torch.zeros((), dtype=t.dtype, device=t.device)


def _has_dim0_shards(tensors: list[torch.Tensor]) -> bool:
    return any(
        is_dtensor(t) and t.ndim > 1 and any(pl.is_shard(0) for pl in t.placements) for t in tensors
    )
