import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from secateurs.measure import (
    accuracy,
    count_macs,
    count_nonzeros,
    count_parameters,
    mean_loss,
    measure_latency,
    parameter_bytes,
    time_callable,
)


class _Mask(nn.Module):
    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def test_counts_tied_weights_once():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    model = nn.Sequential(emb, head)
    assert count_parameters(model) == 40
    assert parameter_bytes(model) == 160


def test_nonzeros_see_through_parametrized_masks():
    lin = nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(1.0)
    mask = torch.zeros(3, 4)
    mask[0, :2] = 1
    parametrize.register_parametrization(lin, "weight", _Mask(mask))
    assert count_parameters(lin) == 15
    assert count_nonzeros(lin) == 2 + 3  # two kept weights and three biases


def test_counts_of_many_masked_layers_are_stable():
    # Regression: masked values are temporaries; identity must not come from them.
    model = nn.Sequential(*[nn.Linear(8, 8) for _ in range(12)])
    for lin in model:
        mask = torch.ones(8, 8)
        mask[:, :2] = 0
        parametrize.register_parametrization(lin, "weight", _Mask(mask))
    for _ in range(3):
        assert count_parameters(model) == 12 * (64 + 8)
        assert count_nonzeros(model) <= 12 * (48 + 8)
        assert count_nonzeros(model) >= 12 * 48


def test_macs_of_linear_and_conv_match_closed_form():
    lin = nn.Linear(16, 8)
    assert count_macs(lin, torch.randn(5, 16)) == 5 * 16 * 8
    conv = nn.Conv2d(3, 4, 3, padding=1)
    # each output element: 3*3*3 MACs; outputs 4 x 6 x 6 per image, batch 2
    assert count_macs(conv, torch.randn(2, 3, 6, 6)) == 2 * 4 * 6 * 6 * 27


def test_macs_accepts_tuple_and_dict_inputs_and_keeps_mode():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x, y):
            return self.a(x) + y

    m = Two().train()
    assert count_macs(m, (torch.randn(2, 4), torch.randn(2, 4))) == 32
    assert count_macs(m, {"x": torch.randn(2, 4), "y": torch.randn(2, 4)}) == 32
    assert m.training


def test_accuracy_and_mean_loss_against_direct_computation():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    x, y = torch.randn(50, 5), torch.randint(0, 3, (50,))
    batches = [(x[:20], y[:20]), (x[20:], y[20:])]
    with torch.no_grad():
        out = model(x)
    assert accuracy(model, batches) == pytest.approx((out.argmax(1) == y).float().mean().item())
    ref = nn.functional.cross_entropy(out.double(), y).item()
    assert mean_loss(model, batches) == pytest.approx(ref, rel=1e-6)
    assert mean_loss(model, batches, nn.CrossEntropyLoss()) == pytest.approx(ref, rel=1e-6)
    mse = mean_loss(model, batches, lambda o, t: (o[:, 0] - t).pow(2).mean())
    assert mse == pytest.approx((out[:, 0] - y).pow(2).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="empty"):
        accuracy(model, [])


def test_latency_reports_quartiles():
    t = time_callable(lambda: sum(range(1000)), warmup=1, runs=5)
    assert 0 < t.q1 <= t.median <= t.q3
    model = copy.deepcopy(nn.Linear(8, 8)).train()
    lt = measure_latency(model, torch.randn(4, 8), runs=3)
    assert lt.runs == 3 and model.training
    with pytest.raises(ValueError, match="runs"):
        time_callable(lambda: None, runs=0)
