"""N:M patterns are exact; schedules follow their closed forms; the callback drives them."""

import math

import pytest
import torch
from torch import nn

from secateurs import prune
from secateurs.prune import schedules
from secateurs.prune.nm import nm_keep
from secateurs.train import fit


def _reference_nm(w, n, m):
    """Loop reference: in each row-group of m along dim 1 keep the n largest |w|."""
    keep = torch.zeros_like(w, dtype=torch.bool)
    for r in range(w.shape[0]):
        for g in range(0, w.shape[1], m):
            idx = torch.argsort(w[r, g : g + m].abs(), descending=True)[:n]
            keep[r, g + idx] = True
    return keep


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (1, 4)])
def test_nm_linear_exact_pattern(n, m):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 8))
    w0 = model[0].weight.detach().clone()
    report = prune.nm_(model, n, m, exclude=[])
    assert report.sparsity == pytest.approx(1 - n / m)
    w = model[0].weight.detach()
    groups = (w != 0).reshape(16, 32 // m, m).sum(-1)
    assert bool((groups == n).all())
    assert torch.equal(w != 0, _reference_nm(w0, n, m))
    assert prune.check_nm(model[2].weight, n, m)


def test_nm_conv_groups_along_input_channels():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 4, 3)
    prune.nm_(conv, 2, 4, exclude=[])
    nz = (conv.weight != 0).permute(0, 2, 3, 1).reshape(4, 3, 3, 2, 4).sum(-1)
    assert bool((nz == 2).all())


def test_nm_ties_remove_earlier_position_first():
    keep = nm_keep(torch.ones(1, 8), 2, 4, 1)
    assert keep.tolist() == [[False, False, True, True, False, False, True, True]]


def test_nm_indivisible_and_bad_args():
    with pytest.raises(ValueError, match="divisible by 4"):
        prune.nm_(nn.Linear(10, 4), 2, 4, exclude=[])
    with pytest.raises(ValueError, match="0 < n < m"):
        prune.nm_(nn.Linear(8, 4), 4, 4, exclude=[])


def test_one_shot_and_iterative_closed_forms():
    assert schedules.one_shot(4, target=0.9, at=5) == 0.0
    assert schedules.one_shot(5, target=0.9, at=5) == 0.9
    vals = [schedules.iterative(s, target=0.9, rounds=3, every=10) for s in range(0, 40, 10)]
    expected = [1 - 0.1 ** (r / 3) for r in (1, 2, 3, 3)]
    assert vals == pytest.approx(expected)
    # each round keeps the same fraction of the survivors
    kept = [1 - v for v in vals[:3]]
    assert kept[1] / kept[0] == pytest.approx(kept[2] / kept[1])
    assert schedules.iterative(9, target=0.9, rounds=3, every=10) == pytest.approx(
        1 - 0.1 ** (1 / 3)
    )


def test_cubic_closed_form():
    sf, si, t0, end, dt = 0.8, 0.1, 100, 1100, 50
    for step in range(0, 1300, 7):
        got = schedules.cubic(step, target=sf, initial=si, start=t0, end=end, frequency=dt)
        if step < t0:
            assert got == 0.0
            continue
        t = min(t0 + (min(step, end) - t0) // dt * dt, end)
        ref = sf + (si - sf) * (1 - (t - t0) / (end - t0)) ** 3
        assert got == pytest.approx(ref, abs=1e-12), step
    assert schedules.cubic(end, target=sf, end=end) == pytest.approx(sf)
    steps = [schedules.cubic(s, target=sf, end=1000) for s in range(0, 1001, 10)]
    assert steps == sorted(steps)  # monotone


def test_schedule_argument_errors():
    with pytest.raises(ValueError, match="target"):
        schedules.cubic(0, target=1.0, end=10)
    with pytest.raises(ValueError, match="end must be > start"):
        schedules.schedule("cubic", target=0.5, start=10, end=10)
    with pytest.raises(ValueError, match="schedule must be one of"):
        schedules.schedule("linear", target=0.5)
    with pytest.raises(ValueError, match="step"):
        schedules.one_shot(-1, target=0.5)


def test_pruning_callback_with_fit_reaches_target():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    x, y = torch.randn(256, 10), torch.randint(0, 3, (256,))
    data = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    cb = prune.PruningCallback(schedules.schedule("cubic", target=0.75, end=20, frequency=5))
    fit(model, data, epochs=4, callbacks=[cb])
    assert cb.steps == 32
    assert [s for s, _ in cb.reports] == [5, 10, 15, 20]
    assert cb.reports[-1][1].sparsity == pytest.approx(0.75, abs=1e-3)
    assert float((model[0].weight == 0).float().mean()) == pytest.approx(0.75, abs=1e-3)


def test_callback_with_movement_attaches_and_scores():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    x, y = torch.randn(128, 10), torch.randint(0, 3, (128,))
    data = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 128, 32)]
    crit = prune.Movement()
    cb = prune.PruningCallback(schedules.schedule("one_shot", target=0.5, at=3), criterion=crit)
    cb.attach(model)
    fit(model, data, epochs=1, callbacks=[cb])
    cb.close()
    assert not crit.attached
    assert math.isclose(cb.reports[0][1].sparsity, 0.5, abs_tol=1e-3)
