"""Unstructured pruning of weights sharded across processes (FSDP2 `fully_shard`).

Every process holds a slice of rows of each weight (a DTensor with ``Shard(0)``); the k-th
smallest score over all of them is found without gathering any weight: the scores are mapped
to order-preserving 32-bit keys and the key is found one byte at a time (four passes, each
all-reducing a 256-bin histogram of the local keys that match the bytes found so far). Ties
at the threshold are removed in the single-process order (targets in order, then row-major:
rank 0's rows of a weight come before rank 1's), from all-reduced per-rank tie counts. So the
masks are exactly those `unstructured_` selects on the whole model in one process.

The mask is the usual `Mask` parametrization, holding the whole (bool) mask on every rank,
since FSDP2 gathers the whole weight for the forward pass anyway. FSDP2 is told that the
parameter now lives at ``parametrizations.<name>.original`` (it writes the gathered weight
there before the forward pass), so the parametrization masks the gathered weight and the
gradient of pruned weights is zero on every shard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
from torch import nn

from secateurs.prune.criteria import Criterion
from secateurs.prune.mask import Mask, get_mask, register
from secateurs.prune.summary import LayerReport
from secateurs.prune.targets import Target

try:
    from torch.distributed.tensor import DTensor, Shard
except ImportError:  # torch built without distributed support
    DTensor = Shard = None  # type: ignore[assignment,misc]


def is_sharded(t: Target) -> bool:
    """True when the target's stored weight is a DTensor (FSDP2)."""
    return DTensor is not None and isinstance(t.param, DTensor)


def _check(targets: Sequence[Target]) -> dist.ProcessGroup | None:
    groups = []
    for t in targets:
        if not is_sharded(t):
            continue
        p = t.param
        if p.device_mesh.ndim != 1 or tuple(p.placements) != (Shard(0),):
            raise ValueError(
                f"{t.name} is sharded as {p.placements} on a {p.device_mesh.ndim}-D mesh; "
                "pruning supports FSDP2's default row sharding (Shard(0) on a 1-D mesh)"
            )
        if t.shared:
            raise ValueError(
                f"{t.name} is tied to other modules: tied sharded weights are not supported"
            )
        groups.append(p.device_mesh.get_group())
    return groups[0] if groups else None


def _row_offset(t: Target) -> int:
    """First global row of this rank's shard."""
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    p = t.param
    _, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
    return int(offset[0]) if offset else 0


def local_scores(crit: Criterion, t: Target) -> torch.Tensor:
    """This rank's float32 scores of `t` (already pruned weights score -inf)."""
    s = crit.score(t)
    if DTensor is not None and isinstance(s, DTensor):
        s = s.to_local()
    s = s.float()
    m = get_mask(t.module, t.attr)
    if is_sharded(t):
        rows = t.param.to_local().shape[0]
        if s.shape[0] != rows:  # a criterion that scored the whole tensor: our rows
            start = _row_offset(t)
            s = s[start : start + rows]
        if m is not None:
            start = _row_offset(t)
            s = s.masked_fill(~m.mask[start : start + rows].to(s.device), -torch.inf)
    elif m is not None:
        s = s.masked_fill(~m.mask, -torch.inf)
    return s


def _keys(s: torch.Tensor) -> torch.Tensor:
    """Order-preserving int64 keys in [0, 2**32) of float32 values (NaN is refused)."""
    s = s.contiguous() + 0.0  # -0.0 becomes +0.0: equal floats, equal keys
    bits = s.view(torch.int32).to(torch.int64)
    # negative floats: a larger magnitude is smaller, so their magnitude bits are inverted
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits) + (1 << 31)


def _all_sum(t: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
    if group is not None:
        dist.all_reduce(t, group=group)
    return t


class _Counter:
    """Counts over all ranks of local tensors; replicated tensors count on rank 0 only."""

    def __init__(self, targets: Sequence[Target], group: dist.ProcessGroup | None) -> None:
        self.targets = targets
        self.group = group
        self.rank = dist.get_rank(group) if group is not None else 0

    def counts(self, i: int) -> bool:
        return is_sharded(self.targets[i]) or self.rank == 0


def kth_key(
    score_fns: Sequence[Callable[[], torch.Tensor]],
    counter: _Counter,
    k: int,
    device: torch.device,
) -> tuple[int, int]:
    """The k-th smallest key (1-based) over all ranks, and how many keys are below it."""
    prefix, below = 0, 0
    for shift in (24, 16, 8, 0):
        hist = torch.zeros(257, dtype=torch.int64, device=device)  # last bin: NaN count
        for i, fn in enumerate(score_fns):
            if not counter.counts(i):
                continue
            s = fn()
            if shift == 24:
                hist[256] += torch.isnan(s).sum()
            keys = _keys(s).reshape(-1)
            if shift < 24:
                keys = keys[(keys >> (shift + 8)) == prefix]
            hist[:256] += torch.bincount((keys >> shift) & 255, minlength=256)
        hist = _all_sum(hist, counter.group).cpu()  # one small transfer per byte
        if hist[256]:
            raise ValueError("scores contain NaN; cannot rank them (check the weights)")
        hist = hist[:256]
        cum = torch.cumsum(hist, 0)
        b = int(torch.searchsorted(cum, torch.tensor(k - below), right=False))
        below += int(cum[b - 1]) if b > 0 else 0
        prefix = (prefix << 8) | b
    return prefix, below


def select(
    crit: Criterion, targets: Sequence[Target], k: int
) -> tuple[list[torch.Tensor], dist.ProcessGroup | None]:
    """This rank's keep-masks removing exactly the `k` lowest scores over all shards."""
    group = _check(targets)
    counter = _Counter(targets, group)
    fns = [lambda t=t: local_scores(crit, t) for t in targets]
    device = targets[0].param.device
    total = sum(t.numel() for t in targets)
    if k <= 0:
        return [torch.ones_like(f(), dtype=torch.bool) for f in fns], group
    if k >= total:
        return [torch.zeros_like(f(), dtype=torch.bool) for f in fns], group
    key, below = kth_key(fns, counter, k, device)
    r = k - below  # ties at the threshold still to remove
    keeps, ties = [], torch.zeros(len(targets), _world(group), dtype=torch.int64)
    for i, fn in enumerate(fns):
        keys = _keys(fn())
        keeps.append(keys > key)
        if counter.counts(i):
            ties[i, counter.rank] = int((keys == key).sum())
    ties = _all_sum(ties.to(device), group).cpu()
    done = 0
    for i, t in enumerate(targets):
        for rank in range(ties.shape[1]):
            n = int(ties[i, rank])
            mine = rank == counter.rank or (not is_sharded(t) and rank == 0)
            if mine and n:
                drop = min(max(r - done, 0), n)
                eq = (_keys(fns[i]()).reshape(-1) == key).nonzero().squeeze(1)
                keeps[i].view(-1)[eq[drop:]] = True
            done += n
    return keeps, group


def _world(group: dist.ProcessGroup | None) -> int:
    return dist.get_world_size(group) if group is not None else 1


def full_mask(t: Target, local_keep: torch.Tensor) -> torch.Tensor:
    """The whole mask from every rank's rows (bool travels as uint8: gloo has no bool)."""
    if not is_sharded(t):
        return local_keep
    p = t.param
    d = DTensor.from_local(
        local_keep.to(torch.uint8), p.device_mesh, p.placements, shape=p.shape, stride=p.stride()
    )
    return d.full_tensor().to(torch.bool)


def _fsdp_params(model: nn.Module) -> dict[int, object]:
    """id(sharded Parameter) -> its FSDPParam, for every FSDP2 module in `model`."""
    out: dict[int, object] = {}
    for m in model.modules():
        get_state = getattr(m, "_get_fsdp_state", None)
        if get_state is None:
            continue
        group = get_state()._fsdp_param_group
        for fp in group.fsdp_params if group is not None else ():
            out[id(fp.sharded_param)] = fp
    return out


def reshard(model: nn.Module) -> None:
    """Put every FSDP2 module of `model` in its sharded state (weights are DTensors)."""
    for m in model.modules():
        if callable(getattr(m, "reshard", None)) and hasattr(m, "_get_fsdp_state"):
            m.reshard()


def apply(model: nn.Module, t: Target, local_keep: torch.Tensor) -> None:
    """Mask `t` with the whole mask; zero this rank's pruned weights; keep FSDP2 in step."""
    keep = full_mask(t, local_keep)
    existing = get_mask(t.module, t.attr)
    p = t.param
    if existing is not None:
        existing.mask.logical_and_(keep.to(existing.mask.device))
    else:
        fp = _fsdp_params(model).get(id(p)) if is_sharded(t) else None
        register(t.module, t.attr, Mask(keep.to(p.device)))
        if fp is not None:
            # FSDP2 writes the gathered weight where the parameter now lives
            fp._module_info.module = t.module.parametrizations[t.attr]  # type: ignore[attr-defined]
            fp._module_info.param_name = "original"  # type: ignore[attr-defined]
    with torch.no_grad():
        local = p.to_local() if is_sharded(t) else p
        local.masked_fill_(~local_keep.to(local.device), 0)


def layer_report(
    t: Target, requested: float | None, group: dist.ProcessGroup | None
) -> LayerReport:
    """The layer's report with non-zeros counted over all ranks."""
    p = t.param
    if is_sharded(t):
        m = get_mask(t.module, t.attr)
        local = p.to_local().detach()
        if m is not None:
            start = _row_offset(t)
            local = local * m.mask[start : start + local.shape[0]].to(local.device)
        nz = _all_sum(torch.count_nonzero(local).reshape(1), group)
        nonzeros = int(nz)
    else:
        nonzeros = int(torch.count_nonzero(t.weight.detach()))
    return LayerReport(
        name=t.name, shape=tuple(p.shape), params=p.numel(), nonzeros=nonzeros, requested=requested
    )


def dead(t: Target) -> int:
    """Weights of `t` already pruned (the mask is whole on every rank)."""
    m = get_mask(t.module, t.attr)
    return 0 if m is None else int(m.mask.numel() - m.mask.sum())


def prune(
    model: nn.Module,
    crit: Criterion,
    targets: Sequence[Target],
    *,
    sparsity: float | None,
    threshold: float | None,
    scope: str,
) -> list[LayerReport]:
    """`unstructured_` on a model with sharded weights: "global" or "layer" scope, by sparsity
    or threshold; every rank must call it (the selection is collective)."""
    reshard(model)
    if threshold is not None:
        group = _check(targets)
        for t in targets:
            apply(model, t, local_scores(crit, t) >= threshold)
        return [layer_report(t, None, group) for t in targets]
    assert sparsity is not None
    if scope == "global":
        k = max(round(sparsity * sum(t.numel() for t in targets)), sum(dead(t) for t in targets))
        keeps, group = select(crit, targets, k)
        for t, keep in zip(targets, keeps, strict=True):
            apply(model, t, keep)
        return [layer_report(t, None, group) for t in targets]
    if scope != "layer":
        raise ValueError("a model with sharded weights takes scope='global' or 'layer'")
    group = None
    for t in targets:
        (keep,), group = select(crit, [t], max(round(sparsity * t.numel()), dead(t)))
        apply(model, t, keep)
    return [layer_report(t, sparsity, group) for t in targets]
