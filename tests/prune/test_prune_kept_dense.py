"""Reports say which layer weights stayed dense and why, and when a threshold pruned nothing."""

import pytest
import torch
from torch import nn

from secateurs.prune import nm_, unstructured_


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))


def test_default_exclusions_are_listed_with_their_reason():
    report = unstructured_(_model(), sparsity=0.5)
    assert [layer.name for layer in report.layers] == ["1.weight"]
    assert set(report.kept) == {"0.weight", "3.weight"}
    assert report.kept["0.weight"].startswith("an embedding, kept dense by default")
    assert report.kept["3.weight"].startswith("the last Linear (the outputs)")
    table = report.to_table()
    assert "left dense: 3.weight: the last Linear" in table
    assert "left dense: 0.weight: an embedding" in table


def test_explicit_exclude_and_include_are_the_reasons():
    report = unstructured_(_model(), sparsity=0.5, exclude=["1"])
    assert report.kept == {"1.weight": "matches exclude '1'"}
    report = unstructured_(_model(), sparsity=0.5, include=[nn.Embedding], exclude=[])
    assert report.kept == {
        "1.weight": "not matched by include",
        "3.weight": "not matched by include",
    }
    report = unstructured_(_model(), sparsity=0.5, exclude=[])
    assert report.kept == {}


def test_nm_lists_what_it_left_dense():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4))
    assert set(nm_(model, 2, 4).kept) == {"1.weight"}


@pytest.mark.parametrize(("threshold", "pruned"), [(0.0, False), (1e-9, False), (0.2, True)])
def test_a_threshold_that_prunes_nothing_says_so(threshold, pruned):
    model = _model()
    report = unstructured_(model, threshold=threshold)
    assert (report.nonzeros < report.params) == pruned
    said = [n for n in report.notes if n.startswith("nothing was pruned")]
    assert bool(said) != pruned
    if said:
        assert f"{threshold:g}" in said[0] and said[0] in report.to_table()
