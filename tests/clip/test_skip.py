"""Non-finite steps are decided on the device and skipped without reading the flag back."""

import copy
import math

import pytest
import torch
from grad_helpers import grads, set_grads, small_model

from secateurs.clip import ByNorm, ClipMonitor, step_unless, wrap
from secateurs.clip.skip import fused_step_unless, masked_step_unless


@pytest.mark.parametrize("scope", ["global", "param", "layer"])
def test_bynorm_skip_is_a_device_flag_and_keeps_the_gradients(scope):
    m = small_model()
    set_grads(m.parameters(), seed=1, scale=3.0)
    next(iter(m.parameters())).grad.view(-1)[0] = math.inf
    before = [g.clone() for g in grads(m.parameters())]
    stats = ByNorm(0.1, scope=scope)(m)
    flag = stats.tensors()["skipped"]
    assert isinstance(flag, torch.Tensor) and flag.dtype == torch.bool  # not read on the host
    assert stats.skipped and not stats.clipped and stats.nonfinite == 1
    for g, b in zip(grads(m.parameters()), before, strict=True):
        assert torch.equal(g, b)
    set_grads(m.parameters(), seed=1, scale=3.0)  # a finite step clips as usual
    stats = ByNorm(0.1, scope=scope)(m)
    assert not stats.skipped and stats.clipped


def _adam_pair(**kwargs):
    a = small_model()
    b = copy.deepcopy(a)
    return (a, torch.optim.Adam(a.parameters(), lr=0.1, **kwargs)), (
        b,
        torch.optim.Adam(b.parameters(), lr=0.1, **kwargs),
    )


@pytest.mark.parametrize("skip_fn", [masked_step_unless, fused_step_unless])
def test_device_paths_skip_exactly_and_step_exactly(skip_fn):
    fused = skip_fn is fused_step_unless
    (a, opt_a), (b, opt_b) = _adam_pair(fused=fused)
    for step, skip in enumerate([False, True, False, True]):
        set_grads(a.parameters(), seed=step)
        set_grads(b.parameters(), seed=step)
        skip_fn(opt_a, torch.tensor(skip))
        if not skip:
            opt_b.step()  # the reference: a plain step, or none
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(p, q), step
            for k, v in opt_b.state[q].items():
                assert torch.equal(opt_a.state[p][k], v), (step, k)


def test_a_skipped_first_step_leaves_fresh_state():
    (a, opt), _ = _adam_pair()
    before = [p.detach().clone() for p in a.parameters()]
    set_grads(a.parameters(), seed=0)
    masked_step_unless(opt, torch.tensor(True))
    for p, b in zip(a.parameters(), before, strict=True):
        assert torch.equal(p, b)
        assert all(float(v.abs().sum()) == 0 for v in opt.state[p].values())


def test_wrap_and_monitor_count_device_side_skips():
    m = small_model()
    opt = wrap(torch.optim.SGD(m.parameters(), lr=0.1), ClipMonitor(ByNorm(1.0)))
    for step in range(4):
        set_grads(m.parameters(), seed=step)
        if step % 2:
            next(iter(m.parameters())).grad.view(-1)[0] = math.nan
        opt.step()
    assert opt.skipped_steps == 2 and opt.rule.summary()["skipped"] == 2
    assert all(bool(torch.isfinite(p).all()) for p in m.parameters())
    step_unless(opt.optimizer, False)  # plain bools work too


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_synchronisation_on_cuda():
    m = small_model().cuda()
    opt = wrap(torch.optim.Adam(m.parameters(), fused=True), ByNorm(1.0))
    for p in m.parameters():
        p.grad = torch.randn_like(p)
    opt.step()  # warm up allocations and optimizer state
    for p in m.parameters():
        p.grad = torch.randn_like(p)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
