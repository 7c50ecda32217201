import math

import numpy as np
import pytest
import torch
from grad_helpers import set_grads, small_model

from secateurs.clip import AutoClip


def run(rule, steps, seed0=0, model=None):
    m = model or small_model()
    out = []
    for s in range(steps):
        scale = 10.0 if s % 7 == 3 else 1.0 + 0.1 * s
        set_grads(m.parameters(), seed=seed0 + s, scale=scale)
        stats = rule(m)
        out.append((stats.norm_before, stats.norm_after, [p.grad.clone() for p in m.parameters()]))
    return out


@pytest.mark.parametrize("percentile,history", [(10, 100), (50, 5), (100, 3)])
def test_matches_numpy_percentile_reference(percentile, history):
    results = run(AutoClip(percentile, history=history), 20)
    seen: list[float] = []
    for before, after, _ in results:
        seen.append(before)
        window = np.array(seen[-history:], dtype=np.float64)
        limit = np.percentile(window, percentile)
        expected = before * min(1.0, limit / (before + 1e-6))
        assert after == pytest.approx(expected, rel=1e-5)


def test_history_is_bounded():
    rule = AutoClip(10, history=4)
    run(rule, 9)
    assert rule.norms.numel() == 4


def test_state_dict_round_trip_resumes_identically():
    a = AutoClip(25, history=8)
    run(a, 11)
    b = AutoClip(25, history=8)
    b.load_state_dict(a.state_dict())
    ra, rb = run(a, 6, seed0=100), run(b, 6, seed0=100)
    for (x1, y1, g1), (x2, y2, g2) in zip(ra, rb, strict=True):
        assert (x1, y1) == (x2, y2)
        assert all(torch.equal(u, v) for u, v in zip(g1, g2, strict=True))


def test_state_with_other_history_is_refused():
    a = AutoClip(25, history=8)
    with pytest.raises(ValueError, match="history=8"):
        AutoClip(25, history=9).load_state_dict(a.state_dict())


def test_nonfinite_steps_stay_out_of_history():
    for policy in ("skip", None):
        rule = AutoClip(50, history=10, nonfinite=policy)
        run(rule, 3)
        m = small_model()
        set_grads(m.parameters(), seed=9)
        next(iter(m.parameters())).grad[0, 0, 0, 0] = math.inf
        rule(m)
        finite = rule.norms[torch.isfinite(rule.norms)]
        assert finite.numel() == 3, policy


@pytest.mark.parametrize("bad", [0, -5, 101, math.nan])
def test_percentile_must_be_in_range(bad):
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\]"):
        AutoClip(bad)
