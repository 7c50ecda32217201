"""structured(): options, importance criteria, bad input, the input model left alone."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from secateurs.prune import structured
from secateurs.prune.structural import BNScalePenalty, DistillLoss, distill
from secateurs.train import fit
from secateurs.zoo.models import MLP, ResCNN

from .models import Recurrent

X = torch.randn(4, 1, 8, 8)


def _widths(model: nn.Module) -> list[int]:
    return [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]


def test_input_model_is_not_modified() -> None:
    model = ResCNN(width=8)
    before = copy.deepcopy(model.state_dict())
    pruned, _ = structured(model, X, ratio=0.5)
    assert pruned is not model
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_l2_removes_the_smallest_neurons() -> None:
    torch.manual_seed(0)
    model = MLP((64, 10, 3))
    with torch.no_grad():
        for i in range(10):  # neuron i's weights (row and column) scale with i
            model.net[1].weight[i] = 0.01 * (i + 1)
            model.net[1].bias[i] = 0.0
            model.net[3].weight[:, i] = 0.01 * (i + 1)
    pruned, report = structured(model, X, ratio=0.3)
    # neurons 0, 1, 2 had the smallest L2 norms: the kept rows are 3..9 in order.
    torch.testing.assert_close(pruned.net[1].weight, model.net[1].weight[3:])
    torch.testing.assert_close(pruned.net[3].weight, model.net[3].weight[:, 3:])
    assert report.groups[0].before == 10 and report.groups[0].after == 7


def test_round_to_protect_limits_and_global() -> None:
    model = MLP((64, 300, 100, 10))
    pruned, _ = structured(model, X, ratio=0.5, round_to=16)
    assert _widths(pruned) == [144, 48, 10]
    deeper = MLP((64, 300, 100, 50, 10))
    pruned, _ = structured(deeper, X, ratio=0.5, protect=("net.5",))
    assert _widths(pruned) == [150, 100, 50, 10]  # net.5 untouched: its in and out widths
    pruned, _ = structured(model, X, ratio=0.5, per_layer_limits={"net.1": 0.1})
    assert _widths(pruned) == [270, 50, 10]
    pruned, report = structured(model, X, ratio=0.5, global_ratio=True)
    assert sum(g.before - g.after for g in report.groups) == 200
    assert report.method == "structured/l2/global"


def test_zero_ratio_is_identity_and_report_is_plain() -> None:
    model = ResCNN(width=8).eval()
    pruned, report = structured(model, X, ratio=0.0)
    torch.testing.assert_close(pruned.eval()(X), model(X))
    d = report.as_dict()
    assert d["params_before"] == d["params_after"] and d["mac_reduction"] == 1.0
    assert "fc" in d["kept"] and "reaches the model output" in report.to_table()


@pytest.mark.parametrize("criterion", ["l1", "bn", "random", "activation", "taylor"])
def test_every_criterion_runs(criterion: str) -> None:
    torch.manual_seed(0)
    model = ResCNN(width=8)
    data = [(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))) for _ in range(2)]
    pruned, report = structured(model, X, ratio=0.25, importance=criterion, data=data)
    assert report.macs_after < report.macs_before
    assert pruned(X).shape == (4, 10)


def test_activation_finds_dead_neurons() -> None:
    torch.manual_seed(0)
    model = MLP((64, 8, 3))
    with torch.no_grad():
        model.net[1].bias[[2, 5]] = -100.0  # never active after ReLU: constant zero output
    data = [torch.randn(16, 1, 8, 8) for _ in range(3)]
    pruned, _ = structured(model, X, ratio=0.25, importance="activation", data=data)
    kept_bias = pruned.net[1].bias.tolist()
    assert -100.0 not in kept_bias and len(kept_bias) == 6


def test_bn_penalty_shrinks_scales_and_composes_with_fit() -> None:
    torch.manual_seed(0)
    model = ResCNN(width=8)
    data = [(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))) for _ in range(4)]
    before = sum(
        m.weight.abs().sum().item() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
    )
    fit(model, data, clip=BNScalePenalty(0.5), lr=0.05, optimizer=None, epochs=2)
    after = sum(
        m.weight.abs().sum().item() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
    )
    assert after < before
    with pytest.raises(ValueError, match="strength"):
        BNScalePenalty(-1.0)


def test_distillation_moves_the_student_towards_the_teacher() -> None:
    torch.manual_seed(0)
    teacher = MLP((64, 32, 10))
    student, _ = structured(teacher, X, ratio=0.75)
    xs = [torch.randn(32, 1, 8, 8) for _ in range(8)]
    data = [(x, torch.zeros(32, dtype=torch.long)) for x in xs]
    loss = DistillLoss(alpha=1.0, kind="kl")

    def gap() -> float:
        with torch.no_grad():
            return sum(loss(student(x), (None, teacher(x))).item() for x in xs)

    start = gap()
    distill(student, teacher, data, alpha=1.0, lr=1e-2, epochs=3)
    assert gap() < 0.7 * start
    with pytest.raises(ValueError, match="alpha"):
        DistillLoss(alpha=2.0)


def test_bad_input_is_rejected_and_names_the_argument() -> None:
    model = MLP()
    for ratio in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="ratio"):
            structured(model, X, ratio=ratio)
    with pytest.raises(TypeError, match="ratio"):
        structured(model, X, ratio="half")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="importance"):
        structured(model, X, ratio=0.5, importance="magic")
    with pytest.raises(ValueError, match="needs data"):
        structured(model, X, ratio=0.5, importance="taylor")
    with pytest.raises(TypeError, match="example_inputs"):
        structured(model, [], ratio=0.5)
    with pytest.raises(ValueError, match="fails on example_inputs"):
        structured(model, torch.randn(2, 5), ratio=0.5)
    with pytest.raises(TypeError, match="Module"):
        structured("model", X, ratio=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="matches no module"):
        structured(model, X, ratio=0.5, protect=("nope",))
    with pytest.raises(ValueError, match="round_to"):
        structured(model, X, ratio=0.5, round_to=0)
    with pytest.raises(ValueError, match="per_layer_limits"):
        structured(model, X, ratio=0.5, per_layer_limits={"net.1": 1.0})


def test_ratio_that_empties_a_layer_is_an_error() -> None:
    model = MLP((64, 2, 100, 10))
    with torch.no_grad():  # a dead layer: both neurons of net.1 have no weights at all
        model.net[1].weight.zero_()
        model.net[1].bias.zero_()
        model.net[3].weight.zero_()
    with pytest.raises(ValueError, match=r"every unit of 'net\.1'"):
        structured(model, X, ratio=0.9, global_ratio=True)


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x.flatten(1))
        if h.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            h = h.relu()
        return self.fc2(h)


class OpaqueUse(nn.Module):
    """A hidden layer's channels feed a matmul with a constant matrix: must be kept."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.register_buffer("mix", torch.randn(32, 32))
        self.fc2 = nn.Linear(32, 16)
        self.fc3 = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.matmul(self.fc1(x.flatten(1)), self.mix)
        return self.fc3(torch.relu(self.fc2(h)))


def test_untraceable_and_unknown_patterns_are_safe() -> None:
    with pytest.raises(ValueError, match=r"could not be exported.*torch.export"):
        structured(Untraceable(), X, ratio=0.5)
    model = OpaqueUse().eval()
    pruned, report = structured(model, X, ratio=0.5)
    assert pruned.fc1.out_features == 32 and pruned.fc2.out_features == 8
    assert "matmul" in report.kept["fc1"]


def test_recurrent_hidden_state_use_keeps_units() -> None:
    class LastHidden(Recurrent):
        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            x = torch.tanh(self.proj(self.emb(tokens)))
            x, _ = self.lstm(x)
            _, h = self.gru(x)
            return self.head(h[-1])

    model = LastHidden()
    pruned, report = structured(model, torch.randint(0, 30, (2, 5)), ratio=0.5)
    assert pruned.gru.hidden_size == 18  # h_n is used: the GRU's units are kept
    assert pruned.lstm.hidden_size == 8  # 10, rounded to a multiple of 8 (CPU kernels)
    assert "final hidden state" in report.kept["gru"]


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc0 = nn.Linear(64, 32)
        self.fc1 = nn.Linear(32, 16)
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 16)
        self.b.weight = self.a.weight  # tied
        self.out = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(torch.relu(self.fc0(x.flatten(1)))))
        return self.out(torch.relu(self.b(torch.relu(self.a(h)))))


def test_tied_weights_stay_tied() -> None:
    pruned, report = structured(Tied(), X, ratio=0.5)
    assert pruned.fc0.out_features == 16
    assert pruned.a.weight is pruned.b.weight and pruned.a.weight.shape == (16, 16)
    assert "tied" in report.kept["a"]


class Patterns(nn.Module):
    """Concatenation with the input, a literal-size view, a split and a channel slice."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(9, 8, 3, padding=1)  # reads cat([input, c1])
        self.c3 = nn.Conv2d(8, 6, 1)  # its output is viewed with literal sizes
        self.c4 = nn.Conv2d(8, 8, 1)  # its output is split in two
        self.c5 = nn.Conv2d(8, 8, 1)  # its output is sliced along the channels
        self.fc = nn.Linear(6 * 64 + 4 * 64 + 4 * 64 + 2 * 64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c2(torch.cat([x, torch.relu(self.c1(x))], dim=1)))
        a = self.c3(h).view(x.shape[0], 384)
        b, c = torch.split(self.c4(h), [4, 4], dim=1)
        d = self.c5(h)[:, :2]
        return self.fc(torch.cat([a, b.flatten(1), c.flatten(1), d.flatten(1)], dim=1))


def test_fixed_patterns_keep_their_channels_and_the_rest_is_pruned() -> None:
    torch.manual_seed(0)
    model = Patterns().eval()
    pruned, report = structured(model, X, ratio=0.5)
    assert pruned.c1.out_channels == 4 and pruned.c2.in_channels == 5  # the input's 1 kept
    assert pruned.c2.out_channels == 4  # c2's channels feed the kept layers' inputs: pruned
    for name in ("c3", "c4", "c5"):
        assert getattr(pruned, name).out_channels == getattr(model, name).out_channels
        assert name in report.kept
    assert pruned(X).shape == (4, 10)


@pytest.mark.parametrize("which", ["recurrent", "encoder"])
def test_pruned_models_fine_tune(which: str) -> None:
    from .models import Encoder

    torch.manual_seed(0)
    model = Recurrent() if which == "recurrent" else Encoder()
    tokens = torch.randint(0, 30, (8, 6))
    pruned, _ = structured(model, tokens, ratio=0.5)
    n_out = pruned(tokens).shape[-1]
    data = [(tokens, torch.randint(0, n_out, (8,))) for _ in range(3)]
    before = [p.detach().clone() for p in pruned.parameters()]
    result = fit(pruned, data, lr=1e-2, epochs=1)
    assert len(result.steps) == 3
    changed = [not torch.equal(a, b) for a, b in zip(before, pruned.parameters(), strict=True)]
    assert sum(changed) >= len(changed) - 2  # everything trains (except unused embedding rows)


def test_taylor_removes_units_that_do_not_affect_the_loss() -> None:
    torch.manual_seed(0)
    model = MLP((64, 8, 3))
    with torch.no_grad():
        model.net[3].weight[:, [1, 4]] = 0.0  # units 1 and 4 are read by nothing
        model.net[1].weight[[1, 4]] *= 10.0  # ...though their own weights are the largest
    data = [(torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))) for _ in range(3)]
    pruned, _ = structured(model, X, ratio=0.25, importance="taylor", data=data)
    kept = [
        i
        for i in range(8)
        if any(torch.equal(model.net[1].weight[i], r) for r in pruned.net[1].weight)
    ]
    assert kept == [0, 2, 3, 5, 6, 7]
    l2, _ = structured(model, X, ratio=0.25, importance="l2")
    assert l2.net[1].out_features == 6  # L2 ranks by weights: it keeps the large, unread units
    assert any(torch.equal(model.net[1].weight[1], r) for r in l2.net[1].weight)


class _NarrowTogether(nn.Module):
    """Two branches whose widths the code checks only in sum: either may shrink, not both."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 12), nn.Linear(4, 12)
        self.out1, self.out2 = nn.Linear(12, 2), nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1, h2 = torch.relu(self.fc1(x)), torch.relu(self.fc2(x))
        if h1.shape[-1] + h2.shape[-1] <= 16:
            raise RuntimeError("the branches are too narrow together")
        return self.out1(h1) + self.out2(h2)


def test_groups_that_fail_only_together_are_kept_one_by_one_not_a_crash() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 4)
    pruned, report = structured(_NarrowTogether(), x, ratio=0.5)
    assert pruned(x).shape == (3, 2)
    assert sorted([pruned.fc1.out_features, pruned.fc2.out_features]) == [6, 12]
    narrow = "fc1" if pruned.fc1.out_features == 12 else "fc2"
    assert "too narrow together" in report.kept[narrow]
