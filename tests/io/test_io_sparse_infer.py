"""CSR inference layers compute the same function and are chosen by measurement."""

import torch
from torch import nn

from secateurs import io, prune


def test_sparse_linear_matches_dense():
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    prune.unstructured_(lin, sparsity=0.9, exclude=[])
    prune.make_permanent(lin)
    sparse = io.SparseLinear(lin)
    x = torch.randn(3, 5, 64)
    assert torch.allclose(sparse(x), lin(x), atol=1e-5)


def test_conversion_keeps_outputs_and_never_slows_down():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 16))
    prune.unstructured_(model, sparsity=0.95)
    x = torch.randn(32, 1024)
    converted, report = io.to_sparse_inference(model, x, runs=5)
    assert converted is not model and isinstance(model[0].weight, torch.Tensor)
    with torch.no_grad():
        assert torch.allclose(converted(x), model(x), atol=1e-4)
    names = {c.name: c for c in report.layers}
    assert names["2"].sparse_s is None  # dense layer: not a candidate
    assert names["2"].converted is False
    assert report.converted_s <= report.dense_s
    assert isinstance(converted[0], io.SparseLinear) == names["0"].converted
    assert report.as_dict()["layers"][0]["name"] == "0"


def test_converted_model_is_not_saved_by_mistake(tmp_path):
    import pytest

    lin = nn.Linear(64, 64)
    prune.unstructured_(lin, sparsity=0.9, exclude=[])
    model = nn.Sequential(io.SparseLinear(prune.make_permanent(lin)))
    with pytest.raises(ValueError, match="save the pruned model before"):
        io.save(model, tmp_path / "x.safetensors", arch="torch.nn:Sequential")
    assert not (tmp_path / "x.safetensors").exists()
