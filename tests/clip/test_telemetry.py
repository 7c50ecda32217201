import math
import warnings

import pytest
from grad_helpers import set_grads, small_model

from secateurs.clip import ByNorm, ClipMonitor


def test_summary_counts_clips_skips_and_norms():
    monitor = ClipMonitor(ByNorm(5.0), history=3)
    m = small_model()
    norms = []
    for s, scale in enumerate([0.01, 10.0, 0.01, 10.0]):
        set_grads(m.parameters(), seed=s, scale=scale)
        norms.append(monitor(m).norm_before)
    set_grads(m.parameters(), seed=9)
    next(iter(m.parameters())).grad[0, 0, 0, 0] = math.inf
    monitor(m)
    summary = monitor.summary()
    assert summary["steps"] == 5
    assert summary["clipped"] == 2 and summary["clip_rate"] == pytest.approx(0.4)
    assert summary["skipped"] == 1 and summary["nonfinite_steps"] == 1
    assert monitor.norms.numel() == 3  # bounded
    assert summary["norm_max"] == pytest.approx(max(norms[2:]), rel=1e-6)  # last 3, inf excluded


def test_nonfinite_counts_steps_not_tensors():
    """A step with NaN in three tensors is one non-finite step."""
    monitor = ClipMonitor(ByNorm(1.0))
    m = small_model()
    set_grads(m.parameters(), seed=1)
    for param in list(m.parameters())[:3]:
        param.grad.view(-1)[0] = math.nan
    stats = monitor(m)
    assert stats.nonfinite == 3  # the rule reports tensors...
    set_grads(m.parameters(), seed=2)
    monitor(m)
    summary = monitor.summary()
    assert summary["nonfinite_steps"] == 1  # ...the monitor counts steps
    assert summary["skipped"] == 1 and summary["steps"] == 2


def test_state_round_trip():
    a = ClipMonitor(ByNorm(1.0), history=4)
    m = small_model()
    for s in range(6):
        set_grads(m.parameters(), seed=s)
        a(m)
    b = ClipMonitor(ByNorm(1.0), history=4)
    b.load_state_dict(a.state_dict())
    assert a.summary() == b.summary()


def test_monitor_without_rule_cannot_be_called():
    with pytest.raises(TypeError, match="wraps no rule"):
        ClipMonitor()(small_model())


def test_warns_when_every_step_is_clipped():
    m = small_model()
    low = ClipMonitor(ByNorm(1e-6))  # far below any real gradient norm
    for s in range(20):
        set_grads(m.parameters(), seed=s)
        low(m)
    with pytest.warns(UserWarning, match="every one of the 20 steps was clipped"):
        assert low.summary()["clip_rate"] == 1.0
    few = ClipMonitor(ByNorm(1e-6))  # too few steps to judge
    sometimes = ClipMonitor(ByNorm(5.0))
    for s, scale in enumerate([0.01, 10.0] * 10):
        set_grads(m.parameters(), seed=s, scale=scale)
        sometimes(m)
        if s < 5:
            few(m)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert few.summary()["clip_rate"] == 1.0
        assert sometimes.summary()["clip_rate"] == 0.5
