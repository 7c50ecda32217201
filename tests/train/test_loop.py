import pytest
import torch
from torch import nn

from secateurs.train import fit


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] > 0).long()
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, n, 16)]


def test_fit_lowers_loss_and_counts_steps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    res = fit(model, _data(), lr=1e-2, epochs=10)
    assert len(res.steps) == 40
    assert res.losses[-1] < 0.5 * res.losses[0]
    assert [s.step for s in res.steps] == list(range(40))


def test_accumulation_equals_one_big_batch():
    torch.manual_seed(0)
    a = nn.Linear(6, 2)
    b = nn.Linear(6, 2)
    b.load_state_dict(a.state_dict())
    data = _data(32)
    fit(a, data, optimizer=torch.optim.SGD(a.parameters(), lr=0.1), accumulate=2, max_steps=1)
    x = torch.cat([d[0] for d in data[:2]])
    y = torch.cat([d[1] for d in data[:2]])
    fit(b, [(x, y)], optimizer=torch.optim.SGD(b.parameters(), lr=0.1), max_steps=1)
    torch.testing.assert_close(a.weight, b.weight, rtol=1e-5, atol=1e-6)


def test_clip_runs_once_per_step_and_skip_is_honoured():
    calls = []

    class Skip:
        skipped = True

    def rule(model):
        calls.append(1)
        return Skip()

    model = nn.Linear(6, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = fit(model, _data(), clip=rule, accumulate=2, epochs=1)
    assert len(calls) == 2 == len(res.steps) == res.skipped_steps
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_callback_can_stop_and_eval_runs():
    class StopAt:
        def on_step_end(self, record, model):
            return record.step == 2

    res = fit(
        nn.Linear(6, 2), _data(), epochs=3, callbacks=[StopAt()], eval_fn=lambda m: {"x": 1.0}
    )
    assert len(res.steps) == 3 and res.stopped_early
    assert res.evals == [{"x": 1.0}]


@pytest.mark.parametrize("kw", [{"epochs": 0}, {"accumulate": 0}, {"max_steps": 0}])
def test_bad_arguments_name_the_argument(kw):
    name = next(iter(kw))
    with pytest.raises(ValueError, match=name):
        fit(nn.Linear(6, 2), _data(), **kw)
