"""`secateurs.io.export`: every format loaded back by its own ecosystem in a process that does
not import secateurs (plain torch / safetensors, transformers' from_pretrained, onnxruntime),
outputs compared with the pruned model's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from secateurs import prune
from secateurs.io.export import export, format_for, plain_state_dict

transformers = pytest.importorskip("transformers")

# The loader each ecosystem uses, with no secateurs anywhere in the process.
LOADER = """
import json, sys
import torch
from torch import nn
from safetensors.torch import load_file

folder = sys.argv[1]
x = torch.load(f"{folder}/x.pt", weights_only=True)
ids = torch.load(f"{folder}/ids.pt", weights_only=True)
out = {}

def mlp(sizes):
    return nn.Sequential(nn.Linear(*sizes[0]), nn.ReLU(), nn.Linear(*sizes[1]), nn.ReLU(),
                         nn.Linear(*sizes[2]))

with torch.no_grad():
    m = mlp([(16, 32), (32, 24), (24, 5)])
    m.load_state_dict(load_file(f"{folder}/masked.safetensors"))
    out["safetensors"] = m(x)
    m = mlp([(16, 32), (32, 24), (24, 5)])
    m.load_state_dict(torch.load(f"{folder}/masked.pt", weights_only=True))
    out["pt"] = m(x)
    # the structured model: build the smaller class from the layer sizes written beside it
    sizes = json.load(open(f"{folder}/small.safetensors.layers.json"))
    m = mlp([(16, sizes["0"]["out_features"]), (sizes["2"]["in_features"],
             sizes["2"]["out_features"]), (sizes["4"]["in_features"], 5)])
    m.load_state_dict(load_file(f"{folder}/small.safetensors"))
    out["structured"] = m(x)

    import onnxruntime as ort
    s = ort.InferenceSession(f"{folder}/masked.onnx", providers=["CPUExecutionProvider"])
    out["onnx"] = torch.from_numpy(s.run(None, {s.get_inputs()[0].name: x.numpy()})[0])

    from transformers import AutoModelForCausalLM
    for name in ("llama", "opt"):
        hf = AutoModelForCausalLM.from_pretrained(f"{folder}/{name}").eval()
        out[name] = hf(input_ids=ids).logits

assert not [k for k in sys.modules if k.split(".")[0] == "secateurs"]
torch.save(out, f"{folder}/out.pt")
"""


def _mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 5)
    )


def _llama():
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=48,
        max_position_embeddings=32,
    )
    return transformers.LlamaForCausalLM(config).eval()


def _opt():  # a family secateurs has no structured rules for, with a tied output layer
    config = transformers.OPTConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        ffn_dim=48,
        num_attention_heads=4,
        max_position_embeddings=32,
        word_embed_proj_dim=32,
    )
    return transformers.OPTForCausalLM(config).eval()


def test_every_format_loads_in_its_own_ecosystem_without_secateurs(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(7, 16)  # batch 7: the ONNX file was exported with batch 3
    ids = torch.randint(0, 64, (2, 9))
    torch.save(x, tmp_path / "x.pt")
    torch.save(ids, tmp_path / "ids.pt")

    masked = _mlp().eval()
    prune.unstructured_(masked, sparsity=0.7)  # masks live as parametrizations
    zeros = (masked[0].weight == 0).sum().item()
    assert zeros > 0
    for name in ("masked.safetensors", "masked.pt"):
        assert export(masked, tmp_path / name).extra == []
    onnx = export(masked, tmp_path / "masked.onnx", example_inputs=torch.randn(3, 16))
    assert onnx.onnx_max_diff is not None and onnx.onnx_max_diff < 1e-5

    dense = _mlp().eval()
    small, _ = prune.structured(dense, torch.randn(2, 16), ratio=0.5)
    side = export(small, tmp_path / "small.safetensors", reference=dense).extra
    assert [p.name for p in side] == ["small.safetensors.layers.json"]
    listed = json.loads(side[0].read_text())
    assert sorted(listed) == ["0", "2", "4"]  # the last Linear's inputs shrank too
    assert listed["0"]["out_features"] == 16 and listed["4"]["out_features"] == 5

    llama = _llama()
    prune.unstructured_(llama, sparsity=0.5)
    export(llama, tmp_path / "llama")
    opt = _opt()
    prune.unstructured_(opt, sparsity=0.5, exclude=[])  # the tied embedding too
    export(opt, tmp_path / "opt", "hf")
    assert not list(tmp_path.glob(".*"))  # no temporary leftovers

    (tmp_path / "loader.py").write_text(textwrap.dedent(LOADER))
    subprocess.run(
        [sys.executable, str(tmp_path / "loader.py"), str(tmp_path)],
        check=True,
        cwd=tmp_path,
        timeout=240,
    )
    got = torch.load(tmp_path / "out.pt", weights_only=True)
    with torch.no_grad():
        want = masked(x)
        # another process: its thread count may order the sums differently (~1e-8 apart);
        # the stored weights themselves must be exactly the masked ones
        close = {"rtol": 1e-6, "atol": 1e-6}
        torch.testing.assert_close(got["safetensors"], want, **close)
        torch.testing.assert_close(got["pt"], want, **close)
        from safetensors.torch import load_file

        stored = load_file(tmp_path / "masked.safetensors")
        assert torch.equal(stored["0.weight"], masked[0].weight)
        torch.testing.assert_close(got["onnx"], want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got["structured"], small(x), **close)
        torch.testing.assert_close(got["llama"], llama(input_ids=ids).logits)
        torch.testing.assert_close(got["opt"], opt(input_ids=ids).logits)
    # the caller's models are untouched: masks still in place
    assert torch.nn.utils.parametrize.is_parametrized(masked[0])
    assert (masked[0].weight == 0).sum().item() == zeros


def test_plain_state_dict_bakes_masks_and_unties_shared_tensors():
    model = _mlp()
    tied = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
    tied[1].weight = tied[0].weight
    prune.unstructured_(model, sparsity=0.5)
    sd = plain_state_dict(model)
    assert set(sd) == set(_mlp().state_dict())
    assert all(v.is_contiguous() and not v.requires_grad for v in sd.values())
    assert torch.equal(sd["0.weight"], model[0].weight.detach())
    tied_sd = plain_state_dict(tied)
    assert set(tied_sd) == {"0.weight", "1.weight"}
    assert tied_sd["0.weight"].data_ptr() != tied_sd["1.weight"].data_ptr()
    from safetensors.torch import load, save

    fresh = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
    fresh.load_state_dict(load(save(tied_sd)))  # strict: every name present
    assert torch.equal(fresh[1].weight, tied[0].weight)


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("m.safetensors", None, "safetensors"),
        ("m.PTH", None, "pt"),
        ("m.bin", None, "pt"),
        ("m.onnx", None, "onnx"),
        ("m.secateurs", None, "secateurs"),
        ("folder", None, "hf"),
        ("m.weird", "pt", "pt"),
    ],
)
def test_format_comes_from_the_name_unless_given(name, fmt, expected):
    assert format_for(name, fmt) == expected


def test_bad_requests_write_nothing(tmp_path):
    model = _mlp()
    with pytest.raises(ValueError, match="cannot tell the format"):
        export(model, tmp_path / "m.weird")
    with pytest.raises(ValueError, match="--format must be one of"):
        export(model, tmp_path / "m.pt", "tflite")
    with pytest.raises(ValueError, match="Hugging Face model"):
        export(model, tmp_path / "folder")
    with pytest.raises(ValueError, match="example inputs"):
        export(model, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="is a folder"):
        export(model, tmp_path, "pt")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_onnx_check_leaves_no_file(tmp_path, monkeypatch):
    import secateurs.io.export as ex

    def wrong(expected, got):
        raise ValueError("ONNX outputs differ from PyTorch's by 1 (tolerance 1e-4)")

    monkeypatch.setattr(ex, "_max_diff", wrong)
    with pytest.raises(ValueError, match="differ"):
        export(_mlp(), tmp_path / "m.onnx", example_inputs=torch.randn(2, 16))
    assert list(tmp_path.iterdir()) == []
