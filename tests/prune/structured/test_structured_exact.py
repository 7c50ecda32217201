"""Removing units whose weights are exactly zero must leave the outputs unchanged."""

from __future__ import annotations

import torch
from torch import nn

from secateurs.prune import structured
from secateurs.zoo.models import MLP, ResCNN

from .helpers import call, zero_units
from .models import DepthwiseConcat, Encoder, Recurrent, Upsampler


def _check_exact(model: nn.Module, example, ratio: float = 0.5, **kw) -> tuple[nn.Module, object]:
    model.eval()
    removed = zero_units(model, example, ratio, **kw)
    assert removed > 0
    with torch.no_grad():
        expected = call(model, example)
    pruned, report = structured(model, example, ratio=ratio, importance="l1", **kw)
    pruned.eval()
    with torch.no_grad():
        got = call(pruned, example)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # The pruned model is really smaller and holds no masks or hooks.
    assert report.params_after < report.params_before
    assert sum(g.before - g.after for g in report.groups) == removed
    for m in pruned.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
        assert not hasattr(m, "parametrizations")
    return pruned, report


def test_mlp_neurons() -> None:
    torch.manual_seed(0)
    pruned, _ = _check_exact(MLP(), torch.randn(5, 1, 8, 8))
    assert [m.out_features for m in pruned.net if isinstance(m, nn.Linear)] == [150, 50, 10]


def test_residual_cnn_with_batchnorm() -> None:
    torch.manual_seed(0)
    model = ResCNN(width=8)
    # Non-trivial running statistics so that BatchNorm slicing is really checked.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, 8, 8))
    pruned, report = _check_exact(model, torch.randn(4, 1, 8, 8))
    # The residual stream (stem + block1) is one group; block2's output and shortcut another.
    names = {g.name for g in report.groups}
    assert "block1.conv2+stem.0" in names
    assert "block2.conv2+block2.shortcut.0" in names
    assert pruned.block1.conv2.out_channels == pruned.stem[0].out_channels == 4
    assert pruned.fc.in_features == 8 and pruned.fc.out_features == 10


def test_depthwise_groupnorm_concat_flatten() -> None:
    torch.manual_seed(0)
    pruned, _ = _check_exact(DepthwiseConcat(), torch.randn(3, 3, 8, 8))
    assert pruned.dw.groups == pruned.dw.in_channels == 8
    assert pruned.dw.out_channels == 16  # channel multiplier 2 kept
    assert pruned.gn.num_groups == 2 and pruned.gn.num_channels == 6
    assert pruned.merge.in_channels == 6 + 4
    assert pruned.fc.in_features == 5 * 4  # flatten of 5 channels x 2 x 2


def test_conv1d_reshape_and_transposed_conv() -> None:
    torch.manual_seed(0)
    pruned, _ = _check_exact(Upsampler(), torch.randn(3, 2, 64))
    assert pruned.enc.out_channels == pruned.bn1.num_features == pruned.down.in_channels == 6
    assert pruned.up.in_channels == 5 and pruned.up.out_channels == 4
    assert pruned.out.in_channels == 4 and pruned.out.out_channels == 3


def test_lstm_gru_hidden_units() -> None:
    torch.manual_seed(0)
    pruned, _ = _check_exact(Recurrent(), torch.randint(0, 30, (3, 7)))
    assert pruned.lstm.hidden_size == 8  # 10, rounded to a multiple of 8 (CPU kernels)
    assert pruned.gru.input_size == 16 and pruned.gru.hidden_size == 8  # 9 rounded
    assert pruned.emb.embedding_dim == 12  # embedding width kept by default


def test_embedding_width_optional() -> None:
    torch.manual_seed(0)
    pruned, _ = _check_exact(Recurrent(), torch.randint(0, 30, (3, 7)), prune_embedding=True)
    assert pruned.emb.embedding_dim == 6 and pruned.proj.in_features == 6


def test_transformer_encoder() -> None:
    torch.manual_seed(0)
    pruned, _ = _check_exact(Encoder(), torch.randint(0, 30, (2, 9)))
    for layer in pruned.encoder.layers:
        assert layer.linear1.out_features == 24
        assert layer.self_attn.num_heads == 2 and layer.self_attn.head_dim == 4
        assert layer.self_attn.out_proj.out_features == 16


def test_multihead_attention_heads_with_masks() -> None:
    torch.manual_seed(0)
    model = Encoder()
    tokens = torch.randint(0, 30, (2, 9))
    pruned, _ = structured(model, tokens, ratio=0.5)
    mha = model.encoder.layers[0].self_attn.eval()
    small = pruned.encoder.layers[0].self_attn.eval()
    x = torch.randn(2, 9, 16)
    pad = torch.zeros(2, 9, dtype=torch.bool)
    pad[1, 6:] = True
    causal = torch.ones(9, 9, dtype=torch.bool).triu(1)
    # With the removed heads zeroed, torch's attention and ours agree under masks.
    keep = [h for h in range(4) if h in _kept_heads(mha, small)]
    _zero_heads(mha, [h for h in range(4) if h not in keep])
    ref, ref_w = mha(x, x, x, key_padding_mask=pad, attn_mask=causal)
    got, got_w = small(x, x, x, key_padding_mask=pad, attn_mask=causal)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    assert got_w.shape == ref_w.shape


def _kept_heads(mha: nn.MultiheadAttention, small: nn.Module) -> list[int]:
    hd = mha.head_dim
    q = mha.in_proj_weight[:16]
    return [
        h
        for h in range(mha.num_heads)
        if any(
            torch.equal(q[h * hd : (h + 1) * hd], small.q_proj.weight[j * hd : (j + 1) * hd])
            for j in range(small.num_heads)
        )
    ]


def _zero_heads(mha: nn.MultiheadAttention, heads: list[int]) -> None:
    hd = mha.head_dim
    with torch.no_grad():
        for h in heads:
            mha.out_proj.weight[:, h * hd : (h + 1) * hd] = 0
