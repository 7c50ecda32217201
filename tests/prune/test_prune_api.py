"""unstructured_(): thresholds, composition, scopes, criteria, input errors, reports."""

import copy

import pytest
import torch
from torch import nn

from secateurs import prune
from secateurs.prune.mask import get_mask
from secateurs.zoo.models import MLP


def _mlp(seed=0):
    torch.manual_seed(seed)
    return MLP((16, 32, 24, 4))


def test_threshold_rule_is_strictly_less_than():
    m = _mlp()
    w = m.net[1].weight.detach().clone()
    t = float(w.abs().median())
    report = prune.unstructured_(m, threshold=t, exclude=[])
    assert torch.equal(m.net[1].weight != 0, w.abs() >= t)
    assert report["net.1.weight"].nonzeros == int((w.abs() >= t).sum())


def test_threshold_that_empties_a_layer_needs_force():
    m = _mlp()
    with pytest.raises(ValueError, match="every weight of"):
        prune.unstructured_(m, threshold=10.0)
    assert get_mask(m.net[1], "weight") is None  # nothing half-applied
    r = prune.unstructured_(m, threshold=10.0, force=True)
    assert r.nonzeros == 0


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_sparsity(bad):
    with pytest.raises(ValueError, match="sparsity"):
        prune.unstructured_(_mlp(), sparsity=bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="threshold"):
        prune.unstructured_(_mlp(), threshold=-1e-3)
    with pytest.raises(ValueError, match="either"):
        prune.unstructured_(_mlp(), threshold=0.1, sparsity=0.5)
    with pytest.raises(ValueError, match=r"sparsity= .* or threshold="):
        prune.unstructured_(_mlp())
    with pytest.raises(ValueError, match="scope"):
        prune.unstructured_(_mlp(), sparsity=0.5, scope="model")
    with pytest.raises(ValueError, match="criterion"):
        prune.unstructured_(_mlp(), sparsity=0.5, criterion="l3")
    with pytest.raises(TypeError):
        prune.unstructured_("model", sparsity=0.5)


def test_repeated_calls_compose():
    m = _mlp()
    prune.unstructured_(m, sparsity=0.5, exclude=[])
    first = {
        n: get_mask(x, "weight").mask.clone() for n, x in m.named_modules() if get_mask(x, "weight")
    }
    r = prune.unstructured_(m, sparsity=0.8, exclude=[])
    assert r.params - r.nonzeros == round(0.8 * r.params)  # exact count, of the whole
    for n, old in first.items():
        new = get_mask(m.get_submodule(n), "weight").mask
        assert bool((~old <= ~new).all())  # pruned stays pruned
    r = prune.unstructured_(m, sparsity=0.3, exclude=[])  # lower target: nothing regrows
    assert r.params - r.nonzeros == round(0.8 * r.params)


def test_per_layer_dict_scope():
    m = _mlp()
    r = prune.unstructured_(m, scope={"net.1*": 0.9, "net.3": 0.5}, exclude=[])
    assert r["net.1.weight"].sparsity == pytest.approx(0.9, abs=1e-3)
    assert r["net.3.weight"].sparsity == pytest.approx(0.5, abs=1e-3)
    assert r["net.5.weight"].sparsity == 0.0
    with pytest.raises(ValueError, match="scope keys matched no"):
        prune.unstructured_(_mlp(), scope={"net.7": 0.5})


def test_layer_scope_gives_each_layer_the_sparsity():
    r = prune.unstructured_(_mlp(), sparsity=0.75, scope="layer", exclude=[])
    for layer in r.layers:
        assert layer.sparsity == pytest.approx(0.75, abs=1 / layer.params)


def _data(n=4):
    torch.manual_seed(1)
    return [(torch.randn(8, 16), torch.randint(0, 4, (8,))) for _ in range(n)]


def test_taylor_and_snip_scores_match_reference():
    m = _mlp()
    data = _data(3)
    crit = prune.Taylor(batches=3)
    targets = prune.find_targets(m, exclude=[])
    crit.prepare(m, targets, data=data)
    ref = copy.deepcopy(m)
    ref.zero_grad()
    for x, y in data:
        nn.functional.cross_entropy(ref(x), y).backward()
    expected = (ref.net[1].weight * ref.net[1].weight.grad).abs()
    assert torch.allclose(crit.score(targets[0]), expected, atol=1e-7)
    assert m.net[1].weight.grad is None  # the model's own grads are untouched

    snip = prune.SNIP(batches=2)
    snip.prepare(m, targets, data=data)
    acc = 0
    for x, y in data[:2]:
        ref.zero_grad()
        nn.functional.cross_entropy(ref(x), y).backward()
        acc = acc + (ref.net[1].weight * ref.net[1].weight.grad).abs()
    assert torch.allclose(snip.score(targets[0]), acc, atol=1e-7)
    with pytest.raises(ValueError, match="needs data"):
        prune.unstructured_(_mlp(), sparsity=0.5, criterion="snip")
    with pytest.raises(ValueError, match="needs gradients"):
        prune.unstructured_(_mlp(), sparsity=0.5, criterion="taylor")
    r = prune.unstructured_(_mlp(), sparsity=0.5, criterion="taylor", data=data)
    assert r.sparsity == pytest.approx(0.5, abs=1e-4)


def test_random_is_reproducible_and_movement_needs_training():
    a, b = _mlp(), _mlp()
    prune.unstructured_(a, sparsity=0.5, criterion=prune.Random(seed=3))
    prune.unstructured_(b, sparsity=0.5, criterion=prune.Random(seed=3))
    assert torch.equal(a.net[1].weight, b.net[1].weight)
    with pytest.raises(ValueError, match="attach"):
        prune.unstructured_(_mlp(), sparsity=0.5, criterion="movement")
    m = _mlp()
    mv = prune.Movement().attach(m)
    for x, y in _data(2):
        nn.functional.cross_entropy(m(x), y).backward()
    t = prune.find_targets(m)[0]
    expected = -(m.net[1].weight.detach() * m.net[1].weight.grad)
    assert torch.allclose(mv.score(t), expected, atol=1e-6)
    mv.detach()


def test_report_dict_and_tables():
    r = prune.unstructured_(_mlp(), sparsity=0.5, scope="layer", exclude=[])
    d = r.as_dict()
    assert d["total"]["params"] == 16 * 32 + 32 * 24 + 24 * 4
    assert d["total"]["nonzeros"] == r.nonzeros
    assert d["layers"][0]["requested_sparsity"] == 0.5
    plain = r.to_table()
    assert "net.1.weight" in plain and "total" in plain and "50.00%" in plain
    assert "┃" in r.to_table(rich=True)
    full = prune.sparsity_report(_mlp())
    assert full.params == sum(p.numel() for p in _mlp().parameters())


def test_remove_masks_keeps_values_and_drops_parametrization():
    m = _mlp()
    prune.unstructured_(m, sparsity=0.5)
    w = m.net[1].weight.detach().clone()
    prune.remove_masks(m)
    assert type(m.net[1]) is nn.Linear and torch.equal(m.net[1].weight, w)
