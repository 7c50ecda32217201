"""Clipping thresholds from a warm-up run: checked against norms recorded by hand."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from secateurs.search.clip_range import suggest_clip_thresholds
from secateurs.zoo import MLP, digits_arrays


@pytest.fixture(scope="module")
def setup():
    x, y = digits_arrays()
    loader = DataLoader(TensorDataset(torch.from_numpy(x[:640]), torch.from_numpy(y[:640])), 64)
    torch.manual_seed(0)
    return MLP((64, 32, 10)), loader


def _reference_norms(model, loader, steps, lr):
    """Adam without clipping; the global L2 norm and max |g| before each step."""
    m = copy.deepcopy(model)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    norms, maxes = [], []
    for x, y in loader:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        grads = [p.grad for p in m.parameters()]
        norms.append(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))))
        maxes.append(max(float(g.abs().max()) for g in grads))
        opt.step()
        if len(norms) == steps:
            break
    return np.array(norms), np.array(maxes)


def test_thresholds_follow_autoclip_percentiles_and_pascanu_multiples(setup):
    model, loader = setup
    before = copy.deepcopy(model.state_dict())
    s = suggest_clip_thresholds(model, loader, 8, lr=1e-3)
    norms, maxes = _reference_norms(model, loader, 8, 1e-3)
    assert s.steps == 8
    assert s.mean == pytest.approx(norms.mean(), rel=1e-5)
    for p in (10.0, 50.0, 90.0):
        assert s.percentiles[p] == pytest.approx(np.percentile(norms, p), rel=1e-5)
        assert s.value_percentiles[p] == pytest.approx(np.percentile(maxes, p), rel=1e-5)
    assert s.multiples == pytest.approx({m: m * norms.mean() for m in (0.5, 1, 2, 5, 10)})
    assert s.by_norm == sorted(s.by_norm) and len(s.by_norm) == 8
    assert s.by_norm[-1] == pytest.approx(10 * norms.mean(), rel=1e-3)
    assert s.for_rule("value") == s.by_value
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert s.as_dict()["by_norm"] == s.by_norm


def test_bad_arguments(setup):
    model, loader = setup
    with pytest.raises(ValueError, match="percentiles"):
        suggest_clip_thresholds(model, loader, 2, percentiles=[0])
    with pytest.raises(ValueError, match="multipliers"):
        suggest_clip_thresholds(model, loader, 2, multipliers=[-1])
    s = suggest_clip_thresholds(model, loader, 2)
    with pytest.raises(ValueError, match="norm' and 'value'"):
        s.for_rule("agc")
