import pytest
import torch
from grad_helpers import set_grads, small_model
from torch import nn

from secateurs.clip import AGC, agc, final_classifier


def reference(w: torch.Tensor, g: torch.Tensor, clip: float, eps: float) -> torch.Tensor:
    """AGC in float64, written from the paper: one unit per output row / filter."""
    w, g = w.double(), g.double()
    if w.ndim <= 1:
        wn, gn = w.norm(), g.norm()
    else:
        dims = tuple(range(1, w.ndim))
        vn = torch.linalg.vector_norm
        wn, gn = vn(w, dim=dims, keepdim=True), vn(g, dim=dims, keepdim=True)
    coef = (clip * wn.clamp(min=eps) / gn.clamp(min=1e-6)).clamp(max=1.0)
    return g * coef


@pytest.mark.parametrize("clip", [0.01, 0.1, 10.0])
def test_matches_float64_reference(clip):
    m = small_model()
    g0 = set_grads(m.parameters(), seed=1)
    stats = AGC(clip, skip_classifier=False)(m)
    changed = False
    for p, g in zip(m.parameters(), g0, strict=True):
        expected = reference(p.detach(), g, clip, 1e-3)
        torch.testing.assert_close(p.grad.double(), expected, rtol=1e-5, atol=1e-8)
        changed = changed or not torch.equal(expected, g.double())
    assert stats.clipped == changed


def test_units_are_rows_and_filters():
    lin = nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 10.0, 0, 0], [0, 0, 100.0, 0]]))
    lin.weight.grad = torch.ones(3, 4)  # each row norm 2
    lin.bias.grad = torch.zeros(3)
    AGC(0.1, skip_classifier=False)([lin.weight, lin.bias])
    # row limits 0.1, 1.0, 10.0 -> rows scaled to norms 0.1, 1.0, 2 (unclipped)
    torch.testing.assert_close(lin.weight.grad.norm(dim=1), torch.tensor([0.1, 1.0, 2.0]))


def test_eps_protects_zero_weights():
    w = torch.zeros(2, 3, requires_grad=True)
    w.grad = torch.ones(2, 3)
    AGC(0.5, eps=1e-2)([w])
    torch.testing.assert_close(w.grad.norm(dim=1), torch.full((2,), 0.5 * 1e-2))


def test_final_classifier_excluded_by_default():
    m = small_model()
    assert final_classifier(m) == ["5.weight", "5.bias"]
    g0 = set_grads(m.parameters(), seed=2, scale=100.0)
    AGC(0.01)(m)
    named = dict(m.named_parameters())
    assert torch.equal(named["5.weight"].grad, g0[-2])
    assert torch.equal(named["5.bias"].grad, g0[-1])
    assert not torch.equal(named["3.weight"].grad, g0[4])


def test_no_classifier_when_last_module_is_not_linear():
    m = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    assert final_classifier(m) == []


def test_exclude_patterns():
    m = small_model()
    g0 = set_grads(m.parameters(), seed=3, scale=100.0)
    agc(m, 0.01, exclude=["0.*", "*.bias"], skip_classifier=False)
    for (name, p), g in zip(m.named_parameters(), g0, strict=True):
        untouched = name.startswith("0.") or name.endswith(".bias")
        assert torch.equal(p.grad, g) == untouched, name


def test_bad_exclude():
    with pytest.raises(TypeError, match="exclude"):
        AGC(exclude=[3])
