import math

import pytest
import torch
from grad_helpers import grads, set_grads, small_model

from secateurs.clip import ByNorm, clip_grad_norm


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.05, 1e6])
def test_global_equals_torch_exactly(p, max_norm):
    a, b = small_model(), small_model()
    set_grads(a.parameters(), seed=1, scale=3.0)
    set_grads(b.parameters(), seed=1, scale=3.0)
    expected = torch.nn.utils.clip_grad_norm_(b.parameters(), max_norm, norm_type=p)
    stats = ByNorm(max_norm, norm_type=p)(a)
    assert torch.equal(stats.tensors()["norm_before"], expected)
    for ga, gb in zip(grads(a.parameters()), grads(b.parameters()), strict=True):
        assert torch.equal(ga, gb)
    assert stats.clipped == (float(expected) > max_norm)
    if stats.clipped:
        assert stats.norm_after == pytest.approx(max_norm, rel=1e-5)


def test_global_mixed_dtypes_equal_torch():
    params = [torch.zeros(7, 3), torch.zeros(11, dtype=torch.float64), torch.zeros(2, 2)]
    params2 = [t.clone() for t in params]
    set_grads(params, seed=4)
    for t, u in zip(params2, params, strict=True):
        t.grad = u.grad.clone()
    expected = torch.nn.utils.clip_grad_norm_(params2, 0.3)
    stats = ByNorm(0.3)(params)
    assert torch.equal(stats.tensors()["norm_before"], expected)
    for t, u in zip(params, params2, strict=True):
        assert torch.equal(t.grad, u.grad)


def test_param_scope_against_float64():
    m = small_model()
    g0 = set_grads(m.parameters(), seed=2)
    ByNorm(0.5, scope="param")(m)
    for p, g in zip(m.parameters(), g0, strict=True):
        n = g.double().norm()
        expected = g.double() * min(1.0, 0.5 / (float(n) + 1e-6))
        torch.testing.assert_close(p.grad.double(), expected, rtol=1e-6, atol=1e-7)
        assert float(p.grad.norm()) <= 0.5 + 1e-5


def test_layer_scope_groups_each_module():
    m = small_model()
    g0 = set_grads(m.parameters(), seed=3)
    stats = ByNorm(0.5, scope="layer")(m)
    owners = [mod for mod in m.modules() if list(mod.parameters(recurse=False))]
    k = 0
    for mod in owners:
        own = list(mod.parameters(recurse=False))
        g = g0[k : k + len(own)]
        k += len(own)
        n = torch.sqrt(sum(t.double().pow(2).sum() for t in g))
        coef = min(1.0, 0.5 / (float(n) + 1e-6))
        for p, gi in zip(own, g, strict=True):
            torch.testing.assert_close(p.grad.double(), gi.double() * coef, rtol=1e-6, atol=1e-7)
    assert stats.clipped
    assert stats.extra["units_clipped"] == len(g0)  # every tensor's group was scaled


@pytest.mark.parametrize("p", [1.0, 3.0, math.inf])
def test_layer_scope_uses_the_rules_p_norm_per_module(p):
    """Each module's tensors are grouped by the p-norm asked for, not by L2 (float64 reference)."""
    m = small_model()
    g0 = set_grads(m.parameters(), seed=5, scale=2.0)
    ByNorm(0.5, norm_type=p, scope="layer")(m)
    owners = [mod for mod in m.modules() if list(mod.parameters(recurse=False))]
    k = 0
    for mod in owners:
        own = list(mod.parameters(recurse=False))
        g = [t.double().flatten() for t in g0[k : k + len(own)]]
        k += len(own)
        n = float(torch.linalg.vector_norm(torch.cat(g), p))
        coef = min(1.0, 0.5 / (n + 1e-6))
        for param, gi in zip(own, g, strict=True):
            torch.testing.assert_close(
                param.grad.double().flatten(), gi * coef, rtol=1e-6, atol=1e-7
            )


def test_layer_scope_needs_a_module():
    m = small_model()
    set_grads(m.parameters())
    with pytest.raises(TypeError, match="scope='layer'"):
        ByNorm(1.0, scope="layer")(list(m.parameters()))


def test_functional_matches_rule():
    a, b = small_model(), small_model()
    set_grads(a.parameters(), seed=5)
    set_grads(b.parameters(), seed=5)
    s1 = clip_grad_norm(a, 0.1)
    s2 = ByNorm(0.1)(b)
    assert s1.norm_before == s2.norm_before
    for ga, gb in zip(grads(a.parameters()), grads(b.parameters()), strict=True):
        assert torch.equal(ga, gb)


def test_accepts_optimizer_param_groups():
    m = small_model()
    set_grads(m.parameters(), seed=6)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    stats = ByNorm(0.1)(opt.param_groups)
    assert stats.norm_after == pytest.approx(0.1, rel=1e-5)


def test_empty_tensors_count_as_zero_norm():
    params = [torch.zeros(3, 4), torch.zeros(0, 4), torch.zeros(5)]
    set_grads(params, seed=7)
    ref = [t.grad.clone() for t in params]
    stats = ByNorm(0.1, norm_type="inf")(params)  # torch's foreach inf norm refuses empties
    expected = max(float(g.abs().max()) for g in ref if g.numel())
    assert stats.norm_before == pytest.approx(expected)
    for t, g in zip(params, ref, strict=True):
        torch.testing.assert_close(t.grad, g * min(1.0, 0.1 / (expected + 1e-6)))
