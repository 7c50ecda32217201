import math

import pytest
import torch
from grad_helpers import grads, set_grads, small_model

from secateurs.clip import AGC, AutoClip, ByNorm, ByValue, ZClip

RULES = [
    lambda nf: ByNorm(0.1, nonfinite=nf),
    lambda nf: ByNorm(0.1, scope="param", nonfinite=nf),
    lambda nf: ByValue(0.01, nonfinite=nf),
    lambda nf: AGC(0.01, nonfinite=nf),
    lambda nf: AutoClip(50, nonfinite=nf),
    lambda nf: ZClip(warmup=1, nonfinite=nf),
]


def poisoned(value: float = math.nan):
    m = small_model()
    set_grads(m.parameters(), seed=1)
    next(iter(m.parameters())).grad[0, 0, 0, 0] = value
    return m


@pytest.mark.parametrize("make", RULES)
def test_error_raises(make):
    with pytest.raises(FloatingPointError, match="nonfinite='skip'"):
        make("error")(poisoned())


@pytest.mark.parametrize("make", RULES)
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_skip_leaves_gradients_untouched(make, value):
    m = poisoned(value)
    before = grads(m.parameters())
    stats = make("skip")(m)
    assert stats.skipped and not stats.clipped
    assert stats.nonfinite == 1
    for g, p in zip(before, m.parameters(), strict=True):
        assert torch.equal(torch.nan_to_num(g), torch.nan_to_num(p.grad))


@pytest.mark.parametrize("make", RULES)
def test_zero_replaces_nonfinite_then_clips(make):
    m = poisoned()
    stats = make("zero")(m)
    assert not stats.skipped and stats.nonfinite == 1
    assert all(torch.isfinite(p.grad).all() for p in m.parameters())
    assert float(next(iter(m.parameters())).grad[0, 0, 0, 0]) == 0.0


def test_none_policy_behaves_like_torch():
    m, ref = poisoned(), poisoned()
    ByNorm(0.1, nonfinite=None)(m)
    torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.1)
    for a, b in zip(m.parameters(), ref.parameters(), strict=True):
        assert torch.equal(torch.isnan(a.grad), torch.isnan(b.grad))


def test_bad_policy_name():
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        ByNorm(1.0, nonfinite="ignore")
