"""The families people use: every output keeps its shape, removal is exact, >= 25% fewer
parameters at ratio 0.4, save/load round trip, generate() for the decoders.

Exact means: zeroing the units that pruning removes, in the dense model, gives the pruned
model's outputs. Tiny configs with random weights (transformers builds them offline).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

import secateurs.io as sio
from secateurs.prune import structured

from .families import hf_families
from .helpers import call, zero_units

pytest.importorskip("transformers")

FAMILIES = hf_families()
DECODERS = {"llama", "qwen2", "mistral", "phi3", "gpt2", "t5", "whisper"}


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _tensors(v)]
    if isinstance(out, tuple | list):
        return [t for v in out for t in _tensors(v)]
    return []


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_prunes_exactly_and_round_trips(family: str, tmp_path) -> None:
    torch.manual_seed(0)
    model, example = FAMILIES[family]()
    model.eval()
    zero_units(model, example, 0.4)
    with torch.no_grad():
        expected = _tensors(call(model, example))
    pruned, report = structured(model, example, ratio=0.4, importance="l1")
    pruned.eval()
    with torch.no_grad():
        got = _tensors(call(pruned, example))
    assert [t.shape for t in got] == [t.shape for t in expected]
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert report.params_after <= 0.75 * report.params_before, report.to_table()
    if family not in ("convnext", "resnet"):
        assert any(g.kind == "head" and g.after < g.before for g in report.groups), (
            report.to_table()
        )

    if family in ("llama", "qwen2", "mistral", "phi3"):
        # 2 key/value heads of 2 query heads each, ratio 0.4: one query head per group goes,
        # both key/value heads stay; attributes and config follow.
        attn = pruned.model.layers[0].self_attn
        assert attn.num_key_value_groups == 1
        assert pruned.config.num_attention_heads == 2 and pruned.config.num_key_value_heads == 2
        assert model.config.num_attention_heads == 4  # the input model is untouched

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sio.save(pruned, tmp_path / "m.safetensors")
        loaded = sio.load(tmp_path / "m.safetensors").eval()
    with torch.no_grad():
        again = _tensors(call(loaded, example))
    for a, b in zip(again, got, strict=True):
        torch.testing.assert_close(a, b)

    if family in DECODERS:
        prompt = {k: v[:, :3] if k != "input_features" else v for k, v in example.items()}
        prompt.pop("decoder_input_ids", None)
        out = pruned.generate(**prompt, max_new_tokens=3, do_sample=False)
        assert out.shape[0] == 2 and out.shape[1] >= 3


# Families whose residual stream (hidden size) prune_embedding=True narrows: position
# embeddings, class tokens, shifted windows, RMSNorm statistics and fused projections follow.
STREAM = ("llama", "phi3", "vit", "swin", "convnext")


@pytest.mark.parametrize("family", STREAM)
def test_prune_embedding_narrows_the_residual_stream(family: str, tmp_path) -> None:
    torch.manual_seed(0)
    model, example = FAMILIES[family]()
    model.eval()
    with torch.no_grad():
        expected = _tensors(call(model, example))
    _, inner = structured(model, example, ratio=0.4, importance="l1")
    pruned, report = structured(model, example, ratio=0.4, importance="l1", prune_embedding=True)
    pruned.eval()
    with torch.no_grad():
        got = _tensors(call(pruned, example))
    assert [t.shape for t in got] == [t.shape for t in expected]
    assert all(torch.isfinite(t).all() for t in got)
    # the stream is narrowed on top of what default pruning removes
    stream = [g for g in report.groups if len(g.modules) > 6 and g.after < g.before]
    assert stream, report.to_table()
    assert report.params_after < 0.8 * inner.params_after
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sio.save(pruned, tmp_path / "m.safetensors")
        loaded = sio.load(tmp_path / "m.safetensors").eval()
    with torch.no_grad():
        for a, b in zip(_tensors(call(loaded, example)), got, strict=True):
            torch.testing.assert_close(a, b)
    if family in ("llama", "phi3"):
        # the config describes the result: transformers alone rebuilds it
        assert pruned.config.hidden_size == stream[0].after
        pruned.save_pretrained(tmp_path / "hf")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hf = type(model).from_pretrained(tmp_path / "hf").eval()
        with torch.no_grad():
            torch.testing.assert_close(hf(**example).logits, got[0])
        prompt = {"input_ids": example["input_ids"][:, :3]}
        out = hf.generate(**prompt, max_new_tokens=3, do_sample=False)
        assert out.shape == (2, 6)


def test_t5_cross_attention_heads_are_pruned_with_its_zero_position_bias() -> None:
    # Cross-attention has no relative bias: T5 adds zeros of n_heads heads plus the mask. The
    # zeros are the same for every head, so they do not pin the heads (only their count, which
    # follows the updated n_heads attribute).
    torch.manual_seed(0)
    model, example = FAMILIES["t5"]()
    model.eval()
    pruned, report = structured(model, example, ratio=0.4, importance="l1")
    for block in pruned.decoder.block:
        cross = block.layer[1].EncDecAttention
        assert cross.n_heads == 3 and cross.q.out_features == 3 * cross.key_value_proj_dim
    assert not any("EncDecAttention.q" in k for k in report.kept), report.kept
