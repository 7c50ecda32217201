"""Rules read their settings at call time; `Scheduled` makes a setting follow the step."""

import math

import pytest
import torch
from grad_helpers import grads, set_grads, small_model

from secateurs.clip import AutoClip, ByNorm, ByValue, Scheduled


def _torch_clip(max_norm: float, p: float = 2.0, seed: int = 1):
    ref = small_model()
    set_grads(ref.parameters(), seed=seed, scale=3.0)
    total = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm, norm_type=p)
    return total, grads(ref.parameters())


@pytest.mark.parametrize("scope", ["global", "param", "layer"])
def test_changed_max_norm_applies_at_the_next_call(scope):
    rule = ByNorm(1.0, scope=scope)
    rule.max_norm = 1e6  # nothing is clipped now, in every scope
    m = small_model()
    g0 = set_grads(m.parameters(), seed=1, scale=3.0)
    stats = rule(m)
    assert not stats.clipped
    for g, want in zip(grads(m.parameters()), g0, strict=True):
        assert torch.equal(g, want)


def test_changed_settings_equal_torch_with_the_new_values():
    rule = ByNorm(1.0)
    rule.max_norm, rule.norm_type = 0.3, math.inf
    m = small_model()
    set_grads(m.parameters(), seed=1, scale=3.0)
    stats = rule(m)
    total, want = _torch_clip(0.3, math.inf)
    assert torch.equal(stats.tensors()["norm_before"], total)
    for g, w in zip(grads(m.parameters()), want, strict=True):
        assert torch.equal(g, w)
    rule.nonfinite = None  # the policy too is read at the call
    next(iter(m.parameters())).grad.view(-1)[0] = math.nan
    assert not rule(m).skipped


def test_settings_are_validated_when_set():
    rule = ByNorm(1.0)
    with pytest.raises(ValueError, match="max_norm"):
        rule.max_norm = -1.0
    with pytest.raises(ValueError, match="scope"):
        rule.scope = "model"


def test_scheduled_threshold_follows_the_step_like_torch():
    schedule = [0.05, 0.5, 1e6]
    rule = Scheduled(ByNorm(1.0), max_norm=lambda step: schedule[step])
    m = small_model()
    for step, max_norm in enumerate(schedule):
        set_grads(m.parameters(), seed=1, scale=3.0)
        stats = rule(m)
        total, want = _torch_clip(max_norm)
        assert stats.rule == "norm" and stats.clipped == (float(total) > max_norm)
        for g, w in zip(grads(m.parameters()), want, strict=True):
            assert torch.equal(g, w), step
    assert rule.step == 3 and rule.rule.max_norm == 1e6


def test_scheduled_state_round_trip_and_errors():
    a = Scheduled(AutoClip(10.0), percentile=lambda step: 10.0 + step)
    m = small_model()
    for s in range(4):
        set_grads(m.parameters(), seed=s)
        a(m)
    b = Scheduled(AutoClip(10.0), percentile=lambda step: 10.0 + step)
    b.load_state_dict(a.state_dict())
    assert b.step == 4
    assert torch.equal(b.rule.state_dict()["norms"], a.rule.state_dict()["norms"])
    set_grads(m.parameters(), seed=9)
    b(m)
    assert b.rule.percentile == 14.0  # set from step 4 before the call
    with pytest.raises(AttributeError, match="no setting"):
        Scheduled(ByValue(0.1), max_norm=lambda s: 1.0)
    with pytest.raises(ValueError, match="at least one"):
        Scheduled(ByValue(0.1))
