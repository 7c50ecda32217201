"""Pruning under FSDP2 and DDP: 2 processes, gloo, CPU.

Every rank also builds the single-process reference (one model, the whole batch): the masks
that `unstructured` selects on the sharded model must be exactly the reference's, and after
training steps with gradient clipping the weights must equal the reference's, pruned ones
zero, on every rank.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

from gloo_helpers import WORLD, run_gloo
from secateurs import prune
from secateurs.clip import ByNorm
from secateurs.prune.mask import get_mask

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def _model(ties: bool) -> nn.Module:
    torch.manual_seed(0)
    # odd sizes: FSDP2 shards 11 rows as 6 + 5 and the 1-row head leaves rank 1 empty
    net = nn.Sequential(nn.Linear(6, 11), nn.Tanh(), nn.Linear(11, 7), nn.Tanh(), nn.Linear(7, 1))
    if ties:  # few distinct magnitudes: many ties at the threshold, spread over the ranks
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.round(p * 4) / 4)
    return net


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _masks(net: nn.Module) -> list[torch.Tensor]:
    return [get_mask(m, "weight").mask for m in net if isinstance(m, nn.Linear)]


def _shard(net: nn.Module) -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    for layer in net:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    return fully_shard(net)


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(8, 6, generator=g), torch.randn(8, 1, generator=g)


def _train(net, target, ref, rank, steps=3):
    """A few SGD steps with norm clipping; the weights must follow the reference's."""
    opt = torch.optim.SGD(target.parameters(), lr=0.2, momentum=0.9, weight_decay=0.01)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.2, momentum=0.9, weight_decay=0.01)
    clip, ref_clip = ByNorm(0.05), ByNorm(0.05)
    for step in range(steps):
        x, y = _batch(step)
        ref_opt.zero_grad()
        nn.functional.mse_loss(ref(x), y).backward()
        ref_clip(ref)
        ref_opt.step()
        opt.zero_grad()
        half = slice(rank * 4, rank * 4 + 4)
        nn.functional.mse_loss(net(x[half]), y[half]).backward()
        stats = clip(target)
        assert stats.clipped  # clipping did act, on masked gradients
        opt.step()
    with torch.no_grad():
        for (name, a), b in zip(
            target.state_dict().items(), ref.state_dict().values(), strict=True
        ):
            torch.testing.assert_close(_full(a), b, rtol=1e-5, atol=1e-6, msg=name)
        for m, rm in zip(target, ref, strict=True):
            if isinstance(m, nn.Linear):
                keep = get_mask(m, "weight").mask
                assert torch.equal(keep, get_mask(rm, "weight").mask)
                assert not _full(m.parametrizations.weight.original)[~keep].any()


def _check_fsdp(rank: int, ties: bool, scope: str) -> None:
    ref = _model(ties)
    ref_report = prune.unstructured_(ref, sparsity=0.6, scope=scope, exclude=[])
    net = _shard(_model(ties))
    report = prune.unstructured_(net, sparsity=0.6, scope=scope, exclude=[])
    for a, b in zip(_masks(net), _masks(ref), strict=True):
        assert torch.equal(a, b), (ties, scope)
    assert [x.nonzeros for x in report.layers] == [x.nonzeros for x in ref_report.layers]
    for m in net:  # the stored shards are zero where pruned
        if isinstance(m, nn.Linear):
            keep = get_mask(m, "weight").mask
            assert not _full(m.parametrizations.weight.original)[~keep].any()
    _train(net, net, ref, rank)


def _check_ddp(rank: int) -> None:
    from torch.nn.parallel import DistributedDataParallel

    ref = _model(False)
    prune.unstructured_(ref, sparsity=0.6, scope="global", exclude=[])
    net = _model(False)
    wrapped = DistributedDataParallel(net)
    prune.unstructured_(net, sparsity=0.6, scope="global", exclude=[])
    for a, b in zip(_masks(net), _masks(ref), strict=True):
        assert torch.equal(a, b)
    _train(wrapped, net, ref, rank)
    # the ranks agree
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(WORLD)]
    dist.all_gather(gathered, flat)
    assert torch.equal(gathered[0], gathered[1])


def _checks(rank: int) -> None:
    for ties in (False, True):
        for scope in ("global", "layer"):
            _check_fsdp(rank, ties, scope)
    _check_ddp(rank)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_fsdp2_and_ddp_prune_as_one_process():
    run_gloo(_checks)
