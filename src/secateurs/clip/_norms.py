"""Gradient norms, the way `torch.nn.utils.clip_grad_norm_` computes them, DTensor included.

Plain tensors are grouped by device and dtype and measured with `torch._foreach_norm`, so
that a global norm equals PyTorch's bit for bit. A DTensor (FSDP2's sharded gradients) is
measured on its local shard; the shards' p-th powers (max for inf) are then all-reduced over
the mesh dimensions it is sharded on, one collective per mesh and placement, so every rank
gets the norm of the whole tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeGuard, cast

import torch
from torch.utils._foreach_utils import (
    _device_has_foreach_support,
    _group_tensors_by_device_and_dtype,
    _has_foreach_support,
)

try:
    from torch.distributed.tensor import DTensor
except ImportError:  # torch built without distributed
    DTensor = None  # type: ignore[assignment,misc]


def is_dtensor(t: torch.Tensor) -> TypeGuard[DTensor]:
    return DTensor is not None and isinstance(t, DTensor)


def local(t: torch.Tensor) -> torch.Tensor:
    """The local shard of a DTensor (shares storage), or the tensor itself."""
    return t.to_local() if is_dtensor(t) else t


def shard_key(t: torch.Tensor, unit_dim0: bool = False) -> tuple | None:
    """Mesh dimensions over which `t`'s values are split (None: whole on every rank).

    With `unit_dim0`, a Shard(0) placement keeps each dim-0 unit whole and does not count.
    """
    if not is_dtensor(t):
        return None
    dims = []
    for i, placement in enumerate(t.placements):
        if placement.is_partial():
            raise TypeError(
                "a gradient DTensor has a Partial placement (not yet reduced); clip after the "
                "gradient reduction (FSDP2's backward does it), or redistribute it first"
            )
        if placement.is_shard():
            if unit_dim0 and placement.dim == 0 and t.ndim > 1:  # type: ignore[attr-defined]
                continue
            dims.append(i)
    if not dims:
        return None
    return (id(t.device_mesh), tuple(dims))


def _all_reduce(values: torch.Tensor, t: torch.Tensor, dims: Sequence[int], p: float) -> None:
    import torch.distributed as dist

    op = dist.ReduceOp.MAX if math.isinf(p) else dist.ReduceOp.SUM
    mesh = cast(DTensor, t).device_mesh  # only sharded tensors are grouped for reduction
    for d in dims:
        dist.all_reduce(values, op=op, group=mesh.get_group(d))


def reduce_norms(
    norms: list[torch.Tensor], tensors: Sequence[torch.Tensor], p: float, unit_dim0: bool = False
) -> list[torch.Tensor]:
    """Turn local norms of (DTensor) `tensors` into the norms of the whole tensors.

    `norms[i]` is the p-norm of the local shard of `tensors[i]` (any shape: per-unit norms
    allowed); entries of tensors that are not sharded come back unchanged.
    """
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        key = shard_key(t, unit_dim0)
        if key is not None:
            groups.setdefault(key, []).append(i)
    if not groups:
        return norms
    out = list(norms)
    for (_, dims), idx in groups.items():
        flat = torch.cat([norms[i].reshape(-1).float() for i in idx])
        powered = flat if math.isinf(p) else flat.pow(p)
        _all_reduce(powered, tensors[idx[0]], dims, p)
        full = powered if math.isinf(p) else powered.pow(1.0 / p)
        offset = 0
        for i in idx:
            n = norms[i].numel()
            out[i] = full[offset : offset + n].reshape(norms[i].shape).to(norms[i].dtype)
            offset += n
    return out


def _by_device_and_dtype(
    tensors: Sequence[torch.Tensor],
) -> list[tuple[torch.device, list[torch.Tensor], list[int]]]:
    """(device, tensors, their indices) per device and dtype: torch's grouping, typed (torch
    declares the grouped items `Tensor | None` because other callers pass None through)."""
    grouped = _group_tensors_by_device_and_dtype([list(tensors)], with_indices=True)
    return [
        (device, cast(list[torch.Tensor], group), indices)
        for (device, _), ([group], indices) in grouped.items()
    ]


def _max_abs(t: torch.Tensor) -> torch.Tensor:
    lo, hi = torch.aminmax(t)
    return torch.maximum(hi, -lo)  # NaN propagates


def _norms_of_group(
    group: list[torch.Tensor], device: torch.device, p: float
) -> list[torch.Tensor]:
    """p-norms of same-device, same-dtype, non-empty tensors.

    The inf norm is the largest magnitude, exact in any order; it is read with one
    `aminmax` per tensor because the CPU `_foreach_norm(inf)` is over 20x slower than its p=2.
    """
    if math.isinf(p) and device.type == "cpu":
        return [_max_abs(g) for g in group]
    if _has_foreach_support(group, device):
        return list(torch._foreach_norm(group, p))
    return [torch.linalg.vector_norm(g, p) for g in group]


def tensor_norms(grads: Sequence[torch.Tensor], p: float) -> list[torch.Tensor]:
    """The p-norm of each gradient (of the whole tensor for DTensors), in input order."""
    if not grads:
        return []
    locals_ = [local(g) for g in grads]
    out: list[torch.Tensor | None] = [None] * len(grads)
    # An empty shard (FSDP2 gives one to a rank when a tensor has fewer rows than ranks) has
    # norm 0 for every p; `_foreach_norm` refuses the inf norm of an empty tensor.
    nonempty = [i for i, t in enumerate(locals_) if t.numel() > 0]
    for i, t in enumerate(locals_):
        if t.numel() == 0:
            out[i] = torch.zeros((), dtype=t.dtype, device=t.device)
    for device, group, indices in _by_device_and_dtype([locals_[i] for i in nonempty]):
        for i, n in zip(indices, _norms_of_group(group, device, p), strict=True):
            out[nonempty[i]] = n
    return reduce_norms(out, grads, p)  # type: ignore[arg-type]


def total_norm(grads: Sequence[torch.Tensor], p: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(global p-norm, per-tensor norms) exactly as `clip_grad_norm_` computes the global norm."""
    if not grads:
        return torch.tensor(0.0), []
    if not any(is_dtensor(g) for g in grads):
        # PyTorch's order: norms group by group, then one vector norm over them.
        per: list[torch.Tensor] = []
        order: list[int] = []
        for device, group, indices in _by_device_and_dtype(grads):
            if math.isinf(p) and device.type == "cpu" and any(g.numel() == 0 for g in group):
                # torch refuses this; an empty tensor's largest magnitude is 0
                per.extend(_max_abs(g) if g.numel() else g.new_zeros(()) for g in group)
            else:
                per.extend(_norms_of_group(group, device, p))
            order.extend(indices)
        first = grads[0].device
        total = torch.linalg.vector_norm(torch.stack([n.to(first) for n in per]), p)
        in_order: list[torch.Tensor] = [per[0]] * len(grads)
        for k, i in enumerate(order):
            in_order[i] = per[k]
        return total, in_order
    norms = tensor_norms(grads, p)
    first = local(grads[0]).device
    total = torch.linalg.vector_norm(torch.stack([n.to(first) for n in norms]), p)
    return total, norms


def scale_(grads: Sequence[torch.Tensor], coef: torch.Tensor) -> None:
    """Multiply every gradient by the scalar tensor `coef`, in place (foreach where possible)."""
    if not grads:
        return
    locals_ = [local(g) for g in grads]
    for device, group, _ in _by_device_and_dtype(locals_):
        c = coef.to(device)
        if _device_has_foreach_support(device) and _has_foreach_support(group, device):
            torch._foreach_mul_(group, c)
        else:
            for g in group:
                g.mul_(c)


def reduce_over_dim0_shards(
    values: list[torch.Tensor], tensors: Sequence[torch.Tensor], op: str
) -> list[torch.Tensor]:
    """All-reduce per-tensor `values` ("sum", "max" or "min") over the mesh dimensions on which
    a tensor of two or more dims is sharded along dim 0 (where per-unit results stay local)."""
    import torch.distributed as dist

    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        if not is_dtensor(t) or t.ndim <= 1:
            continue
        dims = tuple(
            d
            for d, pl in enumerate(t.placements)
            if pl.is_shard() and pl.dim == 0  # type: ignore[attr-defined]
        )
        if dims:
            groups.setdefault((id(t.device_mesh), dims), []).append(i)
    if not groups:
        return values
    ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
    out = list(values)
    for (_, dims), idx in groups.items():
        flat = torch.stack([values[i].reshape(()).double() for i in idx])
        mesh = cast(DTensor, tensors[idx[0]]).device_mesh  # grouped above: DTensors only
        for d in dims:
            dist.all_reduce(flat, op=ops[op], group=mesh.get_group(d))
        for k, i in enumerate(idx):
            out[i] = flat[k].to(values[i].dtype)
    return out
