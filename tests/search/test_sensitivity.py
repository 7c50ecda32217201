"""Sensitivity scans: each point equals a direct prune-and-measure; suggestions as computed."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from secateurs import prune
from secateurs.measure import accuracy
from secateurs.search.sensitivity import SensitivityResult, sensitivity_scan
from secateurs.train import fit
from secateurs.zoo import MLP, digits


def _hand_made() -> SensitivityResult:
    r = SensitivityResult(kind="sparsity", grid=[0.2, 0.5, 0.8], baseline=0.9)
    r.layers = ["a", "b"]
    r.sizes = {"a": 100, "b": 300}
    r.metric = {"a": [0.9, 0.89, 0.7], "b": [0.9, 0.9, 0.88]}  # drops a: 0, .01, .2; b: 0, 0, .02
    r.achieved = {"a": [0.2, 0.5, 0.8], "b": [0.2, 0.5, 0.8]}
    return r


def test_suggest_by_tolerance_takes_the_largest_sparsity_within_it():
    r = _hand_made()
    assert r.suggest(tolerance=0.01) == {"a": 0.5, "b": 0.5}
    assert r.suggest(tolerance=0.02) == {"a": 0.5, "b": 0.8}
    assert r.suggest(tolerance=0.0) == {"a": 0.2, "b": 0.5}


def test_suggest_by_target_equalises_the_drop():
    r = _hand_made()
    # a(d) = 0.2 + 0.3 d / 0.01, b(d) = 0.5 + 0.3 d / 0.02; 100 a + 300 b = 200 at d = 0.004
    got = r.suggest(target=0.5)
    assert got == pytest.approx({"a": 0.32, "b": 0.56}, abs=1e-6)
    assert r.overall(got) == pytest.approx(0.5, abs=1e-6)


def test_suggest_by_tolerance_and_target_scales_the_allocation():
    got = _hand_made().suggest(target=0.6, tolerance=0.01)
    assert got == pytest.approx({"a": 0.6, "b": 0.6}, abs=1e-6)


def test_unreachable_target_is_an_error():
    with pytest.raises(ValueError, match="out of reach"):
        _hand_made().suggest(target=0.85)
    with pytest.raises(ValueError, match=r"target= .* tolerance="):
        _hand_made().suggest()


def test_rows_and_csv_are_plot_ready(tmp_path):
    r = _hand_made()
    rows = r.rows()
    assert len(rows) == 6 and rows[2] == {
        "layer": "a",
        "params": 100,
        "sparsity": 0.8,
        "achieved_sparsity": 0.8,
        "accuracy": 0.7,
        "drop": pytest.approx(0.2),
    }
    text = r.to_csv(tmp_path / "scan.csv")
    assert (tmp_path / "scan.csv").read_text() == text
    assert text.splitlines()[0] == "layer,params,sparsity,achieved_sparsity,accuracy,drop"
    assert r.as_dict()["layers"][1]["name"] == "b"


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    split = digits()
    model = MLP((64, 32, 32, 10))
    train, val, _ = split.loaders(64, seed=0)
    fit(model, train, lr=3e-3, epochs=3, max_steps=60)
    return model, val


def _prune_smallest(model, name, k):
    """Independent reference: zero the k smallest |w| of one tensor by sorting."""
    m = copy.deepcopy(model)
    w = dict(m.named_parameters())[name]
    with torch.no_grad():
        idx = w.abs().flatten().argsort()[:k]
        w.view(-1)[idx] = 0
    return m


def test_scan_points_equal_direct_pruning(trained):
    model, val = trained
    before = copy.deepcopy(model.state_dict())
    r = sensitivity_scan(model, val, sparsities=[0.25, 0.5, 0.9])
    assert r.layers == ["net.1.weight", "net.3.weight"]  # the classifier stays dense by default
    assert r.baseline == accuracy(model, val)
    for name in r.layers:
        n = r.sizes[name]
        for i, s in enumerate(r.grid):
            assert r.achieved[name][i] == pytest.approx(s, abs=1.0 / n)
            k = round(r.achieved[name][i] * n)
            assert r.metric[name][i] == accuracy(_prune_smallest(model, name, k), val)
    alloc = r.suggest(target=0.5)  # per-layer sparsities that prune.unstructured applies
    pruned = copy.deepcopy(model)
    prune.unstructured_(pruned, scope=alloc)
    for name, s in alloc.items():
        w = dict(pruned.named_modules())[name.rsplit(".", 1)[0]].weight
        assert float((w == 0).float().mean()) == pytest.approx(s, abs=1.0 / w.numel())
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_threshold_scan_reports_what_each_threshold_removed(trained):
    model, val = trained
    x, y = val.dataset.tensors
    r = sensitivity_scan(model, (x, y), thresholds=[0.01, 0.05], layers=["net.5.weight"])
    w = model.net[5].weight.detach()
    assert r.kind == "threshold" and r.layers == ["net.5.weight"]
    for i, t in enumerate([0.01, 0.05]):
        assert r.achieved["net.5.weight"][i] == pytest.approx(float((w.abs() < t).float().mean()))


def test_scan_rejects_bad_grids(trained):
    model, val = trained
    with pytest.raises(ValueError, match=r"sparsities must lie in \[0, 1\)"):
        sensitivity_scan(model, val, sparsities=[0.5, 1.0])
    with pytest.raises(ValueError, match="empty"):
        sensitivity_scan(model, val, sparsities=[])
    with pytest.raises(TypeError, match="DataLoader"):
        sensitivity_scan(model, 3)
    assert isinstance(val, DataLoader) and isinstance(val.dataset, TensorDataset)
