"""Architecture descriptions: JSON-able, rebuild the same (or a shrunk) module tree."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from secateurs.io.arch import UntrustedArchitecture, describe, rebuild
from secateurs.zoo.models import MLP, ResCNN


def _roundtrip(model: nn.Module, trust: bool = False, **kw) -> nn.Module:
    """Describe, rebuild, compare; a model of a user class needs the caller's trust."""
    desc = json.loads(json.dumps(describe(model, **kw)))
    if trust:
        with pytest.raises(UntrustedArchitecture, match="--trust-arch"):
            rebuild(desc)
    rebuilt = rebuild(desc, trust_arch=trust)
    sd = model.state_dict()
    rebuilt_sd = rebuilt.state_dict()
    assert sd.keys() == rebuilt_sd.keys()
    for k, v in sd.items():
        assert rebuilt_sd[k].shape == v.shape, k
        assert rebuilt_sd[k].dtype == v.dtype, k
    rebuilt.load_state_dict(sd)
    return rebuilt


def test_zoo_models_default_factory_and_named_factory() -> None:
    torch.manual_seed(0)
    for model, kw in [
        (MLP(), {}),
        (ResCNN(), {}),
        (ResCNN(width=8), {"arch": "secateurs.zoo.models:rescnn", "arch_kwargs": {"width": 8}}),
    ]:
        model.eval()
        x = torch.randn(3, 1, 8, 8)
        rebuilt = _roundtrip(model, trust=True, **kw).eval()
        assert type(rebuilt) is type(model)
        torch.testing.assert_close(rebuilt(x), model(x))


def test_shrunk_layers_rebuild_smaller() -> None:
    model = ResCNN(width=8)
    # Shrink block1's inner channels by hand, as structured pruning does.
    model.block1.conv1 = nn.Conv2d(8, 5, 3, padding=1, bias=False)
    model.block1.bn1 = nn.BatchNorm2d(5)
    model.block1.conv2 = nn.Conv2d(5, 8, 3, padding=1, bias=False)
    model.fc = nn.Linear(16, 10, bias=False)
    model.block1.bn1.momentum = None
    model.eval()
    rebuilt = _roundtrip(model, trust=True).eval()
    assert rebuilt.block1.conv1.out_channels == 5
    assert rebuilt.block1.bn1.momentum is None
    assert rebuilt.fc.bias is None
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(rebuilt(x), model(x))


def test_sequential_children_built_from_description_and_dtype_kept() -> None:
    model = nn.Sequential(
        nn.Linear(4, 6), nn.GELU(approximate="tanh"), nn.LayerNorm(6), nn.Linear(6, 2)
    ).to(torch.float64)
    rebuilt = _roundtrip(model)
    assert rebuilt[1].approximate == "tanh"
    assert rebuilt[0].weight.dtype == torch.float64
    x = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(rebuilt(x), model(x))


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8, padding_idx=0)
        self.lstm = nn.LSTM(8, 12, num_layers=2, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(24, 6, batch_first=True)
        self.head = nn.Linear(6, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.emb(tokens))
        out, _ = self.gru(out)
        return self.head(out[:, -1])


def test_lstm_gru_embedding_shrunk() -> None:
    model = Recurrent()
    model.lstm = nn.LSTM(8, 7, num_layers=2, batch_first=True, bidirectional=True)
    model.gru = nn.GRU(14, 6, batch_first=True)
    model.eval()
    rebuilt = _roundtrip(model, trust=True).eval()
    assert rebuilt.lstm.hidden_size == 7 and rebuilt.lstm.bidirectional
    tokens = torch.randint(0, 20, (2, 5))
    torch.testing.assert_close(rebuilt(tokens), model(tokens))


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def test_multihead_attention_and_transformer_layer() -> None:
    model = Attention()
    model.layer.linear1 = nn.Linear(16, 20)
    model.layer.linear2 = nn.Linear(20, 16)
    model.layer.self_attn = nn.MultiheadAttention(16, 2, batch_first=True)
    model.eval()
    rebuilt = _roundtrip(model, trust=True).eval()
    assert rebuilt.layer.self_attn.num_heads == 2
    assert rebuilt.layer.linear1.out_features == 20
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(rebuilt(x), model(x))


def test_description_is_plain_json_and_names_factory() -> None:
    desc = describe(MLP((64, 10)))
    assert desc["factory"] == "secateurs.zoo.models:MLP"
    assert json.loads(json.dumps(desc)) == desc
    assert desc["modules"]["net.1"]["args"] == {"in_features": 64, "out_features": 10, "bias": True}


class NeedsArgs(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n, n)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="arch="):
        describe(NeedsArgs(3))
    with pytest.raises(TypeError, match=r"nn\.Module"):
        describe("model")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"package\.module:factory"):
        describe(MLP(), arch="no_colon")
    with pytest.raises(TypeError, match="JSON"):
        describe(MLP(), arch="secateurs.zoo.models:mlp", arch_kwargs={"sizes": object()})
    desc = describe(MLP((64, 10)))
    with pytest.raises(ValueError, match="format"):
        rebuild({"factory": "os:system"})
    bad = dict(desc, factory="secateurs.zoo.models:ResCNN")
    with pytest.raises(ValueError, match=r"different architecture|recorded"):
        rebuild(bad, trust_arch=True)
    # Even a trusted file may only name model classes and functions outside the stdlib.
    with pytest.raises(ValueError, match="standard library"):
        rebuild(dict(desc, factory="os:system", kwargs={"command": "true"}), trust_arch=True)
    with pytest.raises(ValueError, match="Python function"):
        rebuild(dict(desc, factory="torch:zeros"), trust_arch=True)
    with pytest.raises(ValueError, match="cannot import"):
        rebuild(dict(desc, factory="no_such_module_xyz:f"), trust_arch=True)
    evil = json.loads(json.dumps(desc))
    evil["modules"]["net.9"] = {"type": "os:system"}
    with pytest.raises(ValueError, match=r"torch\.nn"):
        rebuild(evil, trust_arch=True)


def test_hugging_face_model_rebuilds_from_config_with_smaller_layers() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=24,
        max_position_embeddings=16,
    )
    model = transformers.BertModel(config).eval()
    layer = model.encoder.layer[0]
    layer.intermediate.dense = nn.Linear(16, 10)
    layer.output.dense = nn.Linear(10, 16)
    rebuilt = _roundtrip(model).eval()
    assert type(rebuilt) is transformers.BertModel
    assert rebuilt.encoder.layer[0].intermediate.dense.out_features == 10
    ids = torch.randint(0, 50, (2, 6))
    torch.testing.assert_close(
        rebuilt(input_ids=ids).last_hidden_state, model(input_ids=ids).last_hidden_state
    )
