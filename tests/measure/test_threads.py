"""`secateurs.measure.threads`: the measured thread choice keeps whichever count is faster."""

import time

import pytest
import torch

from secateurs.measure.threads import fastest_threads, set_threads, training_step


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _step_slower_with(threads: int, calls: list[int]):
    def step():
        calls.append(torch.get_num_threads())
        time.sleep(0.02 if torch.get_num_threads() == threads else 0.001)

    return step


@pytest.mark.parametrize(("slow", "expected"), [(2, 1), (1, 2)])
def test_the_faster_count_is_kept(two_threads, slow, expected):
    calls: list[int] = []
    choice = fastest_threads(_step_slower_with(slow, calls))
    assert choice.threads == expected == torch.get_num_threads()
    assert calls[:4] == [1, 1, 2, 2]  # interleaved: warm-up and timed call per candidate
    assert len(calls) == 4  # 20x apart after one round: no more rounds needed
    assert choice.seconds[slow] > 10 * choice.seconds[expected]
    assert str(expected) in choice.describe()


def test_close_counts_run_every_round_and_one_candidate_is_not_timed(two_threads):
    calls: list[int] = []
    fastest_threads(lambda: calls.append(1), rounds=3, clear_factor=1e9)
    assert len(calls) == 3 * 2 * 2
    calls.clear()
    choice = fastest_threads(lambda: calls.append(1), [1])
    assert calls == [] and choice.threads == 1 and choice.seconds == {}
    with pytest.raises(ValueError, match=">= 1"):
        fastest_threads(lambda: None, [0, 1])


def test_explicit_threads_skip_the_measurement(two_threads):
    def probe():
        raise AssertionError("measured although --threads was given")

    assert "1 CPU thread" in set_threads(1, probe)
    assert torch.get_num_threads() == 1


def test_training_step_runs_forward_and_backward_and_leaves_no_gradients():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    step = training_step(model, torch.randn(5, 4))
    seen = []
    model[0].weight.register_hook(lambda g: seen.append(g.clone()))
    step()
    assert len(seen) == 1 and seen[0].abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
