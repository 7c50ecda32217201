"""load_model_any: every MODEL form, and refusals that say what to do."""

import pytest
import torch
from safetensors.torch import save_file

from secateurs import io, prune
from secateurs.zoo.models import MLP

ARCH = "secateurs.zoo.models:mlp"


def _same(a, b):
    x = torch.randn(4, 64)
    return torch.equal(a(x), b(x))


def test_state_dict_pt_and_nested_and_safetensors(tmp_path):
    m = MLP()
    torch.save(m.state_dict(), tmp_path / "sd.pt")
    torch.save({"epoch": 3, "state_dict": m.state_dict()}, tmp_path / "ckpt.pth")
    save_file(m.state_dict(), str(tmp_path / "sd.safetensors"))
    for name in ("sd.pt", "ckpt.pth", "sd.safetensors"):
        loaded = io.load_model_any(tmp_path / name, arch=ARCH)
        assert _same(m, loaded), name
        assert loaded.secateurs_arch["factory"] == ARCH
    with pytest.raises(ValueError, match="--arch"):
        io.load_model_any(tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="--arch"):
        io.load_model_any(tmp_path / "sd.safetensors")


def test_secateurs_file_of_a_user_class_needs_the_callers_word(tmp_path):
    m = MLP()
    prune.unstructured_(m, sparsity=0.5)
    p = io.save(m, tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match=r"secateurs\.zoo\.models:MLP.*--arch.*--trust-arch"):
        io.load_model_any(p)
    assert _same(m, io.load_model_any(p, trust_arch=True))
    assert _same(m, io.load_model_any(p, arch="secateurs.zoo.models:MLP"))


def test_pickled_module_needs_trust(tmp_path):
    m = MLP()
    torch.save(m, tmp_path / "whole.pt")
    with pytest.raises(ValueError, match="--trust-pickle"):
        io.load_model_any(tmp_path / "whole.pt")
    assert _same(m, io.load_model_any(tmp_path / "whole.pt", trust_pickle=True))


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.load_model_any(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable PyTorch file"):
        io.load_model_any(tmp_path / "junk.pt", arch=ARCH)
    torch.save(MLP().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="cannot import"):
        io.load_model_any(tmp_path / "sd.pt", arch="no_such_pkg.models:mlp")
    with pytest.raises(ValueError, match="has no"):
        io.load_model_any(tmp_path / "sd.pt", arch="secateurs.zoo.models:nothing")
    with pytest.raises(ValueError, match="does not fit"):
        io.load_model_any(tmp_path / "sd.pt", arch="secateurs.zoo.models:rescnn")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match=r"config\.json"):
        io.load_model_any(tmp_path / "folder")
    torch.save({"a": 1}, tmp_path / "notsd.pt")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        io.load_model_any(tmp_path / "notsd.pt", arch=ARCH)


def test_hugging_face_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    model.save_pretrained(tmp_path / "bert")
    loaded = io.load_model_any(tmp_path / "bert").eval()
    ids = torch.randint(0, 50, (1, 6))
    with torch.no_grad():
        assert torch.allclose(model(ids).last_hidden_state, loaded(ids).last_hidden_state)
