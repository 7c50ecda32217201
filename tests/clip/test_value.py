import math

import pytest
import torch
from grad_helpers import grads, set_grads, small_model

from secateurs.clip import ByValue, clip_grad_value


@pytest.mark.parametrize("c", [1e-3, 0.5, 100.0])
def test_equals_torch_clip_grad_value(c):
    a, b = small_model(), small_model()
    set_grads(a.parameters(), seed=1)
    set_grads(b.parameters(), seed=1)
    torch.nn.utils.clip_grad_value_(b.parameters(), c)
    stats = ByValue(c)(a)
    for ga, gb in zip(grads(a.parameters()), grads(b.parameters()), strict=True):
        assert torch.equal(ga, gb)
    assert stats.norm_before is None  # one pass: nothing measured
    assert stats.nonfinite is None


def test_checked_reports_max_abs_norms():
    m = small_model()
    g0 = set_grads(m.parameters(), seed=2)
    largest = max(float(g.abs().max()) for g in g0)
    stats = ByValue(0.5, nonfinite="skip")(m)
    assert stats.norm_before == pytest.approx(largest)
    assert stats.norm_after == pytest.approx(0.5)
    assert stats.clipped and stats.nonfinite == 0
    assert max(float(p.grad.abs().max()) for p in m.parameters()) <= 0.5


def test_not_clipped_when_inside():
    m = small_model()
    set_grads(m.parameters(), seed=2, scale=1e-3)
    stats = ByValue(1.0, nonfinite="skip")(m)
    assert not stats.clipped


def test_inf_elements_become_the_bound_without_policy():
    t = torch.zeros(4)
    t.grad = torch.tensor([math.inf, -math.inf, 0.25, math.nan])
    clip_grad_value([t], 0.5)
    assert t.grad[:3].tolist() == [0.5, -0.5, 0.25]
    assert math.isnan(float(t.grad[3]))
