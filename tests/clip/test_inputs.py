import math

import pytest
import torch
from torch import nn

from secateurs.clip import AGC, AutoClip, ByNorm, ByValue, ZClip, clip_weights_

RULES = [ByNorm(1.0), ByValue(1.0), AGC(), AutoClip(), ZClip()]


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf])
def test_thresholds_must_be_positive_finite(bad):
    with pytest.raises(ValueError, match="max_norm must be a finite number > 0"):
        ByNorm(bad)
    with pytest.raises(ValueError, match="clip must be a finite number > 0"):
        ByValue(bad)
    with pytest.raises(ValueError, match="clip must be a finite number > 0"):
        AGC(bad)
    with pytest.raises(ValueError, match="c must be a finite number > 0"):
        clip_weights_(nn.Linear(2, 2), bad)


@pytest.mark.parametrize("bad", [0, -2, math.nan, "two"])
def test_norm_type(bad):
    with pytest.raises((ValueError, TypeError), match="norm_type"):
        ByNorm(1.0, norm_type=bad)


def test_threshold_type():
    with pytest.raises(TypeError, match="max_norm must be a number"):
        ByNorm("1.0")


@pytest.mark.parametrize("rule", RULES)
def test_empty_parameter_list_is_an_error(rule):
    with pytest.raises(ValueError, match="parameters is empty"):
        rule([])
    model = nn.Linear(2, 2)
    gen = model.parameters()
    list(gen)
    with pytest.raises(ValueError, match="parameters is empty"):
        rule(gen)  # an exhausted generator


@pytest.mark.parametrize("rule", RULES)
def test_no_gradients_is_a_noop(rule):
    model = nn.Linear(3, 2)
    stats = rule(model)
    assert not stats.clipped and not stats.skipped
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("rule", RULES)
def test_parameters_without_grads_are_skipped(rule):
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    model[0].weight.grad = torch.full((2, 3), 100.0)
    stats = rule(model)
    assert model[1].weight.grad is None and not stats.skipped


@pytest.mark.parametrize("rule", RULES)
def test_sparse_gradients_are_refused(rule):
    emb = nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(TypeError, match="sparse gradients"):
        rule(emb)


def test_wrong_parameter_type():
    with pytest.raises(TypeError, match="parameters must"):
        ByNorm(1.0)(42)
    with pytest.raises(TypeError, match="parameters must contain tensors"):
        ByNorm(1.0)(["x"])


def test_clip_weights_clamps_symmetrically():
    lin = nn.Linear(4, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.linspace(-2, 2, 16).reshape(4, 4))
    outside = clip_weights_(lin, 0.5)
    w = lin.weight.detach()
    assert float(w.min()) == -0.5 and float(w.max()) == 0.5
    assert outside == int((torch.linspace(-2, 2, 16).abs() > 0.5).sum())
