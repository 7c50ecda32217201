"""NaN/inf injected into one gradient, for every clipping rule and every non-finite policy.

The gradient that goes bad is the final classifier's, which AGC leaves unclipped (the
reported fault: it passed every policy and corrupted the weights and Adam's moments), or the
first layer's. "error" must raise; "skip" must leave parameters and optimizer state exactly as
they were; "zero" must leave everything finite.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from secateurs.clip import AGC, AutoClip, ByNorm, ByValue, Chain, ZClip, wrap

RULES = {
    "value": lambda pol: ByValue(0.5, nonfinite=pol),
    "norm": lambda pol: ByNorm(1.0, nonfinite=pol),
    "norm-inf": lambda pol: ByNorm(1.0, "inf", nonfinite=pol),
    "norm-param": lambda pol: ByNorm(1.0, scope="param", nonfinite=pol),
    "norm-layer": lambda pol: ByNorm(1.0, scope="layer", nonfinite=pol),
    "agc": lambda pol: AGC(0.01, nonfinite=pol),
    "agc-exclude": lambda pol: AGC(0.01, exclude=("0.*",), nonfinite=pol),
    "autoclip": lambda pol: AutoClip(10.0, nonfinite=pol),
    "zclip": lambda pol: ZClip(warmup=1, nonfinite=pol),
    "chain": lambda pol: Chain(AGC(0.01, nonfinite=pol), ByNorm(1.0, nonfinite=pol)),
}


def _state(model: nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    out = [p.detach().clone() for p in model.parameters()]
    for s in opt.state.values():
        out += [v.clone() for v in s.values() if isinstance(v, torch.Tensor)]
    return out


def _step(model: nn.Module, wrapped, poison: str | None, value: float) -> None:
    wrapped.zero_grad()
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    model(x).square().mean().backward()
    if poison is not None:
        model.get_submodule(poison).weight.grad[0, 0] = value
    wrapped.step()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("where", ["2", "0"])  # the classifier (AGC leaves it) or the first
@pytest.mark.parametrize("policy", ["error", "skip", "zero"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_and_policy_catches_a_bad_gradient(rule, policy, where, value):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    wrapped = wrap(opt, RULES[rule](policy), model)
    for _ in range(3):  # state and rule histories exist before the bad step
        _step(model, wrapped, None, 0.0)
    before = _state(model, opt)
    if policy == "error":
        with pytest.raises(FloatingPointError):
            _step(model, wrapped, where, value)
        return
    _step(model, wrapped, where, value)
    after = _state(model, opt)
    if policy == "skip":
        assert wrapped.skipped_steps == 1
        assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    else:
        assert all(bool(torch.isfinite(t).all()) for t in after)
        assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    _step(model, wrapped, None, 0.0)  # training goes on with finite numbers
    assert all(bool(torch.isfinite(t).all()) for t in _state(model, opt))
