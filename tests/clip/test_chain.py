import math

import torch
from grad_helpers import grads, set_grads, small_model

from secateurs.clip import AGC, AutoClip, ByNorm, ByValue, chain


def test_applies_rules_in_order():
    a, b = small_model(), small_model()
    set_grads(a.parameters(), seed=1, scale=5.0)
    set_grads(b.parameters(), seed=1, scale=5.0)
    stats = chain(ByValue(0.5), ByNorm(1.0))(a)
    ByValue(0.5)(b)
    ByNorm(1.0)(b)
    for ga, gb in zip(grads(a.parameters()), grads(b.parameters()), strict=True):
        assert torch.equal(ga, gb)
    assert stats.norm_after == stats.parts[-1].norm_after
    assert len(stats.parts) == 2 and stats.clipped


def test_order_matters():
    a, b = small_model(), small_model()
    set_grads(a.parameters(), seed=2, scale=5.0)
    set_grads(b.parameters(), seed=2, scale=5.0)
    chain(ByValue(0.05), ByNorm(1.0))(a)
    chain(ByNorm(1.0), ByValue(0.05))(b)
    assert not all(
        torch.equal(x, y) for x, y in zip(grads(a.parameters()), grads(b.parameters()), strict=True)
    )
    # value last: every element within 0.05; norm last: the global norm within 1.0
    assert max(float(p.grad.abs().max()) for p in b.parameters()) <= float(torch.tensor(0.05))
    total = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in a.parameters()))
    assert total <= 1.0 + 1e-5


def test_skip_stops_the_chain():
    m = small_model()
    set_grads(m.parameters(), seed=3)
    next(iter(m.parameters())).grad[0, 0, 0, 0] = math.nan
    auto = AutoClip(50)
    stats = chain(AGC(0.01), auto)(m)
    assert stats.skipped and len(stats.parts) == 1
    assert auto.norms.numel() == 0  # the second rule never ran


def test_state_dict_round_trip():
    c1 = chain(ByNorm(1.0), AutoClip(30, history=5))
    m = small_model()
    for s in range(4):
        set_grads(m.parameters(), seed=s)
        c1(m)
    c2 = chain(ByNorm(1.0), AutoClip(30, history=5))
    c2.load_state_dict(c1.state_dict())
    assert torch.equal(c1.rules[1].norms, c2.rules[1].norms)
