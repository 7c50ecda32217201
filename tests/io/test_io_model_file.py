"""save/load: lossless, compact at 90% sparsity, safe against bad files, atomic."""

import hashlib
import json
import os

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from secateurs import io, prune
from secateurs.zoo.models import MLP


def _dense_size(model, path):
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return os.path.getsize(path)


def test_round_trip_is_lossless_and_plain(tmp_path):
    torch.manual_seed(0)
    m = MLP((64, 128, 64, 10))
    prune.unstructured_(m, sparsity=0.8)
    expected = io.effective_state_dict(m)
    path = io.save(m, tmp_path / "m.safetensors", metadata={"note": "hi"})
    back = io.load(path, trust_arch=True)
    assert type(back) is MLP and type(back.net[1]) is nn.Linear
    sd = back.state_dict()
    assert sd.keys() == expected.keys()
    for k in sd:
        assert torch.equal(sd[k], expected[k]), k
    header = io.read_header(path)
    assert header["metadata"] == {"note": "hi"}
    assert header["tensors"]["net.1.weight"]["packing"] == "bitmask"
    assert header["tensors"]["net.1.bias"]["packing"] == "dense"
    x = torch.randn(3, 64)
    assert torch.equal(back(x), m(x))


def test_file_is_at_most_015x_dense_at_90_percent(tmp_path):
    torch.manual_seed(0)
    m = MLP((256, 512, 512, 10))
    dense = _dense_size(m, tmp_path / "dense.safetensors")
    report = prune.unstructured_(m, sparsity=0.9, exclude=[])
    assert report.sparsity == pytest.approx(0.9, abs=1e-5)
    size = os.path.getsize(io.save(m, tmp_path / "sparse.safetensors"))
    assert size / dense <= 0.15


def test_factory_with_kwargs_and_resave(tmp_path):
    m = MLP((8, 6, 3))
    p = io.save(
        m,
        tmp_path / "a.safetensors",
        arch="secateurs.zoo.models:mlp",
        arch_kwargs={"sizes": [8, 6, 3]},
    )
    back = io.load(p, arch="secateurs.zoo.models:mlp")  # called with the recorded kwargs
    assert back.net[1].in_features == 8
    io.save(back, tmp_path / "b.safetensors")  # reuses the recorded factory
    assert io.read_header(tmp_path / "b.safetensors")["arch"]["kwargs"] == {"sizes": [8, 6, 3]}


class TiedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(12, 8)
        self.head = nn.Linear(8, 12, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x):
        return self.head(self.emb(x))


def test_tied_weights_stored_once(tmp_path, monkeypatch):
    import sys
    import types

    mod = types.ModuleType("tied_models_for_test")
    mod.TiedNet = TiedNet
    TiedNet.__module__ = "tied_models_for_test"
    monkeypatch.setitem(sys.modules, "tied_models_for_test", mod)
    m = TiedNet()
    prune.unstructured_(m, sparsity=0.5, exclude=[])
    p = io.save(m, tmp_path / "t.safetensors")
    header = io.read_header(p)
    assert header["aliases"] in ({"head.weight": "emb.weight"}, {"emb.weight": "head.weight"})
    back = io.load(p, trust_arch=True)
    assert back.emb.weight is back.head.weight
    assert torch.equal(back.emb.weight, m.emb.weight)


def test_bad_files_give_clear_errors(tmp_path):
    m = MLP((8, 6, 3))
    prune.unstructured_(m, sparsity=0.5)
    good = io.save(
        m,
        tmp_path / "good.safetensors",
        arch="secateurs.zoo.models:mlp",
        arch_kwargs={"sizes": [8, 6, 3]},
    )
    loaded = io.load(good, arch="secateurs.zoo.models:mlp")
    torch.testing.assert_close(loaded(torch.ones(2, 8)), m(torch.ones(2, 8)))
    data = good.read_bytes()
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "missing.safetensors")
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors"):
        io.load(tmp_path / "trunc.safetensors")
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupt"):
        io.load(tmp_path / "flip.safetensors", arch="secateurs.zoo.models:mlp")
    (tmp_path / "junk.safetensors").write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a readable"):
        io.load(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="without a secateurs header"):
        io.load(tmp_path / "plain.safetensors")
    header = io.read_header(good)
    header["format"] = "secateurs.model/99"
    tensors = {}
    from safetensors import safe_open

    with safe_open(str(good), "pt") as f:
        for k in f.keys():  # noqa: SIM118 (safe_open is not iterable)
            tensors[k] = f.get_tensor(k)
    text = json.dumps(header)
    digest = hashlib.sha256(text.encode()).hexdigest()
    meta = {"secateurs": text, "secateurs.sha256": digest}
    save_file(tensors, str(tmp_path / "future.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="this version reads"):
        io.load(tmp_path / "future.safetensors")


def test_failed_save_leaves_no_file(tmp_path):
    m = MLP((8, 6, 3))
    with pytest.raises(TypeError, match="JSON"):
        io.save(m, tmp_path / "x.safetensors", metadata={"bad": object()})
    with pytest.raises(ValueError, match="arch"):
        io.save(m, tmp_path / "y.safetensors", arch="no colon")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_a_file_that_load_could_not_rebuild(tmp_path):
    # MLP() builds 64-300-100-10: without arch/arch_kwargs this model could not be rebuilt.
    m = MLP((8, 6, 3))
    with pytest.raises(ValueError, match="arch="):
        io.save(m, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []  # nothing written
