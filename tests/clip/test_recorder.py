import copy

import pytest
import torch
from torch import nn

from secateurs.clip import GradNormRecorder, NormRecord
from secateurs.train import record_norms


def data(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(n)
    ]


def test_records_each_step_and_leaves_model_unchanged():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    before = copy.deepcopy(model.state_dict())
    record = record_norms(model, data(), steps=10)  # cycles the 6 batches
    assert len(record.norms) == 10 and len(record.max_abs) == 10
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_gradient_only_mode_matches_direct_norms():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    batches = data(3)
    record = record_norms(model, batches, steps=3, train=False)
    for (x, y), norm in zip(batches, record.norms, strict=True):
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        expected = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
        assert norm == pytest.approx(float(expected), rel=1e-6)


def test_suggestions_follow_pascanu_and_percentiles():
    rec = NormRecord(norms=[1.0, 2.0, 3.0, 4.0, float("nan")], max_abs=[0.1, 0.2, 0.3, 0.4, 0.5])
    assert rec.mean == pytest.approx(2.5)
    assert rec.percentile(50) == pytest.approx(2.5)
    s = rec.suggest(percentiles=(50,))
    assert s.by_norm == sorted({1.25, 2.5, 5.0, 12.5, 25.0})
    assert s.percentiles == {50.0: pytest.approx(2.5)} and s.for_rule("norm") == s.by_norm
    assert s.by_value == [pytest.approx(0.3)]


def test_bad_input():
    with pytest.raises(ValueError, match="no finite gradient norm"):
        NormRecord(norms=[float("inf")]).mean  # noqa: B018
    with pytest.raises(ValueError, match=r"q must be in \(0, 100\]"):
        NormRecord(norms=[1.0]).percentile(0)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        record_norms(nn.Linear(2, 2), data(), steps=0)
    with pytest.raises(ValueError, match="no batches"):
        record_norms(nn.Linear(4, 3), [], steps=2)


def test_recorder_state_round_trip():
    a = GradNormRecorder()
    lin = nn.Linear(3, 2)
    lin.weight.grad = torch.ones(2, 3)
    a(lin)
    b = GradNormRecorder()
    b.load_state_dict(a.state_dict())
    assert b.record.norms == a.record.norms


def test_zero_gradients_are_a_wrong_loss_not_a_threshold_of_zero():
    rec = NormRecord(norms=[0.0] * 5, max_abs=[0.0] * 5)
    with pytest.raises(ValueError, match="wrong loss for the task"):
        rec.suggest()
    with pytest.raises(ValueError, match="all 5 recorded gradients are zero"):
        rec.percentile(50)
    # some zero steps among real ones: the zero candidates are left out, never suggested
    rec = NormRecord(norms=[0.0, 0.0, 0.0, 2.0, 4.0], max_abs=[0.0, 0.0, 0.0, 0.2, 0.4])
    s = rec.suggest(percentiles=(10, 50, 90))
    assert rec.percentile(10) == 0.0 and min(s.by_norm) > 0 and min(s.by_value) > 0


def test_record_norms_with_a_loss_that_ignores_the_weights_says_so():
    model = torch.nn.Linear(4, 2)
    data = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]

    def detached(out, y):  # a loss on detached outputs: the weights get zero gradients
        return (out.detach() - 1).pow(2).mean() + 0 * out.sum()

    with pytest.raises(ValueError, match="wrong loss"):
        record_norms(model, data, steps=3, loss_fn=detached).suggest()
