import pytest
import torch
from grad_helpers import set_grads, small_model

from secateurs.clip import AutoClip, ByNorm, ClipStats
from secateurs.train import LogCallback, StepRecord, format_step


def test_values_stay_tensors_until_read():
    m = small_model()
    set_grads(m.parameters(), seed=1)
    stats = AutoClip(50, nonfinite=None)(m)  # no policy: nothing is read on the host
    raw = stats.tensors()
    for name in ("norm_before", "norm_after", "coef", "nonfinite", "clipped"):
        assert isinstance(raw[name], torch.Tensor), name
    assert isinstance(stats.norm_before, float) and isinstance(stats.clipped, bool)
    assert isinstance(stats.nonfinite, int)
    d = stats.as_dict()
    assert d["rule"] == "autoclip" and isinstance(d["threshold"], float)


def test_repr_and_defaults():
    s = ClipStats("x")
    assert s.norm_before is None and not s.clipped and not s.skipped
    assert "ClipStats(x:" in repr(s)


def test_format_step_mentions_clip_and_skip():
    m = small_model()
    set_grads(m.parameters(), seed=2)
    stats = ByNorm(0.01)(m)
    line = format_step(StepRecord(3, 0, torch.tensor(0.5), clip=stats))
    assert line.startswith("step     3") and "norm" in line and "-> 0.01" in line
    skipped = format_step(StepRecord(4, 0, torch.tensor(0.5), skip=True))
    assert skipped.endswith("skipped")


def test_log_callback_validates_every():
    with pytest.raises(ValueError, match="every must be >= 1"):
        LogCallback(every=0)
