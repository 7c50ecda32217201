"""Clipping under DDP and FSDP2 (DTensor gradients): 2 processes, gloo, CPU.

Every rank also computes the single-process reference (the whole global batch, one model);
the clipped gradients under DDP and under FSDP2 must equal it, rule by rule, step by step.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

from gloo_helpers import run_gloo
from secateurs.clip import AGC, AutoClip, ByNorm, ByValue, ZClip, chain

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

STEPS = 3

RULES = {
    "by_norm": lambda: ByNorm(0.05),
    "by_norm_inf": lambda: ByNorm(0.02, norm_type="inf"),
    "by_norm_param": lambda: ByNorm(0.02, scope="param"),
    "by_value": lambda: ByValue(0.01),
    "agc": lambda: AGC(0.05),
    "autoclip": lambda: AutoClip(30, history=4),
    "zclip": lambda: ZClip(z=1.0, warmup=2, alpha=0.5),
    "chain": lambda: chain(AGC(0.1), ByNorm(0.05)),
}


def _model() -> nn.Module:
    torch.manual_seed(0)
    # odd sizes: FSDP2 shards rows unevenly (10 -> 5+5, 7 -> 4+3) and the 1-row head leaves
    # rank 1 with an empty shard
    return nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 7), nn.Tanh(), nn.Linear(7, 1))


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(8, 6, generator=g) * (1.0 + 3.0 * (step == 2))  # a spike at step 2
    return x, torch.randn(8, 1, generator=g)


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(model(x), y)


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _check(name: str, kind: str, rank: int) -> None:
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel

    ref_model = _model()
    ref_rule, rule = RULES[name](), RULES[name]()
    net = _model()
    if kind == "ddp":
        wrapped = DistributedDataParallel(net)
        target: nn.Module = net
    else:
        for layer in net:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        fully_shard(net)
        wrapped = target = net
    for step in range(STEPS):
        x, y = _batch(step)
        ref_model.zero_grad()
        _loss(ref_model, x, y).backward()
        ref_stats = ref_rule(ref_model)
        wrapped.zero_grad()
        half = slice(rank * 4, rank * 4 + 4)
        _loss(wrapped, x[half], y[half]).backward()
        stats = rule(target)
        for (pname, p), q in zip(target.named_parameters(), ref_model.parameters(), strict=True):
            torch.testing.assert_close(
                _full(p.grad),
                q.grad,
                rtol=2e-5,
                atol=1e-7,
                msg=lambda m, where=f"{kind} {name} step {step} {pname}": f"{where}: {m}",
            )
        for field in ("norm_before", "norm_after", "coef"):
            a, b = getattr(stats, field), getattr(ref_stats, field)
            assert (a is None) == (b is None), (kind, name, field)
            if a is not None:
                assert abs(a - b) <= 2e-5 * max(1.0, abs(b)), (kind, name, step, field, a, b)
        assert stats.clipped == ref_stats.clipped, (kind, name, step)


def _torch_fsdp_reference(rank: int) -> None:
    """Our global norm equals torch's clip_grad_norm_ on the same FSDP2 gradients."""
    from torch.distributed.fsdp import fully_shard

    nets = []
    for _ in range(2):
        net = _model()
        for layer in net:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        fully_shard(net)
        x, y = _batch(0)
        _loss(net, x[rank * 4 : rank * 4 + 4], y[rank * 4 : rank * 4 + 4]).backward()
        nets.append(net)
    expected = torch.nn.utils.clip_grad_norm_(nets[0].parameters(), 0.05)
    stats = ByNorm(0.05)(nets[1])
    assert abs(stats.norm_before - float(_full(expected))) < 1e-6
    for p, q in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(_full(p.grad), _full(q.grad), rtol=1e-6, atol=1e-8)


def _checks(rank: int) -> None:
    for kind in ("ddp", "fsdp"):
        for name in RULES:
            _check(name, kind, rank)
    _torch_fsdp_reference(rank)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_ddp_and_fsdp2_equal_single_process():
    run_gloo(_checks)
