"""Selection equals torch.nn.utils.prune on tie-free tensors and is exact with ties."""

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from secateurs import prune
from secateurs.prune import select
from secateurs.prune.mask import get_mask


def _masks(model):
    return {
        n: get_mask(m, "weight").mask for n, m in model.named_modules() if get_mask(m, "weight")
    }


def _model(sizes, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(*[nn.Linear(a, b) for a, b in itertools.pairwise(sizes)])


@pytest.mark.parametrize("amount", [0.3, 0.7, 0.95])
def test_layer_scope_equals_l1_unstructured(amount):
    ours, ref = _model([20, 30, 40, 5]), _model([20, 30, 40, 5])
    prune.unstructured_(ours, sparsity=amount, scope="layer", exclude=[])
    for layer in ref:
        tprune.l1_unstructured(layer, "weight", amount=amount)
    for name, mask in _masks(ours).items():
        assert torch.equal(mask, ref.get_submodule(name).weight_mask.bool()), name


@pytest.mark.parametrize("sizes", [[20, 30, 40, 5], [300, 400, 500, 8]])  # small and sampled
def test_global_scope_equals_global_unstructured(sizes):
    ours, ref = _model(sizes, 1), _model(sizes, 1)
    assert sum(p.numel() for p in ref.parameters()) > select.SAMPLE or sizes[0] == 20
    prune.unstructured_(ours, sparsity=0.8, exclude=[])
    tprune.global_unstructured(
        [(m, "weight") for m in ref], pruning_method=tprune.L1Unstructured, amount=0.8
    )
    for name, mask in _masks(ours).items():
        assert torch.equal(mask, ref.get_submodule(name).weight_mask.bool()), name


def test_conv_and_linear_global_equals_torch():
    torch.manual_seed(3)
    make = lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8, 4))  # noqa: E731
    ours, ref = make(), make()
    ref.load_state_dict(ours.state_dict())
    prune.unstructured_(ours, sparsity=0.6, exclude=[])
    tprune.global_unstructured(
        [(ref[0], "weight"), (ref[2], "weight")], pruning_method=tprune.L1Unstructured, amount=0.6
    )
    assert torch.equal(get_mask(ours[0], "weight").mask, ref[0].weight_mask.bool())
    assert torch.equal(get_mask(ours[2], "weight").mask, ref[2].weight_mask.bool())


@pytest.mark.parametrize("n", [1000, 400_000])
def test_ties_removed_in_flat_order_and_count_exact(n):
    # Values with many ties: k-th value is shared; the first ones in flat order go.
    scores = torch.arange(n) % 7
    a, b = scores[: n // 2].float(), scores[n // 2 :].float()
    k = n // 2 + 3
    masks = select.select_smallest([lambda _: a, lambda _: b], [a.numel(), b.numel()], k)
    removed = torch.cat([~m for m in masks])
    assert int(removed.sum()) == k
    flat = torch.cat([a, b])
    t = torch.sort(flat).values[k - 1]
    assert bool((flat[removed] <= t).all()) and bool((flat[~removed] >= t).all())
    tied = (flat == t).nonzero().squeeze(1)
    n_tied_removed = int(removed[tied].sum())
    assert bool(removed[tied[:n_tied_removed]].all()) and not bool(
        removed[tied[n_tied_removed:]].any()
    )


def test_kth_smallest_matches_kthvalue_on_large_input():
    torch.manual_seed(0)
    parts = [torch.randn(300, 700), torch.randn(1000), torch.rand(500, 500) * 1e-3]
    fns = [lambda _, p=p: p.abs() for p in parts]
    flat = torch.cat([p.abs().reshape(-1) for p in parts])
    for k in (1, 17, flat.numel() // 2, flat.numel() - 5, flat.numel()):
        t, below = select.kth_smallest(
            fns,
            [p.numel() for p in parts],
            k,
            [lambda i, p=p: p.reshape(-1)[i].abs() for p in parts],
        )
        assert t == float(torch.kthvalue(flat, k).values)
        assert below == int((flat < t).sum())


def test_nan_scores_are_refused():
    x = torch.randn(600_000)
    x[::3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        select.select_smallest([lambda _: x], [x.numel()], 100_000)


def test_bracket_widens_when_the_sample_misleads(monkeypatch):
    torch.manual_seed(0)
    x = torch.randn(300_000)
    # a sample that puts the bracket far from the true k-th value: the pass must widen it
    monkeypatch.setattr(select, "_sample", lambda *a: torch.full((1000,), 5.0))
    k = 123_456
    (keep,) = select.select_smallest([lambda _: x], [x.numel()], k)
    assert int((~keep).sum()) == k
    t = torch.kthvalue(x, k).values
    assert torch.equal(~keep, x <= t)
