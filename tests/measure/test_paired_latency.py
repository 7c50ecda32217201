"""`compare_latency`: interleaved A/B timing; the same architecture comes out within noise,
a really smaller model comes out faster, and noise larger than the effect is said so."""

import copy
import time

import pytest
import torch
from torch import nn

from secateurs.measure import Speedup, compare_latency, measure_latency


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _mlp(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10))  # fmt: skip


def test_same_architecture_is_within_noise_of_one():
    a = _mlp(256)
    s = compare_latency(a, copy.deepcopy(a), torch.randn(64, 256), rounds=15)
    assert s.within_noise, s
    assert "within noise" in str(s)


def test_a_much_smaller_model_is_faster_and_agrees_with_separate_timings():
    big, small = _mlp(1024), _mlp(64)
    x = torch.randn(64, 256)
    s = compare_latency(big, small, x, rounds=15)  # about 60x fewer multiply-adds
    assert not s.within_noise and s.ratio > 3, s
    assert measure_latency(big, x).median > measure_latency(small, x).median  # same direction
    assert big.training and small.training  # modes restored


class _Sleeper(nn.Module):
    """Sleeps a fixed schedule of milliseconds, one entry per call (cycled)."""

    def __init__(self, schedule_ms):
        super().__init__()
        self.schedule, self.calls = schedule_ms, 0

    def forward(self, x):
        time.sleep(self.schedule[self.calls % len(self.schedule)] / 1e3)
        self.calls += 1
        return x


def test_noise_larger_than_the_effect_is_reported_as_noise():
    # the baseline alternates between 5 and 60 ms, the variant always takes 20 ms: the
    # per-round ratios straddle 1 although the mean baseline time is slower
    noisy = _Sleeper([5, 5, 5, 5, 60, 60, 60, 60])
    steady = _Sleeper([20])
    s = compare_latency(noisy, steady, torch.zeros(1), rounds=8, warmup=0, min_seconds=0)
    assert s.within_noise and s.q1 < 1 < s.q3, s
    clear = compare_latency(_Sleeper([60]), steady, torch.zeros(1), rounds=4, min_seconds=0)
    assert not clear.within_noise and clear.ratio == pytest.approx(3.0, rel=0.4)
    assert set(clear.as_dict()) == {
        "paired_speedup", "paired_speedup_q1", "paired_speedup_q3", "paired_rounds"
    }  # fmt: skip
    with pytest.raises(ValueError, match="rounds"):
        compare_latency(steady, steady, torch.zeros(1), rounds=1)
    assert isinstance(clear, Speedup)
