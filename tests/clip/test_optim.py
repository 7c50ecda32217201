import copy
import math

import pytest
import torch
from grad_helpers import small_model

from secateurs.clip import ByNorm, ByValue, ZClip, wrap


def loss_of(model, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, 6, 6, generator=g)
    return model(x).pow(2).mean()


def test_step_clips_then_steps_like_manual():
    a = small_model()
    b = copy.deepcopy(a)
    opt_a = wrap(torch.optim.SGD(a.parameters(), lr=0.1), ByNorm(0.01))
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    for s in range(3):
        opt_a.zero_grad()
        loss_of(a, s).backward()
        opt_a.step()
        opt_b.zero_grad()
        loss_of(b, s).backward()
        torch.nn.utils.clip_grad_norm_(b.parameters(), 0.01)
        opt_b.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert opt_a.steps == 3 and opt_a.skipped_steps == 0
    assert opt_a.last_stats.clipped


@pytest.mark.parametrize("rule", [ByNorm(1.0), ByValue(1.0, nonfinite="skip"), ZClip(warmup=1)])
def test_skip_leaves_parameters_and_adam_state_untouched(rule):
    m = small_model()
    opt = wrap(torch.optim.Adam(m.parameters(), lr=1e-2), rule, m)
    for s in range(2):  # real steps first, so Adam has moments and a step count
        opt.zero_grad()
        loss_of(m, s).backward()
        opt.step()
    params = [p.detach().clone() for p in m.parameters()]
    state = copy.deepcopy(opt.optimizer.state_dict())
    opt.zero_grad()
    loss_of(m, 5).backward()
    next(iter(m.parameters())).grad[0, 0, 0, 0] = math.nan
    opt.step()
    assert opt.skipped_steps == 1 and opt.steps == 3
    for p, q in zip(m.parameters(), params, strict=True):
        assert torch.equal(p, q)
    after = opt.optimizer.state_dict()
    for k, st in state["state"].items():
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(after["state"][k][name], st[name]), name


def test_closure_and_delegation():
    m = small_model()
    opt = wrap(torch.optim.SGD(m.parameters(), lr=0.1), ByNorm(1.0))

    def closure():
        opt.zero_grad()
        loss = loss_of(m, 0)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert torch.is_tensor(loss)
    assert opt.param_groups[0]["lr"] == 0.1
    sd = opt.state_dict()
    opt2 = wrap(torch.optim.SGD(m.parameters(), lr=0.5), ByNorm(1.0))
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.1 and opt2.steps == 1


def test_wrap_rejects_non_optimizers():
    with pytest.raises(TypeError, match="optimizer"):
        wrap(object(), ByNorm(1.0))
